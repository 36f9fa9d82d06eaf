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

from sqlalchemy import Connection, Integer, and_, func, insert, or_, select, text, update

from publisher.states import BatchState, DigestState, SubscriberState
from publisher.store import Store
from publisher.store.schema import batch_recipients, batches, digests, subscribers

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


def plan(store: Store, digest_id: str, recipients: Sequence[tuple[str, int | None]], size: int, now: datetime) -> bool:
    """Write the batches of ``digest_id``: ``recipients`` (email, subscriber id) in chunks of ``size``.

    No recipients at all (the provider owns the list) makes one empty batch. Returns False,
    changing nothing, if the digest was planned already.
    """
    unique = list({email.lower(): (email, sub) for email, sub in reversed(recipients)}.values())[::-1]
    chunks = [unique[i : i + size] for i in range(0, len(unique), size)] or [[]]
    with store.transaction() as conn:
        if _planned_already(conn, digest_id):
            return False
        for number, chunk in enumerate(chunks, start=1):
            batch_id = _insert_batch(conn, digest_id, number, len(chunk), now)
            if chunk:
                conn.execute(
                    insert(batch_recipients),
                    [
                        {
                            "batch_id": batch_id,
                            "digest_id": digest_id,
                            "email": email,
                            "email_key": email.lower(),
                            "subscriber_id": sub,
                        }
                        for email, sub in chunk
                    ],
                )
    return True


def plan_subscribers(store: Store, digest_id: str, size: int, now: datetime) -> bool:
    """Write the batches of ``digest_id`` for every active local subscriber, by address, in
    chunks of ``size``: as :func:`plan` would, but in the database (INSERT ... SELECT), so that
    a list of 100,000 readers never becomes 100,000 Python objects.

    The count and the copy must see the same list: batch 1 is written first, which on SQLite
    takes the write lock (no unsubscribe can commit until this transaction does), and on
    PostgreSQL the list is locked against writes for the moment the copy takes.
    """
    with store.transaction() as conn:
        if _planned_already(conn, digest_id):
            return False
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE subscribers IN SHARE MODE"))
        first = _insert_batch(conn, digest_id, 1, 0, now)
        active = subscribers.c.state == SubscriberState.ACTIVE
        total = int(conn.execute(select(func.count()).select_from(subscribers).where(active)).scalar_one())
        counts = [min(size, total - start) for start in range(0, total, size)] or [0]
        conn.execute(update(batches).where(batches.c.id == first).values(recipient_count=counts[0]))
        if len(counts) > 1:
            conn.execute(insert(batches), [_batch_row(digest_id, n, c, now) for n, c in enumerate(counts[1:], start=2)])
        # Integer division on both databases ("/" between integers); SQLAlchemy's own "/" and "//"
        # would render a float division or FLOOR(), which SQLite may lack.
        position = func.row_number().over(order_by=subscribers.c.email_key) - 1
        number = position.self_group().op("/", precedence=8, return_type=Integer)(size) + 1
        ranked = (
            select(subscribers.c.id, subscribers.c.email, subscribers.c.email_key, number.label("number"))
            .where(active)
            .subquery()
        )
        rows = select(batches.c.id, batches.c.digest_id, ranked.c.email, ranked.c.email_key, ranked.c.id).join_from(
            ranked, batches, and_(batches.c.digest_id == digest_id, batches.c.number == ranked.c.number)
        )
        columns = ["batch_id", "digest_id", "email", "email_key", "subscriber_id"]
        conn.execute(insert(batch_recipients).from_select(columns, rows))
    return True


def _planned_already(conn: Connection, digest_id: str) -> bool:
    return conn.execute(select(batches.c.id).where(batches.c.digest_id == digest_id).limit(1)).first() is not None


def _batch_row(digest_id: str, number: int, count: int, now: datetime) -> dict[str, object]:
    return {
        "digest_id": digest_id,
        "number": number,
        "key": f"{digest_id}-{number:04d}",
        "state": PENDING,
        "recipient_count": count,
        "attempts": 0,
        "updated_at": now,
    }


def _insert_batch(conn: Connection, digest_id: str, number: int, count: int, now: datetime) -> int:
    return int(
        conn.execute(insert(batches).returning(batches.c.id), _batch_row(digest_id, number, count, now)).scalar_one()
    )


def batches_of(store: Store, digest_id: str) -> list[Batch]:
    with store.transaction() as conn:
        rows = conn.execute(select(batches).where(batches.c.digest_id == digest_id).order_by(batches.c.number))
        return [Batch(**row) for row in rows.mappings()]


