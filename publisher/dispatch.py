"""Send a digest through the delivery journal, batch by batch; mark each step only after it happened.

    claim the digest (a lease, renewed with every batch, naming the sending process)
    plan its batches once: every recipient written before the first request
    for each batch not finished: pace -> claim -> send -> accepted | failed | pending | in_doubt
    the digest is sent when every batch was accepted, incomplete when the rest failed or are
    in doubt, and pending while a batch waits for the next run

Batches go out from ``[mailer] concurrency`` threads at once, no faster than ``[mailer] rate``
messages a second (publisher.pacing); each thread commits every step of its batch before
the next. A batch found ``sending`` was in flight when its process died: resent at once when
the provider dedupes on the batch key, otherwise held as in doubt until the operator says
``--resend-in-doubt``. A digest whose sender on this host was killed is taken over at once (publisher.owner); one
claimed from another host waits until the lease runs out. A passing failure (timeout, 5xx,
429) stops the run: no new batch
starts (those in flight finish), the endpoint is struggling, and the next run continues where
this one stopped; after ``[mailer] max_attempts`` runs the batch is failed instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta

from publisher import clock, journal, owner, subscribers
from publisher.config import Config
from publisher.delivery import Envelope, Mailer, Recipient
from publisher.digest import Outgoing, create_next, outgoing, preview
from publisher.errors import DeliveryError
from publisher.journal import ACCEPTED, FAILED, IN_DOUBT, PENDING, SENDING
from publisher.pacing import Pace
from publisher.store import Digest, Store

# One record per batch outcome, carrying the digest id and the batch key as fields, so that
# one send can be followed in the logs (see publisher.logs for the JSON format).
log = logging.getLogger("publisher.delivery")


@dataclass(frozen=True)
class SendResult:
    """What became of the digest: nothing, sent, incomplete, pending (retry later) or busy."""

    state: str
    message: str
    digest_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("nothing", "sent", "busy")


@dataclass(frozen=True)
class BatchReport:
    """One batch done, for progress display: its number of ``total``, recipients, outcome."""

    digest_id: str
    number: int
    total: int
    recipients: int
    state: str
    detail: str


OnBatch = Callable[[BatchReport], None]


def send_digest(
    config: Config,
    store: Store,
    mailer: Mailer,
    when: datetime,
    *,
    resend_in_doubt: bool = False,
    retry_failed: bool = False,
    create: bool = True,
    on_batch: OnBatch | None = None,
) -> SendResult:
    """Continue the unsent digest, or (with ``create``) create and send the next one."""
    reopened = _reopen(store, resend_in_doubt, retry_failed, when)
    digest = store.unsent_digest()
    if digest is None and not create:
        return SendResult("nothing", "digest: nothing to resume")
    if digest is None:
        if config.digest.recipients == "subscribers" and not subscribers.active_count(store):
            # Creating a digest would use up the articles on nobody: they wait for readers.
            return SendResult("nothing", "digest: the local list has no active subscribers, no email sent")
        digest = create_next(config, store, when)
        if digest is None:
            if reopened:
                return SendResult("nothing", "digest: nothing was left to resend")
            return SendResult("nothing", "digest: nothing new since the last digest, no email sent")
    # A digest found `sending` is left to its sender while the lease runs, unless that sender is
    # a process on this host that is gone (killed mid-send): then its batches continue at once.
    lease = _lease(config, mailer)
    live = digest.claimed_at is not None and when < digest.claimed_at + lease and not owner.is_gone(digest.claimed_by)
    if digest.state == SENDING and live:
        return _busy(digest.id)
    if not store.claim_digest(digest, when, owner.me()):
        return _busy(digest.id)
    try:
        return _send_batches(config, store, mailer, digest, resend_in_doubt, on_batch)
    finally:
        # Whatever happened (even an error that is not a DeliveryError), the digest leaves
        # `sending`: its batches say what was done.
        current = store.digest(digest.id)
        if current is not None and current.state == SENDING:
            store.finish_digest(digest.id, PENDING, clock.now(), current.last_error)


def send_test(config: Config, store: Store, mailer: Mailer, addresses: list[str], when: datetime) -> SendResult:
    """Send the next digest to ``addresses`` only, with [TEST] in the subject; mark nothing."""
    shown = preview(config, store, when, test=True)
    if shown is None:
        return SendResult("nothing", "digest: nothing new since the last digest, no test sent")
    link = config.digest.unsubscribe_url
    size = mailer.batch_size or len(addresses)
    for start in range(0, len(addresses), size):
        chunk = tuple(Recipient(email=a, unsubscribe_url=link) for a in addresses[start : start + size])
        try:
            mailer.send(Envelope(digest=shown, key=f"{shown.id}-{start // size + 1:04d}", recipients=chunk, test=True))
        except DeliveryError as exc:
            return SendResult("failed", f"test digest: not sent: {exc}")
    return SendResult("sent", f"test digest sent to {', '.join(addresses)} ({mailer.name}); nothing marked as sent")


BUSY = "busy"  # an outcome only: another process claimed the batch first


@dataclass(frozen=True)
class _Outcome:
    batch: journal.Batch
    state: str  # accepted, failed, pending, in_doubt or busy
    detail: str


def _send_batches(
    config: Config,
    store: Store,
    mailer: Mailer,
    digest: Digest,
    resend_in_doubt: bool,
    on_batch: OnBatch | None,
) -> SendResult:
    journal.plan(store, digest.id, _audience(config, store, mailer), mailer.batch_size or 1, clock.now())
    pace = Pace(config.mailer.rate)  # one for all the threads
    run = _Run(config, store, mailer, outgoing(config, store, digest), resend_in_doubt, pace)
    planned = journal.batches_of(store, digest.id)
    outcomes: list[_Outcome] = []
    with ThreadPoolExecutor(config.mailer.concurrency, thread_name_prefix="publisher-send") as pool:
        todo = [pool.submit(run.batch, batch) for batch in planned if batch.state not in journal.FINISHED]
        try:
            for future in as_completed(todo):
                outcome = future.result()
                if outcome is not None:  # None: not started, the run had stopped
                    outcomes.append(outcome)
                    _report(on_batch, outcome.batch, len(planned), outcome.state, outcome.detail)
        except BaseException:
            run.stopped.set()  # a bug, or Ctrl-C: no new batch starts; leaving the pool waits for the rest
            raise
    if any(o.state == BUSY for o in outcomes):
        return _busy(digest.id)
    stop = next((o.detail for o in outcomes if o.state == PENDING), None)
    accepted = [o.detail for o in outcomes if o.state == ACCEPTED]
    return _finish(store, digest, stop, accepted[-1] if accepted else "")


class _Run:
    """One run over a digest's batches: what the sending threads share."""

    def __init__(
        self, config: Config, store: Store, mailer: Mailer, message: Outgoing, resend_in_doubt: bool, pace: Pace
    ) -> None:
        self.config, self.store, self.mailer, self.message, self.pace = config, store, mailer, message, pace
        self.resend_in_doubt = resend_in_doubt
        self.secret = subscribers.secret(config) if config.digest.recipients == "subscribers" else None
        self.stopped = threading.Event()  # set by a passing failure: no new batch starts

    def batch(self, batch: journal.Batch) -> _Outcome | None:
        """Send one batch, in a worker thread; None if the run stopped before it started."""
        outcome = self._batch(batch)
        if outcome is not None and outcome.state in (PENDING, BUSY):
            self.stopped.set()
        return outcome

    def _batch(self, batch: journal.Batch) -> _Outcome | None:
        store, mailer = self.store, self.mailer
        if self.stopped.is_set():
            return None
        if batch.state == SENDING and not (mailer.idempotent or self.resend_in_doubt):
            reason = f"interrupted while sending; {mailer.name} may have accepted it"
            journal.mark(store, batch.id, IN_DOUBT, clock.now(), error=reason)
            return _Outcome(batch, IN_DOUBT, reason)
        # A batch tried before goes again exactly as planned: same key, same body, which is what
        # lets a provider recognise the repeat. One never tried leaves out who unsubscribed since.
        people = journal.recipients(store, batch.id, as_planned=batch.tried)
        self.pace.wait(len(people))
        if self.stopped.is_set():  # another thread failed while this one waited its turn
            return None
        if not journal.claim(store, batch, clock.now()):
            return _Outcome(batch, BUSY, "being sent by another process")
        if mailer.batch_size and not people:  # an empty list, or everyone in it unsubscribed since
            journal.mark(store, batch.id, ACCEPTED, clock.now(), error="no recipients")
            return _Outcome(batch, ACCEPTED, "no recipients")
        envelope = Envelope(
            digest=self.message,
            key=batch.key,
            recipients=tuple(Recipient(p.email, _unsubscribe_url(self.config, self.secret, p.token)) for p in people),
        )
        try:
            receipt = mailer.send(envelope)
        except DeliveryError as exc:
            state, error = self._after_failure(exc, batch.attempts + 1)
            journal.mark(store, batch.id, state, clock.now(), error=error)
            return _Outcome(batch, state, error)
        journal.mark(store, batch.id, ACCEPTED, clock.now(), provider_id=receipt.provider_id, rejected=receipt.rejected)
        return _Outcome(batch, ACCEPTED, receipt.detail)

    def _after_failure(self, exc: DeliveryError, attempts: int) -> tuple[str, str]:
        """The batch's new state and error after ``attempts`` runs tried it."""
        if exc.maybe_delivered and not self.mailer.idempotent:
            return IN_DOUBT, str(exc)  # the provider may have it; sending again could mail it twice
        if not exc.retryable:
            return FAILED, str(exc)
        if attempts >= self.config.mailer.max_attempts:
            return FAILED, f"gave up after {attempts} attempts: {exc}"
        return PENDING, str(exc)


