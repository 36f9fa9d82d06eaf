"""One cycle of work, as ``publisher run`` (cron) and the daemon's jobs do it.

ingest new or changed files -> rebuild the feed -> send the digest if anything is new.
A bad article or a failed send is reported and the rest of the cycle still runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from publisher import clock
from publisher.config import Config
from publisher.delivery import Mailer
from publisher.dispatch import SendResult, send_digest
from publisher.errors import IngestError, PublisherError
from publisher.feed import MAIN, FeedResult, write_feeds
from publisher.ingest import IngestResult, ingest
from publisher.sources import fetch_into
from publisher.store import Store
from publisher.websub import Backlog, PingResult, announce

__all__ = ["CycleResult", "PublishResult", "SendResult", "publish_feeds", "run_cycle", "send_digest"]


@dataclass(frozen=True)
class PublishResult:
    feed: FeedResult | None  # None when the feeds could not be written: ``error`` says why
    pings: list[PingResult]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None  # a hub's trouble is reported, never a failure of the run

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
    """Pick up new or changed files from ``articles.dir``, and new or edited items of [[sources]]."""
    if not config.articles_dir.is_dir():
        result = IngestResult()
        result.errors.append(IngestError(str(config.articles_dir), "articles folder not found ([articles] dir)"))
        return result
    files = ingest(
        store,
        [config.articles_dir],
        articles_dir=config.articles_dir,
        tz=config.site.timezone,
        now=when,
        follow_symlinks=config.follow_symlinks,
        max_bytes=config.max_bytes,
    )
    return fetch_into(files, config, store, when)  # and the remote feeds ([[sources]])


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

    Pings go out within a short time budget and never fail the run: a hub that is down is
    one line, and what it missed is kept in the store and announced on a later run, after
    a backoff (publisher.websub.announce). A ping the hub refused (4xx) is reported once and
    dropped; a feed removed since is not announced. Feeds that cannot be written are
    reported in ``error``, not raised, so that the digest still goes out.
    """
    try:
        feed = write_feeds(config, store)
    except PublisherError as exc:
        return PublishResult(feed=None, pings=[], error=str(exc))
    if not config.feed.hubs:
        return PublishResult(feed=feed, pings=[])
    backlog = Backlog.load(store)
    pings, owed = announce(
        config.feed.hubs, feed.changed_urls, backlog, clock.now(), exists=lambda topic: _exists(config, feed, topic)
    )
    owed.save(store, backlog)
    return PublishResult(feed=feed, pings=pings)


def _exists(config: Config, feed: FeedResult, topic: str) -> bool:
    """Whether ``topic`` is the URL of a feed document that is on disk now."""
    if topic == config.feed.url:
        return (feed.dir / MAIN["atom"]).is_file()
    base = config.feed.base_url
    return topic.startswith(base) and (feed.dir / topic[len(base) :]).is_file()
