"""The bounces and complaints providers reported (table ``mail_events``), and the suppressions
they make: the SQL of :mod:`publisher.bounces`.

One row per (provider, event id, address): a replayed event finds its row and changes nothing.
Only events about an address on the local list are kept; one about anybody else is not written
at all (nothing about strangers is stored, and the answer cannot tell the two apart). Each row
names the digest and batch it answers: the ids the provider echoed back when there are any,
else the newest batch that carried the address. An event about a confirmation or a welcome
(publisher.notices: its key is the id echoed back) names that notice's key as its batch.

A reader still pending (signed up, not confirmed) is suppressed as an active one is: a hard
bounce or a complaint about the confirmation email means no further one is sent
(publisher.store.signups refuses a sign-up for a suppressed address).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from publisher.states import BatchState, MailEventKind, SubscriberState
from publisher.store.notices import notices
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


_SUPPRESSES = {MailEventKind.HARD_BOUNCE: SubscriberState.BOUNCED, MailEventKind.COMPLAINT: SubscriberState.COMPLAINED}
# Who an event can suppress: the ones still mailed (a digest, or a confirmation).
_MAILED = (SubscriberState.ACTIVE, SubscriberState.PENDING)


# Where an event without echoed ids finds the newest batch that carried its address: without
# it that lookup read every recipient of every digest ever sent.
recipients_by_address = Index("ix_batch_recipients_email", batch_recipients.c.email_key)


def create(conn: Connection) -> None:
    """The migration: the table, and the index on an existing store."""
    metadata.create_all(conn, tables=[mail_events])
    recipients_by_address.create(conn, checkfirst=True)


@dataclass(frozen=True)
class NewEvent:
    provider: str
    event_id: str
    email_key: str
    kind: MailEventKind
    occurred_at: datetime
    digest_id: str | None
    batch_key: str | None
    detail: str | None


def record(
    conn: Connection, events: Sequence[NewEvent], *, now: datetime, soft_limit: int, soft_since: datetime
) -> list[Outcome]:
    """Keep each event once and suppress the addresses they call for (see the module docstring).

    Set-based: a provider's batch (SendGrid sends up to a thousand events a request) costs a
    few lookups in all and one INSERT per event, not a round of queries per event.
    """
    listed = {e.email_key for e in events}
    states: dict[str, str] = {
        key: state for key, state in _by_key(conn, select(subscribers.c.email_key, subscribers.c.state), listed)
    }
    answered = _answered(conn, [e for e in events if e.email_key in states])
    insert_once = _insert_statement(conn)
    outcomes: list[Outcome] = []
    suppress: dict[str, SubscriberState] = {}
    for event in events:
        if event.email_key not in states:
            outcomes.append(Outcome.UNKNOWN)
            continue
        digest_id, batch_key = answered[(event.digest_id, event.batch_key, event.email_key)]
        row = {
            "provider": event.provider,
            "event_id": event.event_id[:200],
            "email_key": event.email_key,
            "kind": event.kind,
            "occurred_at": min(event.occurred_at, now),  # a clock ahead of ours must not stretch a window
            "received_at": now,
            "digest_id": digest_id,
            "batch_key": batch_key,
            "detail": event.detail[:500] if event.detail else None,
        }
        if conn.execute(insert_once, row).first() is None:
            outcomes.append(Outcome.REPLAY)
            continue
        state = _SUPPRESSES.get(event.kind)
        if event.kind == MailEventKind.SOFT_BOUNCE and _soft_count(conn, event.email_key, soft_since) >= soft_limit:
            state = SubscriberState.BOUNCED
        if state is None or states[event.email_key] not in _MAILED:
            outcomes.append(Outcome.RECORDED)
            continue
        states[event.email_key] = suppress[event.email_key] = state
        outcomes.append(Outcome.SUPPRESSED)
    for state in set(suppress.values()):
        for chunk in _chunks(sorted(k for k, s in suppress.items() if s == state)):
            _suppress(conn, chunk, state, now)
    return outcomes


def _soft_count(conn: Connection, email_key: str, since: datetime) -> int:
    soft = select(func.count()).where(
        mail_events.c.email_key == email_key,
        mail_events.c.kind == MailEventKind.SOFT_BOUNCE,
        mail_events.c.occurred_at >= since,
    )
    return int(conn.execute(soft).scalar_one())


def suppress_listed(
    conn: Connection, *, provider: str, email_key: str, kind: MailEventKind, occurred_at: datetime, now: datetime
) -> bool:
    """An address on a provider's own suppression list: suppressed here too when it is still
    active (or pending), with an event saying so (once); False when it is not on the list or
    suppressed or unsubscribed already."""
    person = conn.execute(select(subscribers.c.state).where(subscribers.c.email_key == email_key)).first()
    if person is None or person.state not in _MAILED:
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
    conn.execute(_insert_statement(conn), row)
    _suppress(conn, [email_key], state, now)
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
    them, and the confirmations and welcomes accepted then (a complaint about one of those is
    counted too): what a complaint rate is a share of."""
    accepted = (batches.c.state == BatchState.ACCEPTED) & (batches.c.updated_at >= since)
    total = conn.execute(select(func.coalesce(func.sum(batches.c.recipient_count), 0)).where(accepted)).scalar_one()
    refused = conn.execute(
        select(func.count())
        .select_from(batch_recipients.join(batches, batch_recipients.c.batch_id == batches.c.id))
        .where(accepted, batch_recipients.c.error.is_not(None))
    ).scalar_one()
    alone = conn.execute(
        select(func.count()).where(notices.c.state == BatchState.ACCEPTED, notices.c.updated_at >= since)
    ).scalar_one()
    return max(0, int(total) - int(refused)) + int(alone)