def _busy(digest_id: str) -> SendResult:
    return SendResult("busy", f"digest {digest_id}: being sent by another process", digest_id)


def _finish(store: Store, digest: Digest, stop: str | None, last_detail: str) -> SendResult:
    done = journal.summary(store, digest.id)
    count = digest.article_count
    what = f"digest {digest.id}: {count} {'article' if count == 1 else 'articles'}"
    reached = f"{done.reached} {'recipient' if done.reached == 1 else 'recipients'}"
    accepted = done.batches[ACCEPTED]
    total = sum(done.batches.values())
    if not done.finished:
        store.finish_digest(digest.id, PENDING, clock.now(), stop)
        so_far = f" ({accepted} of {total} batches accepted so far)" if accepted else ""
        return SendResult(
            "pending", f"digest {digest.id}{so_far}: not sent, will retry on the next run: {stop}", digest.id
        )
    if accepted == total:
        store.finish_digest(digest.id, "sent", clock.now())
        if total == 1 and last_detail:
            return SendResult("sent", f"{what}, {last_detail}", digest.id)
        return SendResult("sent", f"{what}, {_batches(total)} accepted, {reached}", digest.id)
    problems = []
    if done.batches[FAILED]:
        problems.append(f"{_batches(done.batches[FAILED])} failed")
    if done.batches[IN_DOUBT]:
        problems.append(
            f"{_batches(done.batches[IN_DOUBT])} in doubt (check the provider's log, then "
            "`publisher digest resume --resend-in-doubt`)"
        )
    store.finish_digest(digest.id, "incomplete", clock.now(), "; ".join(done.errors) or None)
    return SendResult(
        "incomplete",
        f"{what}, {accepted} of {total} batches accepted ({reached}); {', '.join(problems)}: {'; '.join(done.errors)}",
        digest.id,
    )