def recipients(store: Store, batch_id: int, *, as_planned: bool = False) -> list[Planned]:
    """Who the batch goes to: its planned recipients, minus anyone unsubscribed since unless
    ``as_planned``."""
    query = (
        select(batch_recipients.c.email, subscribers.c.token)
        .select_from(batch_recipients.outerjoin(subscribers, batch_recipients.c.subscriber_id == subscribers.c.id))
        .where(batch_recipients.c.batch_id == batch_id)
        .order_by(batch_recipients.c.id)
    )
    if not as_planned:
        query = query.where(
            or_(batch_recipients.c.subscriber_id.is_(None), subscribers.c.state == SubscriberState.ACTIVE)
        )
    with store.transaction() as conn:
        return [Planned(email, token) for email, token in conn.execute(query).all()]


def claim(store: Store, batch: Batch, now: datetime) -> bool:
    """Move ``batch`` to sending if it is still as read (the conditional UPDATE is the lock).

    It also renews the digest's lease: a long send of many batches stays visibly alive.
    """
    with store.transaction() as conn:
        changed = conn.execute(
            update(batches)
            .where(batches.c.id == batch.id, batches.c.state == batch.state, batches.c.attempts == batch.attempts)
            .values(state=SENDING, attempts=batches.c.attempts + 1, updated_at=now)
        )
        if changed.rowcount != 1:
            return False
        conn.execute(update(digests).where(digests.c.id == batch.digest_id).values(claimed_at=now))
        return True


def mark(
    store: Store,
    batch_id: int,
    state: BatchState,
    now: datetime,
    *,
    error: str | None = None,
    provider_id: str | None = None,
    rejected: dict[str, str] | None = None,
) -> None:
    """Record what became of a batch; ``rejected`` maps addresses the provider refused to why."""
    with store.transaction() as conn:
        values: dict[str, object] = {"state": state, "updated_at": now, "last_error": error[:2000] if error else None}
        if provider_id is not None:
            values["provider_id"] = provider_id
        conn.execute(update(batches).where(batches.c.id == batch_id).values(**values))
        for address, reason in (rejected or {}).items():
            conn.execute(
                update(batch_recipients)
                .where(and_(batch_recipients.c.batch_id == batch_id, batch_recipients.c.email_key == address.lower()))
                .values(error=reason[:500])
            )


def reopen(store: Store, digest_id: str, states: tuple[BatchState, ...], now: datetime) -> int:
    """Put batches in ``states`` back to pending with a fresh count of attempts (the operator's
    --resend-in-doubt / --retry-failed)."""
    with store.transaction() as conn:
        changed = conn.execute(
            update(batches)
            .where(batches.c.digest_id == digest_id, batches.c.state.in_(states))
            .values(state=PENDING, attempts=0, updated_at=now)
        )
        return int(changed.rowcount)


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


def summary(store: Store, digest_id: str) -> Summary:
    planned = batches_of(store, digest_id)
    with store.transaction() as conn:
        rejected = conn.execute(
            select(func.count())
            .select_from(batch_recipients.join(batches, batch_recipients.c.batch_id == batches.c.id))
            .where(batch_recipients.c.digest_id == digest_id, batch_recipients.c.error.is_not(None))
            .where(batches.c.state == ACCEPTED)
        ).scalar_one()
    by_state: Counter[str] = Counter(b.state for b in planned)
    people: Counter[str] = Counter()
    for b in planned:
        people[b.state] += b.recipient_count
    errors = [f"batch {b.number}: {b.last_error}" for b in planned if b.state in (FAILED, IN_DOUBT) and b.last_error]
    return Summary(batches=by_state, recipients=people, rejected=int(rejected), errors=errors)


def incomplete_digests(store: Store) -> list[str]:
    """The ids of every digest that needs the operator (failed or in-doubt batches), oldest first."""
    with store.transaction() as conn:
        query = (
            select(digests.c.id)
            .where(digests.c.state == DigestState.INCOMPLETE)
            .order_by(digests.c.created_at, digests.c.id)
        )
        return [str(row) for row in conn.execute(query).scalars()]


def close(store: Store, digest_id: str) -> bool:
    """The operator's word that an incomplete digest is done with (its in-doubt batches were
    delivered, or its failed ones are given up): it stops being reported. Batches keep their
    states, so ``status`` still shows who was not reached. False if it was not incomplete."""
    with store.transaction() as conn:
        changed = conn.execute(
            update(digests)
            .where(digests.c.id == digest_id, digests.c.state == DigestState.INCOMPLETE)
            .values(state=DigestState.CLOSED)
        )
        return int(changed.rowcount) == 1
