"""The ``notices`` table: the emails sent to one reader alone (a sign-up's confirmation, a
welcome), each kept in the delivery journal as a digest's batch is (see publisher.journal).

    pending --claim--> sending --> accepted | failed | pending (a passing failure) | in_doubt

A notice is written, message and all, in the same transaction as the change that calls for
it (a sign-up, a confirmation), before any request; it is claimed with a conditional UPDATE
(the lock: of two senders only one sees the row change) and its ``key`` is the idempotency
key every request for it carries. So it is sent once: a crash mid-request leaves it
``sending``, which a provider that dedupes on the key may repeat and any other holds in doubt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from publisher.states import BatchState, SubscriberState
from publisher.store.schema import UtcDateTime, metadata, subscribers

if TYPE_CHECKING:
    from publisher.store import Store


class NoticeKind(StrEnum):
    CONFIRM = "confirm"
    WELCOME = "welcome"


notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(100), nullable=False, unique=True),  # the idempotency key; never changes
    Column("kind", String(16), nullable=False),
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("message", LargeBinary, nullable=False),  # frozen: a retry sends the same bytes
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("provider_id", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_notices_subscriber", "subscriber_id", "kind", "created_at"),
    Index("ix_notices_state", "state"),
)


@dataclass(frozen=True)
class Notice:
    id: int
    key: str
    kind: NoticeKind
    subscriber_id: int
    email: str
    message: bytes
    state: BatchState
    attempts: int
    last_error: str | None
    provider_id: str | None
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", BatchState(self.state))
        object.__setattr__(self, "kind", NoticeKind(self.kind))
        object.__setattr__(self, "message", bytes(self.message))


def queue(
    conn: Connection, key: str, kind: NoticeKind, subscriber_id: int, email: str, message: bytes, now: datetime
) -> None:
    """Write a notice to send, inside the caller's transaction."""
    conn.execute(
        insert(notices),
        {
            "key": key,
            "kind": kind,
            "subscriber_id": subscriber_id,
            "email": email,
            "message": message,
            "state": BatchState.PENDING,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        },
    )


def last_queued(conn: Connection, subscriber_id: int, kind: NoticeKind) -> datetime | None:
    """When the newest notice of ``kind`` for this reader was written, if ever."""
    query = select(func.max(notices.c.created_at)).where(
        notices.c.subscriber_id == subscriber_id, notices.c.kind == kind
    )
    value: datetime | None = conn.execute(query).scalar_one()
    if value is not None and value.tzinfo is None:  # SQLite's max() bypasses the column type
        value = UtcDateTime().process_result_value(value, conn.dialect)
    return value


def unfinished(store: Store) -> list[Notice]:
    """The notices still to send (pending) or found mid-send (sending), oldest first."""
    query = (
        select(notices)
        .where(notices.c.state.in_((BatchState.PENDING, BatchState.SENDING)))
        .order_by(notices.c.id)
        .limit(1000)
    )
    with store.transaction() as conn:
        return [Notice(**row) for row in conn.execute(query).mappings()]


SUPPRESSED = "not sent: the address bounced or complained"  # a failure on purpose, not a fault


def drop_suppressed(store: Store, now: datetime) -> int:
    """Fail the notices still to send to an address suppressed since they were queued (a bounce
    or complaint reported meanwhile, publisher.bounces): they are never sent. How many."""
    suppressed = select(subscribers.c.id).where(
        subscribers.c.state.in_((SubscriberState.BOUNCED, SubscriberState.COMPLAINED))
    )
    with store.transaction() as conn:
        changed = conn.execute(
            update(notices)
            .where(notices.c.state == BatchState.PENDING, notices.c.subscriber_id.in_(suppressed))
            .values(state=BatchState.FAILED, updated_at=now, last_error=SUPPRESSED)
        )
        return int(changed.rowcount)


def claim(store: Store, notice: Notice, now: datetime) -> bool:
    """Move ``notice`` to sending if it is still as read."""
    with store.transaction() as conn:
        changed = conn.execute(
            update(notices)
            .where(notices.c.id == notice.id, notices.c.state == notice.state, notices.c.attempts == notice.attempts)
            .values(state=BatchState.SENDING, attempts=notices.c.attempts + 1, updated_at=now)
        )
        return int(changed.rowcount) == 1


def mark(
    store: Store,
    notice_id: int,
    state: BatchState,
    now: datetime,
    *,
    error: str | None = None,
    provider_id: str | None = None,
) -> None:
    values: dict[str, object] = {"state": state, "updated_at": now, "last_error": error[:2000] if error else None}
    if provider_id is not None:
        values["provider_id"] = provider_id
    with store.transaction() as conn:
        conn.execute(update(notices).where(notices.c.id == notice_id).values(**values))


def troubled(store: Store, since: datetime) -> dict[str, int]:
    """The notices that failed or may not have gone out (in doubt) since ``since``, by state;
    those failed on purpose (the address was suppressed) left out."""
    query = (
        select(notices.c.state, func.count())
        .where(
            notices.c.state.in_((BatchState.FAILED, BatchState.IN_DOUBT)),
            notices.c.updated_at >= since,
            or_(notices.c.last_error.is_(None), notices.c.last_error != SUPPRESSED),
        )
        .group_by(notices.c.state)
    )
    with store.transaction() as conn:
        return {str(state): int(count) for state, count in conn.execute(query)}


def by_state(store: Store) -> dict[str, int]:
    query = select(notices.c.state, func.count()).group_by(notices.c.state)
    with store.transaction() as conn:
        return {str(state): int(count) for state, count in conn.execute(query)}


def of_key(conn: Connection, email_key: str) -> list[dict[str, object]]:
    """The notices of the reader with ``email_key``, message and all, oldest first
    (publisher.gdpr's export)."""
    query = select(notices).where(_theirs(email_key)).order_by(notices.c.id)
    return [dict(row) for row in conn.execute(query).mappings()]


def erase(conn: Connection, email_key: str) -> None:
    """Delete them (publisher.gdpr's erasure), a notice not sent yet too: it is not sent."""
    conn.execute(delete(notices).where(_theirs(email_key)))


def _theirs(email_key: str) -> ColumnElement[bool]:
    return notices.c.subscriber_id.in_(select(subscribers.c.id).where(subscribers.c.email_key == email_key))
