"""One cycle of work, as ``publisher run`` (cron) and the daemon's jobs do it.

ingest new or changed files -> rebuild the feed -> send the digest if anything is new.
A bad article or a failed send is reported and the rest of the cycle still runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from publisher.config import Config
from publisher.delivery import Mailer
from publisher.dispatch import SendResult, send_digest
from publisher.errors import IngestError, PublisherError
from publisher.feed import FeedResult, write_feeds
from publisher.ingest import IngestResult, ingest
from publisher.store import Store
from publisher.websub import PingResult, notify

__all__ = ["CycleResult", "PublishResult", "SendResult", "publish_feeds", "run_cycle", "send_digest"]

_PENDING_PINGS = "websub_pending"


@dataclass(frozen=True)
class PublishResult:
    feed: FeedResult | None  # None when the feeds could not be written: ``error`` says why
    pings: list[PingResult]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(ping.ok for ping in self.pings)

    def summary(self) -> str:
        return self.feed.summary() if self.feed is not None else "feeds: not written"


@dataclass
class CycleResult:
    ingest: IngestResult
    published: PublishResult
    digest: SendResult | None

    @property
    def feed(self) -> FeedResult | None:
        return self.published.feed

    @property
    def ok(self) -> bool:
        return not self.ingest.errors and self.published.ok and (self.digest is None or self.digest.ok)


def ingest_articles(config: Config, store: Store, when: datetime) -> IngestResult:
    """Pick up new or changed files from ``articles.dir``."""
    if not config.articles_dir.is_dir():
        result = IngestResult()
        result.errors.append(IngestError(str(config.articles_dir), "articles folder not found ([articles] dir)"))
        return result
    return ingest(store, [config.articles_dir], articles_dir=config.articles_dir, tz=config.site.timezone, now=when)


def run_cycle(
    config: Config, store: Store, mailer: Mailer | None, when: datetime, *, new_digest: bool = True
) -> CycleResult:
    """Ingest, rebuild the feed, and (with a mailer) send the digest.

    ``new_digest=False`` only retries a digest that is already due but unsent: the daemon's
    refresh does that, so a failed send is not left waiting for the next digest slot.
    """
    ingested = ingest_articles(config, store, when)
    published = publish_feeds(config, store)
    sent = None
    if mailer is not None and (new_digest or store.unsent_digest() is not None):
        sent = send_digest(config, store, mailer, when)
    return CycleResult(ingest=ingested, published=published, digest=sent)


def publish_feeds(config: Config, store: Store) -> PublishResult:
    """Rebuild the feeds and tell the WebSub hubs which ones changed.

    A ping that fails for a passing reason is kept in the store and sent again on the next
    run: the feed will not change again just to be announced. One the hub refused (4xx) is
    reported once and dropped. Feeds that cannot be written are reported in ``error``, not
    raised, so that the digest still goes out.
    """
    try:
        feed = write_feeds(config, store)
    except PublisherError as exc:
        return PublishResult(feed=None, pings=[], error=str(exc))
    if not config.feed.hubs:
        return PublishResult(feed=feed, pings=[])
    pending = json.loads(store.setting(_PENDING_PINGS) or "[]")
    topics = list(dict.fromkeys([*pending, *feed.changed_urls]))
    pings = notify(config.feed.hubs, topics) if topics else []
    store.put_setting(_PENDING_PINGS, json.dumps(sorted({ping.topic for ping in pings if ping.retry})))
    return PublishResult(feed=feed, pings=pings)
