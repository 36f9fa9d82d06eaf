"""The delivery journal's tables: batches and batch_recipients (publisher.journal owns the rules).

Each function runs inside the caller's transaction (:meth:`Store.transaction`), which
translates database errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, and_, func, insert, or_, select, text, update

from publisher.states import BatchState, SubscriberState
from publisher.store.schema import batch_recipients, batches, subscribers


def planned_already(conn: Connection, digest_id: str) -> bool:
    return conn.execute(select(batches.c.id).where(batches.c.digest_id == digest_id).limit(1)).first() is not None


def _row(digest_id: str, number: int, count: int, now: datetime) -> dict[str, object]:
    return {
        "digest_id": digest_id,
        "number": number,
        "key": f"{digest_id}-{number:04d}",
        "state": BatchState.PENDING,
        "recipient_count": count,
        "attempts": 0,
        "updated_at": now,
    }


def insert_batch(conn: Connection, digest_id: str, number: int, count: int, now: datetime) -> int:
    """A new pending batch; its id."""
    return int(conn.execute(insert(batches).returning(batches.c.id), _row(digest_id, number, count, now)).scalar_one())


def insert_recipients(conn: Connection, batch_id: int, digest_id: str, chunk: Sequence[tuple[str, int | None]]) -> None:
    """The batch's recipients: (email, subscriber id) each, in one INSERT."""
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


def plan_active_subscribers(conn: Connection, digest_id: str, size: int, now: datetime) -> None:
    """Every active local subscriber, by address, into batches of ``size`` (INSERT ... SELECT).

    The count and the copy must see the same list: batch 1 is written first, which on SQLite
    takes the write lock (no unsubscribe can commit until this transaction does), and on
    PostgreSQL the list is locked against writes for the moment the copy takes.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE subscribers IN SHARE MODE"))
    first = insert_batch(conn, digest_id, 1, 0, now)
    active = subscribers.c.state == SubscriberState.ACTIVE
    total = int(conn.execute(select(func.count()).select_from(subscribers).where(active)).scalar_one())
    counts = [min(size, total - start) for start in range(0, total, size)] or [0]
    conn.execute(update(batches).where(batches.c.id == first).values(recipient_count=counts[0]))
    if len(counts) > 1:
        conn.execute(insert(batches), [_row(digest_id, n, c, now) for n, c in enumerate(counts[1:], start=2)])
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


def of_digest(conn: Connection, digest_id: str) -> list[dict[str, Any]]:
    """The digest's batches as rows, by number."""
    rows = conn.execute(select(batches).where(batches.c.digest_id == digest_id).order_by(batches.c.number))
    return [dict(row) for row in rows.mappings()]


def recipients(conn: Connection, batch_id: int, *, as_planned: bool) -> list[tuple[str, str | None]]:
    """(email, unsubscribe token) of the batch's recipients, minus anyone unsubscribed since
    unless ``as_planned``."""
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
    return [(email, token) for email, token in conn.execute(query).all()]


def claim(conn: Connection, batch_id: int, state: BatchState, attempts: int, now: datetime) -> bool:
    """Move the batch to sending if it is still in ``state`` after ``attempts`` (the conditional
    UPDATE is the lock)."""
    changed = conn.execute(
        update(batches)
        .where(batches.c.id == batch_id, batches.c.state == state, batches.c.attempts == attempts)
        .values(state=BatchState.SENDING, attempts=batches.c.attempts + 1, updated_at=now)
    )
    return bool(changed.rowcount == 1)


def mark(
    conn: Connection,
    batch_id: int,
    values: dict[str, object],
    rejected: dict[str, str],
) -> None:
    """Set the batch's ``values``; note why the provider refused each of ``rejected``'s addresses."""
    conn.execute(update(batches).where(batches.c.id == batch_id).values(**values))
    for address, reason in rejected.items():
        conn.execute(
            update(batch_recipients)
            .where(and_(batch_recipients.c.batch_id == batch_id, batch_recipients.c.email_key == address.lower()))
            .values(error=reason[:500])
        )


def reopen(conn: Connection, digest_id: str, states: tuple[BatchState, ...], now: datetime) -> int:
    """Batches in ``states`` back to pending with a fresh count of attempts; how many."""
    changed = conn.execute(
        update(batches)
        .where(batches.c.digest_id == digest_id, batches.c.state.in_(states))
        .values(state=BatchState.PENDING, attempts=0, updated_at=now)
    )
    return int(changed.rowcount)


def rejected_count(conn: Connection, digest_id: str) -> int:
    """Recipients of the digest's accepted batches that the provider refused."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(batch_recipients.join(batches, batch_recipients.c.batch_id == batches.c.id))
            .where(batch_recipients.c.digest_id == digest_id, batch_recipients.c.error.is_not(None))
            .where(batches.c.state == BatchState.ACCEPTED)
        ).scalar_one()
    )
