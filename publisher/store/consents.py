"""The ``consents`` table: each reader's consent, as it was given (issue 14).

One row per act: a sign-up form sent (``form``), a confirmation clicked (``confirm``), an
import (``import``) or an operator's ``subscribers add`` (``cli``); with the exact words the
reader was shown (or the operator's note), and the client address when [signup]
record_client says so. Rows are only added: the record is what happened, not what is now.
They go with the subscriber's row (ON DELETE CASCADE).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)

from publisher.store.schema import UtcDateTime, metadata, subscribers


class ConsentMethod(StrEnum):
    FORM = "form"  # the sign-up form was sent (a confirmation email queued)
    CONFIRM = "confirm"  # the confirmation button was pressed
    IMPORT = "import"  # `publisher subscribers import`
    CLI = "cli"  # `publisher subscribers add`


consents = Table(
    "consents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("method", String(16), nullable=False),
    Column("text", Text, nullable=False),  # what the reader was shown, word for word
    Column("client", String(64)),  # the client's address, when [signup] record_client
    Index("ix_consents_method_created", "method", "created_at"),
)

_CHUNK = 500  # addresses per statement: well under every backend's limit on parameters


def record(
    conn: Connection, subscriber_id: int, method: ConsentMethod, text: str, now: datetime, client: str | None
) -> None:
    conn.execute(
        insert(consents),
        {"subscriber_id": subscriber_id, "created_at": now, "method": method, "text": text, "client": client},
    )


def record_keys(conn: Connection, email_keys: Sequence[str], method: ConsentMethod, text: str, now: datetime) -> None:
    """One row for each subscriber in ``email_keys`` (an import: no client address)."""
    for start in range(0, len(email_keys), _CHUNK):
        chunk = email_keys[start : start + _CHUNK]
        ids = conn.execute(select(subscribers.c.id).where(subscribers.c.email_key.in_(chunk))).scalars().all()
        if ids:
            rows = [
                {"subscriber_id": i, "created_at": now, "method": method, "text": text, "client": None} for i in ids
            ]
            conn.execute(insert(consents), rows)


def of(conn: Connection, subscriber_id: int) -> list[dict[str, object]]:
    """A reader's consent record, oldest first."""
    query = select(consents).where(consents.c.subscriber_id == subscriber_id).order_by(consents.c.id)
    return [dict(row) for row in conn.execute(query).mappings()]


def of_key(conn: Connection, email_key: str) -> list[dict[str, object]]:
    """The consent record of the reader with ``email_key``, oldest first (publisher.gdpr's export)."""
    query = select(consents).where(_theirs(email_key)).order_by(consents.c.id)
    return [dict(row) for row in conn.execute(query).mappings()]


def erase(conn: Connection, email_key: str) -> None:
    """Delete it (publisher.gdpr's erasure): explicit, not left to the foreign key's cascade."""
    conn.execute(delete(consents).where(_theirs(email_key)))


def _theirs(email_key: str) -> ColumnElement[bool]:
    return consents.c.subscriber_id.in_(select(subscribers.c.id).where(subscribers.c.email_key == email_key))


def count_since(conn: Connection, method: ConsentMethod, since: datetime) -> int:
    query = (
        select(func.count()).select_from(consents).where(consents.c.method == method, consents.c.created_at >= since)
    )
    return int(conn.execute(query).scalar_one())
