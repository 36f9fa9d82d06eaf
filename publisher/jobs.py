"""One cycle of work, as ``publisher run`` (cron) and the daemon's jobs do it.

ingest new or changed files -> rebuild the feed -> send the digest if anything is new.
A bad article or a failed send is reported and the rest of the cycle still runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from publisher.config import Config
from publisher.delivery import Mailer
from publisher.digest import create_next, outgoing
from publisher.errors import DeliveryError, IngestError
from publisher.feed import FeedResult, write_feeds
from publisher.ingest import IngestResult, ingest
from publisher.store import Store
from publisher.websub import PingResult, notify

_PENDING_PINGS = "websub_pending"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class SendResult:
    """What became of the digest: nothing, sent, failed, held (in doubt) or busy."""

    state: str
    message: str
    digest_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("nothing", "sent", "busy")


@dataclass(frozen=True)
class PublishResult:
    feed: FeedResult
    pings: list[PingResult]

    @property
    def ok(self) -> bool:
        return all(ping.ok for ping in self.pings)


@dataclass
class CycleResult:
    ingest: IngestResult
    published: PublishResult
    digest: SendResult | None

    @property
    def feed(self) -> FeedResult:
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
    reported once and dropped.
    """
    feed = write_feeds(config, store)
    if not config.feed.hubs:
        return PublishResult(feed=feed, pings=[])
    pending = json.loads(store.setting(_PENDING_PINGS) or "[]")
    topics = list(dict.fromkeys([*pending, *feed.changed_urls]))
    pings = notify(config.feed.hubs, topics) if topics else []
    store.put_setting(_PENDING_PINGS, json.dumps(sorted({ping.topic for ping in pings if ping.retry})))
    return PublishResult(feed=feed, pings=pings)


def send_digest(
    config: Config, store: Store, mailer: Mailer, when: datetime, *, resend_in_doubt: bool = False
) -> SendResult:
    """Send the unsent digest, or create and send the next one; mark it sent only on success.

    A digest found in ``sending`` was being sent when a process stopped, or still is. Once its
    lease has run out it is in doubt: resent at once when the mailer is idempotent, else held
    for the operator (``--resend-in-doubt``), since the endpoint may have accepted it.
    """
    digest = store.unsent_digest()
    if digest is None:
        digest = create_next(config, store, when)
        if digest is None:
            return SendResult("nothing", "digest: nothing new since the last digest, no email sent")
    if digest.state == "sending":
        if digest.claimed_at is not None and when < digest.claimed_at + _lease(config):
            return SendResult("busy", f"digest {digest.id}: being sent by another process", digest.id)
        if not (mailer.idempotent or resend_in_doubt):
            return SendResult(
                "held",
                f"digest {digest.id}: a send was interrupted and {mailer.name} may have accepted it; "
                "check the provider's log, then run `publisher digest send --resend-in-doubt`",
                digest.id,
            )
    if not store.claim_digest(digest, when):
        return SendResult("busy", f"digest {digest.id}: being sent by another process", digest.id)
    try:
        receipt = mailer.send(outgoing(config, store, digest))
    except DeliveryError as exc:
        store.mark_failed(digest.id, str(exc))
        return SendResult("failed", f"digest {digest.id}: not sent, will retry on the next run: {exc}", digest.id)
    store.mark_sent(digest.id, receipt.provider_id, now())
    count = digest.article_count
    noun = "article" if count == 1 else "articles"
    return SendResult("sent", f"digest {digest.id}: {count} {noun}, {receipt.detail}", digest.id)


def _lease(config: Config) -> timedelta:
    """Longest a live send can take: every attempt timing out, plus backoff."""
    attempts = config.mailer.retries + 1
    return timedelta(seconds=attempts * (config.mailer.timeout + 20) + 60)