def _batches(n: int) -> str:
    return f"{n} {'batch' if n == 1 else 'batches'}"


def _reopen(store: Store, resend_in_doubt: bool, retry_failed: bool, when: datetime) -> int:
    """Put in-doubt (or failed) batches of incomplete digests back to pending, as the operator asked."""
    states = ((IN_DOUBT,) if resend_in_doubt else ()) + ((FAILED,) if retry_failed else ())
    if not states:
        return 0
    count = 0
    for digest in store.recent_digests(50):
        if digest.state in ("incomplete", PENDING):
            reopened = journal.reopen(store, digest.id, states, when)
            if reopened:
                store.finish_digest(digest.id, PENDING, when, digest.last_error)
                count += reopened
    return count


def _audience(config: Config, store: Store, mailer: Mailer) -> list[tuple[str, int | None]]:
    """Who the digest goes to: nobody by name when the provider keeps the list."""
    if not mailer.batch_size:
        return []
    if config.digest.recipients == "subscribers":
        return [(s.email, s.id) for s in subscribers.listing(store)]
    return [(address, None) for address in config.digest.to]


def _unsubscribe_url(config: Config, secret: bytes | None, token: str | None) -> str:
    if secret is None or token is None:
        return config.digest.unsubscribe_url
    return subscribers.unsubscribe_url(config.digest.unsubscribe_url, secret, token)


def _report(on_batch: OnBatch | None, batch: journal.Batch, total: int, state: str, detail: str) -> None:
    log.info(
        "digest %s: batch %d/%d %s: %s",
        batch.digest_id,
        batch.number,
        total,
        state,
        detail,
        extra={"digest_id": batch.digest_id, "batch_key": batch.key, "batch_state": state},
    )
    if on_batch is not None:
        on_batch(BatchReport(batch.digest_id, batch.number, total, batch.recipient_count, state, detail))


def _lease(config: Config, mailer: Mailer) -> timedelta:
    """Longest a run goes without claiming a batch (each claim renews the lease): one batch's
    turn at the send rate, then its retries up to max_retry_seconds, plus the attempt begun
    just before they ran out."""
    m = config.mailer
    turn = (mailer.batch_size or 1) / m.rate + 1 if m.rate else 0
    return timedelta(seconds=turn + m.max_retry_seconds + m.timeout + 20 + 60)
