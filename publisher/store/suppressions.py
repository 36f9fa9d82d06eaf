"""The bounces and complaints providers reported (table ``mail_events``), and the suppressions
they make: the SQL of :mod:`publisher.bounces`.

One row per (provider, event id, address): a replayed event finds its row and changes nothing.
Only events about an address on the local list are kept; one about anybody else is not written
at all (nothing about strangers is stored, and the answer cannot tell the two apart). Each row
names the digest and batch it answers: the ids the provider echoed back when there are any,
else the newest batch that carried the address.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from publisher.states import BatchState, MailEventKind, SubscriberState
from publisher.store.schema import UtcDateTime, batch_recipients, batches, digests, metadata, subscribers

mail_events = Table(
    "mail_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("provider", String(20), nullable=False),  # ses, mailgun, sendgrid, postmark, resend
    Column("event_id", String(200), nullable=False),  # the provider's id of the event
    Column("email_key", String(320), nullable=False),  # as subscribers.email_key
    Column("kind", String(16), nullable=False),  # MailEventKind
    Column("occurred_at", UtcDateTime, nullable=False),  # the provider's time of the event
    Column("received_at", UtcDateTime, nullable=False),
    Column("digest_id", String(64)),  # the digest and batch it answers, when known
    Column("batch_key", String(100)),
    Column("detail", Text),  # the provider's reason, one short line
    UniqueConstraint("provider", "event_id", "email_key"),
    Index("ix_mail_events_email", "email_key", "kind", "occurred_at"),
    Index("ix_mail_events_occurred", "occurred_at"),
)


class Outcome(StrEnum):
    UNKNOWN = "unknown"  # not on the list: nothing written
    REPLAY = "replay"  # seen before: nothing changed
    RECORDED = "recorded"  # written; the address stays as it was
    SUPPRESSED = "suppressed"  # written, and the address gets no further digest

    @property
    def changed(self) -> bool:
        return self in (Outcome.RECORDED, Outcome.SUPPRESSED)


_SUPPRESSES = {MailEventKind.HARD_BOUNCE: SubscriberState.BOUNCED, MailEventKind.COMPLAINT: SubscriberState.COMPLAINED}


def create(conn: Connection) -> None:
    """The migration: the table on an existing store."""
    metadata.create_all(conn, tables=[mail_events])


def record(
    conn: Connection,
    *,
    provider: str,
    event_id: str,
    email_key: str,
    kind: MailEventKind,
    occurred_at: datetime,
    digest_id: str | None,
    batch_key: str | None,
    detail: str | None,
    now: datetime,
    soft_limit: int,
    soft_since: datetime,
) -> Outcome:
    """Keep one event and suppress its address when it calls for it (see the module docstring)."""
    person = conn.execute(select(subscribers.c.state).where(subscribers.c.email_key == email_key)).first()
    if person is None:
        return Outcome.UNKNOWN
    digest_id, batch_key = _answered(conn, email_key, digest_id, batch_key)
    row = {
        "provider": provider,
        "event_id": event_id[:200],
        "email_key": email_key,
        "kind": kind,
        "occurred_at": min(occurred_at, now),  # a clock ahead of ours must not stretch a window
        "received_at": now,
        "digest_id": digest_id,
        "batch_key": batch_key,
        "detail": detail[:500] if detail else None,
    }
    if not _insert_once(conn, row):
        return Outcome.REPLAY
    state = _SUPPRESSES.get(kind)
    if kind == MailEventKind.SOFT_BOUNCE:
        soft = select(func.count()).where(
            mail_events.c.email_key == email_key,
            mail_events.c.kind == MailEventKind.SOFT_BOUNCE,
            mail_events.c.occurred_at >= soft_since,
        )
        if int(conn.execute(soft).scalar_one()) >= soft_limit:
            state = SubscriberState.BOUNCED
    if state is None or person.state != SubscriberState.ACTIVE:
        return Outcome.RECORDED
    _suppress(conn, email_key, state, now)
    return Outcome.SUPPRESSED


def suppress_listed(
    conn: Connection, *, provider: str, email_key: str, kind: MailEventKind, occurred_at: datetime, now: datetime
) -> bool:
    """An address on a provider's own suppression list: suppressed here too when it is still
    active, with an event saying so (once); False when it is not on the list or not active."""
    person = conn.execute(select(subscribers.c.state).where(subscribers.c.email_key == email_key)).first()
    if person is None or person.state != SubscriberState.ACTIVE:
        return False
    state = _SUPPRESSES.get(kind, SubscriberState.BOUNCED)
    row = {
        "provider": provider,
        "event_id": f"suppression-list:{kind}",
        "email_key": email_key,
        "kind": kind,
        "occurred_at": min(occurred_at, now),
        "received_at": now,
        "digest_id": None,
        "batch_key": None,
        "detail": f"on {provider}'s suppression list",
    }
    _insert_once(conn, row)
    _suppress(conn, email_key, state, now)
    return True


def counts_since(conn: Connection, since: datetime) -> dict[str, int]:
    """Events by kind that happened at or after ``since``; every kind present, 0 when none."""
    query = (
        select(mail_events.c.kind, func.count()).where(mail_events.c.occurred_at >= since).group_by(mail_events.c.kind)
    )
    found = {kind: int(count) for kind, count in conn.execute(query)}
    return {kind.value: found.get(kind.value, 0) for kind in MailEventKind}


def sent_since(conn: Connection, since: datetime) -> int:
    """Recipients of the batches accepted at or after ``since``, less the ones refused inside
    them: what a complaint rate is a share of."""
    accepted = (batches.c.state == BatchState.ACCEPTED) & (batches.c.updated_at >= since)
    total = conn.execute(select(func.coalesce(func.sum(batches.c.recipient_count), 0)).where(accepted)).scalar_one()
    refused = conn.execute(
        select(func.count())
        .select_from(batch_recipients.join(batches, batch_recipients.c.batch_id == batches.c.id))
        .where(accepted, batch_recipients.c.error.is_not(None))
    ).scalar_one()
    return max(0, int(total) - int(refused))


def _suppress(conn: Connection, email_key: str, state: SubscriberState, now: datetime) -> None:
    conn.execute(
        update(subscribers)
        .where(subscribers.c.email_key == email_key, subscribers.c.state == SubscriberState.ACTIVE)
        .values(state=state, unsubscribed_at=now)
    )


def _answered(
    conn: Connection, email_key: str, digest_id: str | None, batch_key: str | None
) -> tuple[str | None, str | None]:
    """The digest and batch an event answers: the batch whose key the provider echoed, else the
    digest it echoed, else the newest batch that carried the address. Ids that name nothing in
    the journal are not kept."""
    if batch_key:
        found = conn.execute(select(batches.c.digest_id).where(batches.c.key == batch_key)).first()
        if found is not None:
            return found.digest_id, batch_key
    if digest_id and conn.execute(select(digests.c.id).where(digests.c.id == digest_id)).first() is not None:
        return digest_id, None
    newest = conn.execute(
        select(batches.c.digest_id, batches.c.key)
        .select_from(batch_recipients.join(batches, batch_recipients.c.batch_id == batches.c.id))
        .where(batch_recipients.c.email_key == email_key)
        .order_by(batches.c.id.desc())
        .limit(1)
    ).first()
    return (newest.digest_id, newest.key) if newest is not None else (None, None)


def _insert_once(conn: Connection, row: dict[str, object]) -> bool:
    """Insert ``row`` unless its (provider, event_id, email_key) is there; whether it was new.
    ON CONFLICT DO NOTHING: two deliveries of one event racing each other write it once."""
    dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    # RETURNING rather than rowcount, which is -1 for this INSERT on PostgreSQL (psycopg).
    statement = dialect_insert(mail_events).values(row).on_conflict_do_nothing().returning(mail_events.c.id)
    return conn.execute(statement).first() is not None
