"""One cycle of work, as ``publisher run`` (cron) and the daemon's jobs do it.

ingest new or changed files -> rebuild the feed -> send the digest if anything is new.
A bad article or a failed send is reported and the rest of the cycle still runs.

:func:`run_cycle` is the one cycle: ``publisher run`` watches it through a
:class:`CycleObserver` (to print each stage as it ends and show the send's progress), the
daemon reads the :class:`CycleResult` it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from publisher import clock, health, notices, slots
from publisher.config import Config
from publisher.delivery import Mailer
from publisher.dispatch import BatchReport, SendResult, send_digest
from publisher.errors import PublisherError
from publisher.feed import MAIN, FeedResult, write_feeds
from publisher.ingest import IngestResult
from publisher.intake import ingest_articles
from publisher.states import SendState
from publisher.store import Store
from publisher.websub import Backlog, PingResult, announce

__all__ = [
    "CycleObserver",
    "CycleResult",
    "PublishResult",
    "SendResult",
    "Stage",
    "publish_feeds",
    "run_cycle",
    "send_digest",
]


class Stage(StrEnum):
    INGEST = "ingest"
    PUBLISH = "publish"
    SEND = "send"


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
    digest: SendResult | None  # the first send of the cycle (the only one with a single digest)
    waiting: list[health.Problem] = field(default_factory=list)  # digests that need the operator, after the cycle
    sends: list[SendResult] = field(default_factory=list)  # every digest's send, in the config's order

    @property
    def feed(self) -> FeedResult | None:
        return self.published.feed

    @property
    def ok(self) -> bool:
        return not self.ingest.errors and self.published.ok and all(sent.ok for sent in self._sends())

    def _sends(self) -> list[SendResult]:
        return self.sends or ([self.digest] if self.digest is not None else [])

    @property
    def settled(self) -> bool:
        """Nothing failed and no digest waits for the operator: ``publisher run`` exits 0."""
        return self.ok and not self.waiting

    def unsaid(self) -> list[health.Problem]:
        """The waiting digests to report on every cycle until settled, less the one this
        cycle's send left incomplete: the send's own outcome line said it already."""
        said = {sent.digest_id for sent in self._sends() if sent.state == SendState.INCOMPLETE}
        return [problem for problem in self.waiting if problem.digest_id not in said]


class CycleObserver(Protocol):
    """What :func:`run_cycle` tells as it goes.

    ``started`` comes before each stage and the stage's own hook (``ingested``, ``published``,
    ``sent``) when it is done; ``batch`` after each batch of the send. A stage skipped (no
    mailer, nothing due) gets neither.
    """

    def started(self, stage: Stage) -> None: ...

    def ingested(self, result: IngestResult) -> None: ...

    def published(self, result: PublishResult) -> None: ...

    def batch(self, report: BatchReport) -> None: ...

    def sent(self, result: SendResult) -> None: ...


class _Unwatched:
    """The observer of a cycle that nobody watches (the daemon reads the result)."""

    def started(self, stage: Stage) -> None:
        pass

    def ingested(self, result: IngestResult) -> None:
        pass

    def published(self, result: PublishResult) -> None:
        pass

    def batch(self, report: BatchReport) -> None:
        pass

    def sent(self, result: SendResult) -> None:
        pass


def run_cycle(
    config: Config,
    store: Store,
    mailer: Mailer | None,
    when: datetime,
    *,
    new_digest: bool = True,
    observer: CycleObserver | None = None,
    due: Sequence[str] | None = None,
) -> CycleResult:
    """Ingest, rebuild the feed, and (with a mailer) send the digests; then list the digests
    that need the operator.

    ``new_digest=False`` only retries a digest that is already due but unsent: the daemon's
    refresh does that, so a failed send is not left waiting for the next digest slot.
    ``due`` names the digests that may start a new one (the daemon's job for one digest);
    None: those whose slot has passed (publisher.slots; with one digest, that one).
    """
    watch = observer or _Unwatched()
    watch.started(Stage.INGEST)
    ingested = ingest_articles(config, store, when)
    watch.ingested(ingested)
    watch.started(Stage.PUBLISH)
    published = publish_feeds(config, store)
    watch.published(published)
    sends: list[SendResult] = []
    if mailer is not None:
        send_notices(config, store, mailer)
        creating = set(slots.due(config, store, when) if due is None else due) if new_digest else set()
        for each in config.each_digest():
            name = each.digest.name
            if name not in creating and store.unsent_digest(name) is None:
                continue
            watch.started(Stage.SEND)
            sent = send_digest(each, store, mailer, when, on_batch=watch.batch)
            if name in creating:
                slots.handled(config, store, name, when)
            watch.sent(sent)
            sends.append(sent)
    return CycleResult(
        ingest=ingested,
        published=published,
        digest=sends[0] if sends else None,
        waiting=health.problems(config, store),
        sends=sends,
    )


def send_notices(config: Config, store: Store, mailer: Mailer) -> None:
    """Send the sign-ups' confirmations and welcomes that `publisher serve` left unsent."""
    if config.digest.recipients == "subscribers":
        notices.send_due(config, store, mailer)


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
