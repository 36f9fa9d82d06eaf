"""Send a digest through the delivery journal, batch by batch; mark each step only after it happened.

    claim the digest (a lease, renewed with every batch, naming the sending process)
    plan its batches once: every recipient written before the first request
    for each batch not finished: pace -> claim -> send -> accepted | failed | pending | in_doubt
    the digest is sent when every batch was accepted, incomplete when the rest failed or are
    in doubt, and pending while a batch waits for the next run

Batches go out in order, ``[mailer] concurrency`` requests in flight at once, no faster than
``[mailer] rate`` messages a second (publisher.pacing); each thread commits every step of its
batch before the next, and one spare thread reads the next batch's recipients and signs their
links while the requests are in flight, so that a thread whose answer came back finds its next
batch ready. A batch found ``sending`` was in flight when its process died: resent at once when
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
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from publisher import archive, clock, hold, journal, owner, preferences, subscribers
from publisher.config import Config
from publisher.delivery import Envelope, Mailer, Recipient
from publisher.digest import create_next, outgoing, preview
from publisher.errors import DeliveryError, PublisherError
from publisher.message import Outgoing
from publisher.pacing import Pace
from publisher.states import BatchState, DigestState, SendState
from publisher.store import Digest, Store
from publisher.store.send import SendStore

# One record per batch outcome, carrying the digest id and the batch key as fields, so that
# one send can be followed in the logs (see publisher.logs for the JSON format).
log = logging.getLogger("publisher.delivery")


@dataclass(frozen=True)
class SendResult:
    """What became of the digest (a :class:`SendState`): nothing, held, sent, incomplete,
    pending (retry later), busy, failed (a test send) or queued (a cluster's jobs)."""

    state: SendState
    message: str
    digest_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in (SendState.NOTHING, SendState.SENT, SendState.BUSY, SendState.HELD)


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
# What sends a claimed digest's batches: _send_batches here, or publisher.cluster spreading them as jobs.
BatchRunner = Callable[[Config, Store, Mailer, Digest, bool, "OnBatch | None"], "SendResult"]


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
    return send_digest_by(_send_batches, config, store, mailer, when, resend_in_doubt, retry_failed, create, on_batch)


def send_digest_by(
    run_batches: BatchRunner,
    config: Config,
    store: Store,
    mailer: Mailer,
    when: datetime,
    resend_in_doubt: bool = False,
    retry_failed: bool = False,
    create: bool = True,
    on_batch: OnBatch | None = None,
) -> SendResult:
    """:func:`send_digest`, the claimed digest's batches sent by ``run_batches`` (publisher.cluster
    queues them as jobs)."""
    reopened = reopen(store, resend_in_doubt, retry_failed, when)
    digest = store.unsent_digest(config.digest.name)
    if digest is None and not create:
        return SendResult(SendState.NOTHING, "digest: nothing to resume")
    if digest is None:
        since = hold.held_since(store)
        if since is not None:  # the operator held the next digest: the articles wait for the release
            return SendResult(SendState.HELD, hold.message(since))
        label = _label(config)
        if config.digest.recipients == "subscribers" and not subscribers.any_active(store):
            # Creating a digest would use up the articles on nobody: they wait for readers.
            return SendResult(SendState.NOTHING, f"{label}: the local list has no active subscribers, no email sent")
        if config.digest.recipients == "subscribers" and not preferences.anyone_receives(config, store):
            return SendResult(
                SendState.NOTHING, f"{label}: no reader of the local list takes this digest, no email sent"
            )
        digest = create_next(config, store, when)
        if digest is None:
            if reopened:
                return SendResult(SendState.NOTHING, f"{label}: nothing was left to resend")
            return SendResult(SendState.NOTHING, f"{label}: nothing new since the last digest, no email sent")
    # A digest found `sending` is left to its sender while the lease runs, unless that sender is
    # a process on this host that is gone (killed mid-send): then its batches continue at once.
    lease = _lease(config, mailer)
    live = digest.claimed_at is not None and when < digest.claimed_at + lease and not owner.is_gone(digest.claimed_by)
    if digest.state == DigestState.SENDING and live:
        return _busy(digest.id)
    if not store.claim_digest(digest, when, owner.me()):
        return _busy(digest.id)
    try:
        result = run_batches(config, store, mailer, digest, resend_in_doubt, on_batch)
    finally:
        # Whatever happened (even an error that is not a DeliveryError), the digest leaves
        # `sending`: its batches say what was done.
        current = store.digest(digest.id)
        if current is not None and current.state == DigestState.SENDING:
            store.release_digest(digest.id, current.last_error)
    return _archived(config, store, result)


def _label(config: Config) -> str:
    """How a line names the digest it is about: "digest", or "digest weekly" among several."""
    return "digest" if len(config.digests) == 1 else f"digest {config.digest.name}"


def _archived(config: Config, store: Store, result: SendResult) -> SendResult:
    """Once a digest was accepted (sent), its web copy goes up (publisher.archive); never before.

    A page that cannot be written is reported and does not undo the send: the next sent digest
    writes what is missing.
    """
    if result.state != SendState.SENT or not config.digest.archive:
        return result
    try:
        archive.publish(config, store)
    except PublisherError as exc:  # said in the send's own line: a run's output stays one line per outcome
        return SendResult(result.state, f"{result.message}; {exc}", result.digest_id)
    return result


def send_test(config: Config, store: Store, mailer: Mailer, addresses: list[str], when: datetime) -> SendResult:
    """Send the next digest to ``addresses`` only, with [TEST] in the subject; mark nothing."""
    shown = preview(config, store, when, test=True)
    if shown is None:
        return SendResult(SendState.NOTHING, "digest: nothing new since the last digest, no test sent")
    link = config.digest.unsubscribe_url
    size = mailer.batch_size or len(addresses)
    details = []  # where each request went: the outbox's file, the provider's message id
    try:
        for start in range(0, len(addresses), size):
            chunk = tuple(Recipient(email=a, unsubscribe_url=link) for a in addresses[start : start + size])
            key = f"{shown.id}-{start // size + 1:04d}"
            details.append(mailer.send(Envelope(digest=shown, key=key, recipients=chunk, test=True)).detail)
    except DeliveryError as exc:
        return SendResult(SendState.FAILED, f"test digest: not sent: {exc}")
    finally:
        mailer.close()
    went = f": {'; '.join(dict.fromkeys(d for d in details if d))}" if any(details) else ""
    return SendResult(
        SendState.SENT, f"test digest sent to {', '.join(addresses)} ({mailer.name}){went}; nothing marked as sent"
    )


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
    # The mailer loads its TLS settings while the journal is written (both mostly outside the GIL).
    preparing = threading.Thread(target=mailer.prepare, name="publisher-prepare", daemon=True)
    preparing.start()
    _plan(config, store, mailer, digest.id)
    preparing.join()
    pace = Pace(config.mailer.rate)  # one for all the threads
    run = _Run(config, store, mailer, outgoing(config, store, digest), resend_in_doubt, pace)
    run.copies = preferences.messages(config, store, digest)  # readers' topics: some batches carry a copy
    planned = journal.batches_of(store, digest.id)
    outcomes: list[_Outcome] = []
    try:
        # One thread more than requests in flight: while `concurrency` of them wait for answers,
        # the spare one gets the next batch ready (see _Run.batch). More spares would only take
        # turns at the GIL with the threads whose answers came back.
        threads = config.mailer.concurrency + 1
        with ThreadPoolExecutor(threads, thread_name_prefix="publisher-send") as pool:
            unfinished = [batch for batch in planned if batch.state not in journal.FINISHED]
            todo = [pool.submit(run.batch, turn, batch) for turn, batch in enumerate(unfinished)]
            try:
                for future in as_completed(todo):
                    outcome = future.result()
                    if outcome is not None:  # None: not started, the run had stopped
                        outcomes.append(outcome)
                        _report(on_batch, outcome.batch, len(planned), outcome.state, outcome.detail)
            except BaseException:
                run.stopped.set()  # a bug, or Ctrl-C: no new batch starts; leaving the pool waits for the rest
                raise
    finally:
        mailer.close()  # the sending threads' connections, kept from one batch to the next
    if any(o.state == BUSY for o in outcomes):
        return _busy(digest.id)
    stop = next((o.detail for o in outcomes if o.state == BatchState.PENDING), None)
    accepted = [o.detail for o in outcomes if o.state == BatchState.ACCEPTED]
    return _finish(store, digest, stop, accepted[-1] if accepted else "")


def plan(config: Config, store: Store, mailer: Mailer, digest: Digest) -> list[journal.Batch]:
    """The digest's batches, written to the journal first if they were not (as a send does)."""
    _plan(config, store, mailer, digest.id)
    return journal.batches_of(store, digest.id)


def send_batch(
    config: Config, store: Store, mailer: Mailer, digest: Digest, batch_id: int, *, resend_in_doubt: bool = False
) -> BatchReport | None:
    """Send one planned batch of ``digest``, through the journal's steps exactly as a thread of
    :func:`send_digest` does; None when it was finished already (or the batch is not the digest's).

    publisher.cluster runs each batch as a job of its own, on whichever daemon takes it.
    """
    planned = journal.batches_of(store, digest.id)
    batch = next((b for b in planned if b.id == batch_id), None)
    if batch is None or batch.state in journal.FINISHED:
        return None
    run = _Run(config, store, mailer, outgoing(config, store, digest), resend_in_doubt, Pace(config.mailer.rate))
    outcome = run.batch(0, batch)
    if outcome is None:
        return None
    _report(None, outcome.batch, len(planned), outcome.state, outcome.detail)
    return BatchReport(digest.id, batch.number, len(planned), batch.recipient_count, outcome.state, outcome.detail)


def settle(config: Config, store: Store, digest: Digest) -> SendResult | None:
    """Record a digest sent batch by batch as sent or incomplete once every batch is finished
    (and publish its web copy, as :func:`send_digest` does); None while batches are left, or
    when it was settled already."""
    current = store.digest(digest.id)
    settled = (DigestState.SENT, DigestState.INCOMPLETE, DigestState.CLOSED)
    if current is None or current.state in settled or not journal.summary(store, digest.id).finished:
        return None
    return _archived(config, store, _finish(store, current, None, ""))


class _Run:
    """One run over a digest's batches: what the sending threads share."""

    def __init__(
        self, config: Config, store: SendStore, mailer: Mailer, message: Outgoing, resend_in_doubt: bool, pace: Pace
    ) -> None:
        self.config, self.store, self.mailer, self.message, self.pace = config, store, mailer, message, pace
        self.resend_in_doubt = resend_in_doubt
        base = config.digest.unsubscribe_url
        local = config.digest.recipients == "subscribers"
        self.links = subscribers.Links(base, subscribers.secret(config)) if local else None
        self.stopped = threading.Event()  # set by a passing failure: no new batch starts
        self.readying = _Turns(1)
        self.turns = _Turns(config.mailer.concurrency)
        # The sending threads take turns at the journal's writes. Left to the database, a thread
        # finding the store locked backs off for milliseconds (SQLite's busy handler sleeps 1,
        # 2, 5, 10... ms), which cost more than the requests themselves; a lock wakes it at once.
        self.writing = threading.Lock()
        self.copies: Mapping[int, Outgoing] = {}  # by batch number: a copy of the digest for some readers' topics

    def batch(self, turn: int, batch: journal.Batch) -> _Outcome | None:
        """Send one batch, in a worker thread; None if the run stopped before it started.

        The batch is made ready (its recipients read, their links signed) while the other
        threads' requests are in flight; then it waits for its turn (batches start in order, at
        most ``concurrency`` at once) to be claimed, sent and marked.
        """
        try:
            with self.readying.take(turn):  # one at a time, in order: the first is ready first
                ready = self._ready(batch)
        except BaseException:
            self.turns.skip(turn)  # the batches after this one must not wait for it
            raise
        with self.turns.take(turn):
            if not isinstance(ready, Envelope):
                return ready
            outcome = self._send(batch, ready)
            if outcome is not None and outcome.state in (BatchState.PENDING, BUSY):
                self.stopped.set()  # before the turn ends: no batch waiting for it may start
            return outcome

    def _ready(self, batch: journal.Batch) -> Envelope | _Outcome | None:
        """The batch's envelope; or its outcome without a request (held in doubt); or None."""
        if self.stopped.is_set():
            return None
        if batch.state == BatchState.SENDING and not (self.mailer.idempotent or self.resend_in_doubt):
            reason = f"interrupted while sending; {self.mailer.name} may have accepted it"
            self._mark(batch.id, BatchState.IN_DOUBT, error=reason)
            return _Outcome(batch, BatchState.IN_DOUBT, reason)
        # A batch tried before goes again exactly as planned: same key, same body, which is what
        # lets a provider recognise the repeat. One never tried leaves out who unsubscribed since.
        people = journal.recipients(self.store, batch.id, as_planned=batch.tried)
        message = self.copies.get(batch.number, self.message)
        return Envelope(digest=message, key=batch.key, recipients=self._recipients(people))

    def _send(self, batch: journal.Batch, envelope: Envelope) -> _Outcome | None:
        if self.stopped.is_set():  # another thread failed while this one waited for a slot
            return None
        self.pace.wait(len(envelope.recipients))
        if self.stopped.is_set():  # another thread failed while this one waited its turn
            return None
        if not self._claim(batch):
            return _Outcome(batch, BUSY, "being sent by another process")
        if not self.mailer.owns_list and not envelope.recipients:  # an empty list, or all unsubscribed since
            self._mark(batch.id, BatchState.ACCEPTED, error="no recipients")
            return _Outcome(batch, BatchState.ACCEPTED, "no recipients")
        try:
            receipt = self.mailer.send(envelope)
        except DeliveryError as exc:
            state, error = self._after_failure(exc, batch.attempts + 1)
            self._mark(batch.id, state, error=error)
            return _Outcome(batch, state, error)
        self._mark(batch.id, BatchState.ACCEPTED, provider_id=receipt.provider_id, rejected=receipt.rejected)
        return _Outcome(batch, BatchState.ACCEPTED, receipt.detail)

    def _claim(self, batch: journal.Batch) -> bool:
        with self.writing:
            return journal.claim(self.store, batch, clock.now())

    def _mark(self, batch_id: int, state: BatchState, **details: Any) -> None:
        with self.writing:
            journal.mark(self.store, batch_id, state, clock.now(), **details)

    def _recipients(self, people: list[journal.Planned]) -> tuple[Recipient, ...]:
        """Each reader with their own unsubscribe link (a local list), or the list's."""
        url, links = self.config.digest.unsubscribe_url, self.links
        if links is None or any(token is None for _, token in people):
            return tuple(
                Recipient(email, url if links is None or token is None else links.url(token)) for email, token in people
            )
        own = links.urls([token for _, token in people if token is not None])
        return tuple(Recipient(email, link) for (email, _), link in zip(people, own, strict=True))

    def _after_failure(self, exc: DeliveryError, attempts: int) -> tuple[BatchState, str]:
        """The batch's new state and error after ``attempts`` runs tried it."""
        if exc.maybe_delivered and not self.mailer.idempotent:
            return BatchState.IN_DOUBT, str(exc)  # the provider may have it; sending again could mail it twice
        if not exc.retryable:
            return BatchState.FAILED, str(exc)
        if attempts >= self.config.mailer.max_attempts:
            return BatchState.FAILED, f"gave up after {attempts} attempts: {exc}"
        return BatchState.PENDING, str(exc)


class _Turns:
    """Requests start in the order of their batches, at most ``slots`` of them in flight."""

    def __init__(self, slots: int) -> None:
        self._changed = threading.Condition()
        self._free = slots
        self._next = 0  # the turn that may start next

    @contextmanager
    def take(self, turn: int) -> Iterator[None]:
        """Wait for turn ``turn`` and a free slot; hold the slot inside the block."""
        with self._changed:
            self._changed.wait_for(lambda: self._next == turn and self._free > 0)
            self._next += 1
            self._free -= 1
            self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self._free += 1
                self._changed.notify_all()

    def skip(self, turn: int) -> None:
        """Let turn ``turn`` pass without taking a slot."""
        with self._changed:
            self._changed.wait_for(lambda: self._next == turn)
            self._next += 1
            self._changed.notify_all()


def _busy(digest_id: str) -> SendResult:
    return SendResult(SendState.BUSY, f"digest {digest_id}: being sent by another process", digest_id)


def _finish(store: SendStore, digest: Digest, stop: str | None, last_detail: str) -> SendResult:
    done = journal.summary(store, digest.id)
    count = digest.article_count
    what = f"digest {digest.id}: {count} {'article' if count == 1 else 'articles'}"
    reached = f"{done.reached} {'recipient' if done.reached == 1 else 'recipients'}"
    accepted = done.batches[BatchState.ACCEPTED]
    total = sum(done.batches.values())
    if not done.finished:
        store.finish_digest(digest.id, DigestState.PENDING, clock.now(), stop)
        so_far = f" ({accepted} of {total} batches accepted so far)" if accepted else ""
        return SendResult(
            SendState.PENDING, f"digest {digest.id}{so_far}: not sent, will retry on the next run: {stop}", digest.id
        )
    if accepted == total:
        store.finish_digest(digest.id, DigestState.SENT, clock.now())
        if total == 1 and last_detail:
            return SendResult(SendState.SENT, f"{what}, {last_detail}", digest.id)
        return SendResult(SendState.SENT, f"{what}, {_batches(total)} accepted, {reached}", digest.id)
    problems = []
    if failed := done.batches[BatchState.FAILED]:
        problems.append(f"{_batches(failed)} failed (fix the cause, then `publisher digest resume --retry-failed`)")
    if done.batches[BatchState.IN_DOUBT]:
        problems.append(
            f"{_batches(done.batches[BatchState.IN_DOUBT])} in doubt (check the provider's log, then "
            "`publisher digest resume --resend-in-doubt`)"
        )
    store.finish_digest(digest.id, DigestState.INCOMPLETE, clock.now(), "; ".join(done.errors) or None)
    return SendResult(
        SendState.INCOMPLETE,
        f"{what}, {accepted} of {total} batches accepted ({reached}); {', '.join(problems)}: {'; '.join(done.errors)}",
        digest.id,
    )


def _batches(n: int) -> str:
    return f"{n} {'batch' if n == 1 else 'batches'}"


def reopened_states(resend_in_doubt: bool, retry_failed: bool) -> tuple[BatchState, ...]:
    """The batch states the operator's flags put back to pending."""
    return ((BatchState.IN_DOUBT,) if resend_in_doubt else ()) + ((BatchState.FAILED,) if retry_failed else ())


def reopen(store: SendStore, resend_in_doubt: bool, retry_failed: bool, when: datetime) -> int:
    """Put in-doubt (or failed) batches of incomplete digests back to pending, as the operator asked."""
    states = reopened_states(resend_in_doubt, retry_failed)
    if not states:
        return 0
    count = 0
    for digest in store.recent_digests(50):
        if digest.state in (DigestState.INCOMPLETE, DigestState.PENDING):
            reopened = journal.reopen(store, digest.id, states, when)
            if reopened:
                store.finish_digest(digest.id, DigestState.PENDING, when, digest.last_error)
                count += reopened
    return count


def _plan(config: Config, store: SendStore, mailer: Mailer, digest_id: str) -> None:
    """Write who the digest goes to, in batches: nobody by name when the provider keeps the list."""
    size = mailer.batch_size or 1
    if not mailer.owns_list and config.digest.recipients == "subscribers":
        preferences.plan(config, store, digest_id, size, clock.now())  # journal.plan_subscribers, or by topics
        return
    audience = [] if mailer.owns_list else [(address, None) for address in config.digest.to]
    journal.plan(store, digest_id, audience, size, clock.now())


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