def of_key(conn: Connection, email_key: str) -> list[dict[str, Any]]:
    """What providers reported about one reader, oldest first (publisher.gdpr's export)."""
    query = (
        select(mail_events)
        .where(mail_events.c.email_key == email_key)
        .order_by(mail_events.c.occurred_at, mail_events.c.id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def erase(conn: Connection, email_key: str) -> None:
    """Delete them (publisher.gdpr's erasure); an event arriving later about the erased
    address finds it off the list and is not written."""
    conn.execute(delete(mail_events).where(mail_events.c.email_key == email_key))


def _suppress(conn: Connection, email_keys: Sequence[str], state: SubscriberState, now: datetime) -> None:
    conn.execute(
        update(subscribers)
        .where(subscribers.c.email_key.in_(email_keys), subscribers.c.state.in_(_MAILED))
        .values(state=state, unsubscribed_at=now)
    )


Ids = tuple[str | None, str | None]


def _answered(conn: Connection, events: Sequence[NewEvent]) -> dict[tuple[str | None, str | None, str], Ids]:
    """The digest and batch each event answers, by (digest_id, batch_key, email_key) as it came:
    the notice or the batch whose key the provider echoed, else the digest it echoed, else the
    newest batch that carried the address. Ids that name nothing in the journal are not kept."""
    echoed_batches = {e.batch_key for e in events if e.batch_key}
    batch_digest: dict[str, str] = dict(_by_key(conn, select(batches.c.key, batches.c.digest_id), echoed_batches))
    echoed_digests = {e.digest_id for e in events if e.digest_id}
    known_digests = {row[0] for row in _by_key(conn, select(digests.c.id), echoed_digests)}
    # A notice is sent with its key as both ids (publisher.notices.outgoing).
    known_notices = {row[0] for row in _by_key(conn, select(notices.c.key), echoed_batches | echoed_digests)}
    found: dict[tuple[str | None, str | None, str], Ids] = {}
    unsure: set[str] = set()
    for e in events:
        echoed = (e.digest_id, e.batch_key, e.email_key)
        notice = next((k for k in (e.batch_key, e.digest_id) if k in known_notices), None)
        if notice is not None:
            found[echoed] = (None, notice)
        elif e.batch_key in batch_digest:
            found[echoed] = (batch_digest[e.batch_key], e.batch_key)
        elif e.digest_id in known_digests:
            found[echoed] = (e.digest_id, None)
        else:
            unsure.add(e.email_key)
    newest = select(batch_recipients.c.email_key, func.max(batch_recipients.c.batch_id))
    newest_batch: dict[str, int] = dict(_by_key(conn, newest.group_by(batch_recipients.c.email_key), unsure))
    batch_ids: dict[int, Ids] = {
        batch_id: (digest_id, key)
        for batch_id, digest_id, key in _by_key(
            conn, select(batches.c.id, batches.c.digest_id, batches.c.key), set(newest_batch.values())
        )
    }
    for e in events:
        newest_ids = batch_ids.get(newest_batch.get(e.email_key, -1), (None, None))
        found.setdefault((e.digest_id, e.batch_key, e.email_key), newest_ids)
    return found


def _by_key(conn: Connection, query: Select[Any], values: set[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``query`` whose first column is one of ``values``, a chunk of them at a time."""
    column = query.selected_columns[0]
    rows: list[tuple[Any, ...]] = []
    for chunk in _chunks(sorted(values)):
        rows.extend(tuple(row) for row in conn.execute(query.where(column.in_(chunk))))
    return rows


def _chunks(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _insert_statement(conn: Connection) -> Any:
    """INSERT of one event unless its (provider, event_id, email_key) is there, returning its id
    only when it was new: ON CONFLICT DO NOTHING, so two deliveries of one event racing each
    other write it once. RETURNING rather than rowcount, which is -1 here on PostgreSQL."""
    dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return dialect_insert(mail_events).on_conflict_do_nothing().returning(mail_events.c.id)
