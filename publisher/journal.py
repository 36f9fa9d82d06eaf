"""The delivery journal: a digest's batches (one request each) and the recipients of each.

    pending --claim--> sending --> accepted           the endpoint took it
                                   failed             refused for good, or still failing after
                                                      [mailer] max_attempts: not retried silently
                                   pending            a passing failure: the next run retries
                                   in_doubt           it may have been delivered (crash, timeout)

Every recipient of a digest is written, split into batches, before the first request
(:func:`plan`; a local list with :func:`plan_subscribers`, in one INSERT ... SELECT), and each
state change is committed before the next step, so after a crash the journal tells exactly
which requests were made. A batch's ``key`` (its idempotency key) never changes, so a resend
of an in-doubt batch can be recognised by providers that honour keys.

A batch's ``attempts`` counts its claims (one per run that sent it, whatever the quick retries
within that run) since it was planned or last reopened: :func:`reopen`, the operator's
``--retry-failed`` or ``--resend-in-doubt``, sets it back to 0, so a batch that was given up
on gets ``max_attempts`` more. Whether it was ever tried (:attr:`Batch.tried`) survives that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from publisher.states import BatchState
from publisher.store import batches as rows
from publisher.store import digests
from publisher.store.send import SendStore

# The batch states by their short names, as callers have long used them.
PENDING, SENDING, ACCEPTED = BatchState.PENDING, BatchState.SENDING, BatchState.ACCEPTED
FAILED, IN_DOUBT = BatchState.FAILED, BatchState.IN_DOUBT
FINISHED = (ACCEPTED, FAILED, IN_DOUBT)


@dataclass(frozen=True)
class Batch:
    id: int
    digest_id: str
    number: int
    key: str
    state: BatchState
    recipient_count: int
    attempts: int
    last_error: str | None
    provider_id: str | None
    updated_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", BatchState(self.state))  # read back as the plain string stored

    @property
    def tried(self) -> bool:
        """Sent at least once: claimed since it was planned, or reopened (which keeps its last error)."""
        return self.attempts > 0 or self.last_error is not None


class Planned(NamedTuple):
    """One recipient in a batch; ``token`` is the subscriber's unsubscribe token (local list).

    A tuple, made straight from a row: a batch reads a thousand of them."""

    email: str
    token: str | None


def plan(
    store: SendStore, digest_id: str, recipients: Sequence[tuple[str, int | None]], size: int, now: datetime
) -> bool:
    """Write the batches of ``digest_id``: ``recipients`` (email, subscriber id) in chunks of ``size``.

    No recipients at all (the provider owns the list) makes one empty batch. Returns False,
    changing nothing, if the digest was planned already.
    """
    unique = list({email.lower(): (email, sub) for email, sub in reversed(recipients)}.values())[::-1]
    chunks = [unique[i : i + size] for i in range(0, len(unique), size)] or [[]]
    with store.transaction() as tx:
        if rows.planned_already(tx, digest_id):
            return False
        for number, chunk in enumerate(chunks, start=1):
            batch_id = rows.insert_batch(tx, digest_id, number, len(chunk), now)
            if chunk:
                rows.insert_recipients(tx, batch_id, digest_id, chunk)
    return True


def plan_subscribers(store: SendStore, digest_id: str, size: int, now: datetime) -> bool:
    """Write the batches of ``digest_id`` for every active local subscriber, by address, in
    chunks of ``size``: as :func:`plan` would, but in the database (INSERT ... SELECT), so that
    a list of 100,000 readers never becomes 100,000 Python objects
    (:func:`publisher.store.batches.plan_active_subscribers` says how the list is held still).
    """
    with store.transaction() as tx:
        if rows.planned_already(tx, digest_id):
            return False
        rows.plan_active_subscribers(tx, digest_id, size, now)
    return True


def batches_of(store: SendStore, digest_id: str) -> list[Batch]:
    with store.transaction() as tx:
        return [Batch(**row) for row in rows.of_digest(tx, digest_id)]


def recipients(store: SendStore, batch_id: int, *, as_planned: bool = False) -> list[Planned]:
    """Who the batch goes to: its planned recipients, minus anyone unsubscribed since unless
    ``as_planned``."""
    with store.transaction() as tx:
        return [Planned(email, token) for email, token in rows.recipients(tx, batch_id, as_planned=as_planned)]


def claim(store: SendStore, batch: Batch, now: datetime) -> bool:
    """Move ``batch`` to sending if it is still as read (the conditional UPDATE is the lock).

    It also renews the digest's lease: a long send of many batches stays visibly alive.
    """
    with store.transaction() as tx:
        if not rows.claim(tx, batch.id, batch.state, batch.attempts, now):
            return False
        digests.renew_lease(tx, batch.digest_id, now)
        return True


def mark(
    store: SendStore,
    batch_id: int,
    state: BatchState,
    now: datetime,
    *,
    error: str | None = None,
    provider_id: str | None = None,
    rejected: dict[str, str] | None = None,
) -> None:
    """Record what became of a batch; ``rejected`` maps addresses the provider refused to why."""
    values: dict[str, object] = {"state": state, "updated_at": now, "last_error": error[:2000] if error else None}
    if provider_id is not None:
        values["provider_id"] = provider_id
    with store.transaction() as tx:
        rows.mark(tx, batch_id, values, rejected or {})


def reopen(store: SendStore, digest_id: str, states: tuple[BatchState, ...], now: datetime) -> int:
    """Put batches in ``states`` back to pending with a fresh count of attempts (the operator's
    --resend-in-doubt / --retry-failed)."""
    with store.transaction() as tx:
        return rows.reopen(tx, digest_id, states, now)


@dataclass(frozen=True)
class Summary:
    """Batches by state, recipients reached, and the refusals worth showing."""

    batches: Counter[str]
    recipients: Counter[str]
    rejected: int
    errors: list[str]

    @property
    def reached(self) -> int:
        return self.recipients[ACCEPTED] - self.rejected

    @property
    def finished(self) -> bool:
        return not (self.batches[PENDING] or self.batches[SENDING])


def summary(store: SendStore, digest_id: str) -> Summary:
    planned = batches_of(store, digest_id)
    with store.transaction() as tx:
        rejected = rows.rejected_count(tx, digest_id)
    by_state: Counter[str] = Counter(b.state for b in planned)
    people: Counter[str] = Counter()
    for b in planned:
        people[b.state] += b.recipient_count
    errors = [f"batch {b.number}: {b.last_error}" for b in planned if b.state in (FAILED, IN_DOUBT) and b.last_error]
    return Summary(batches=by_state, recipients=people, rejected=rejected, errors=errors)


def incomplete_digests(store: SendStore) -> list[str]:
    """The ids of every digest that needs the operator (failed or in-doubt batches), oldest first."""
    with store.transaction() as tx:
        return digests.incomplete(tx)


def close(store: SendStore, digest_id: str) -> bool:
    """The operator's word that an incomplete digest is done with (its in-doubt batches were
    delivered, or its failed ones are given up): it stops being reported. Batches keep their
    states, so ``status`` still shows who was not reached. False if it was not incomplete."""
    with store.transaction() as tx:
        return digests.close_incomplete(tx, digest_id)
