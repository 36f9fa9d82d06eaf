"""The subscribers table (publisher.subscribers owns the rules: addresses, tokens, imports).

Each function runs inside the caller's transaction (:meth:`Store.transaction`), which
translates database errors. Rows come back as plain dicts of the table's columns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from publisher.states import SubscriberState
from publisher.store.schema import subscribers

_ACTIVE = subscribers.c.state == SubscriberState.ACTIVE


def states(conn: Connection) -> dict[str, str]:
    """Every subscriber's state, by email key."""
    return {email_key: state for email_key, state in conn.execute(select(subscribers.c.email_key, subscribers.c.state))}


def insert_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(subscribers), list(rows))


def resubscribe(conn: Connection, email_key: str, token: str) -> None:
    conn.execute(
        update(subscribers)
        .where(subscribers.c.email_key == email_key)
        .values(state=SubscriberState.ACTIVE, unsubscribed_at=None, token=token)
    )


def by_key(conn: Connection, email_key: str) -> dict[str, Any] | None:
    row = conn.execute(select(subscribers).where(subscribers.c.email_key == email_key)).mappings().first()
    return dict(row) if row else None


def by_token(conn: Connection, token: str) -> dict[str, Any] | None:
    row = conn.execute(select(subscribers).where(subscribers.c.token == token)).mappings().first()
    return dict(row) if row else None


def unsubscribe_key(conn: Connection, email_key: str, now: datetime) -> bool:
    """Unsubscribe the active subscriber ``email_key``; False if there is none."""
    changed = conn.execute(
        update(subscribers)
        .where(subscribers.c.email_key == email_key, _ACTIVE)
        .values(state=SubscriberState.UNSUBSCRIBED, unsubscribed_at=now)
    )
    return bool(changed.rowcount == 1)


def unsubscribe_token(conn: Connection, token: str, now: datetime) -> None:
    conn.execute(
        update(subscribers)
        .where(subscribers.c.token == token, subscribers.c.state.in_((SubscriberState.ACTIVE, SubscriberState.PENDING)))
        .values(state=SubscriberState.UNSUBSCRIBED, unsubscribed_at=now)
    )


def listing(conn: Connection, *, include_unsubscribed: bool) -> list[dict[str, Any]]:
    query = select(subscribers).order_by(subscribers.c.email_key)
    if not include_unsubscribed:
        query = query.where(_ACTIVE)
    return [dict(row) for row in conn.execute(query).mappings()]


def any_active(conn: Connection) -> bool:
    """One row looked at, where counting reads the whole list."""
    return conn.execute(select(subscribers.c.id).where(_ACTIVE).limit(1)).first() is not None


def counts(conn: Connection) -> Counter[str]:
    """Subscribers by state."""
    query = select(subscribers.c.state, func.count()).group_by(subscribers.c.state)
    return Counter({state: int(count) for state, count in conn.execute(query)})
