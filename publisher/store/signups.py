"""The transactions of a sign-up and of its confirmation: the subscriber's row, its consent
record and the notice to send change together or not at all (publisher.signup decides what
to write; this module only writes it).

Each takes the subscriber list's write lock first (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
row, FOR UPDATE), so that two sign-ups for one address at the same moment cannot both find
no confirmation sent yet and both queue one.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select, update

from publisher.errors import StoreConflict
from publisher.states import SubscriberState
from publisher.store import consents, notices
from publisher.store.consents import ConsentMethod
from publisher.store.notices import NoticeKind
from publisher.store.schema import subscribers

if TYPE_CHECKING:
    from publisher.store import Store

# Makes a notice's message: (subscriber token, now) -> (key, message bytes).
Render = Callable[[str, datetime], tuple[str, bytes]]


class SignUpOutcome(StrEnum):
    QUEUED = "queued"  # a confirmation email is on its way
    RECENT = "recent"  # one was queued within the window: nothing more is sent
    ACTIVE = "active"  # subscribed already: nothing is sent
    SUPPRESSED = "suppressed"  # bounced or complained (publisher.bounces): nothing is sent, it stays so


class ConfirmOutcome(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY = "already"
    STALE = "stale"  # the reader unsubscribed after this link was sent: it no longer subscribes
    SUPPRESSED = "suppressed"  # the address bounced or complained: a link does not bring it back
    UNKNOWN = "unknown"  # no such reader (any more)


# Addresses a provider reported as bounced or complained: no sign-up or old link mails or
# activates them again.
SUPPRESSED = frozenset({SubscriberState.BOUNCED, SubscriberState.COMPLAINED})


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def sign_up(
    store: Store,
    address: str,
    email_key: str,
    now: datetime,
    window: timedelta,
    render: Render,
    consent_text: str,
    client: str | None,
) -> SignUpOutcome:
    """Record a sign-up for ``address`` (normalized) and queue its confirmation, unless one was
    queued within ``window``, the address is subscribed already, or it is suppressed."""
    try:
        return _sign_up(store, address, email_key, now, window, render, consent_text, client)
    except StoreConflict:  # a sign-up for the same new address committed first: that one mails
        return SignUpOutcome.RECENT


def _sign_up(
    store: Store,
    address: str,
    email_key: str,
    now: datetime,
    window: timedelta,
    render: Render,
    consent_text: str,
    client: str | None,
) -> SignUpOutcome:
    with store.transaction() as conn:
        _lock(conn)
        row = (
            conn.execute(select(subscribers).where(subscribers.c.email_key == email_key).with_for_update())
            .mappings()
            .first()
        )
        if row is None:
            token = secrets.token_urlsafe(18)
            subscriber_id = int(
                conn.execute(
                    insert(subscribers).returning(subscribers.c.id),
                    {
                        "email": address,
                        "email_key": email_key,
                        "name": None,
                        "token": token,
                        "state": SubscriberState.PENDING,
                        "created_at": now,
                    },
                ).scalar_one()
            )
            email = address
        else:
            if row["state"] == SubscriberState.ACTIVE:
                return SignUpOutcome.ACTIVE
            if row["state"] in SUPPRESSED:  # mailing it again is what the suppression stops
                return SignUpOutcome.SUPPRESSED
            subscriber_id, token, email = int(row["id"]), str(row["token"]), str(row["email"])
            last = notices.last_queued(conn, subscriber_id, NoticeKind.CONFIRM)
            if last is not None and now < last + window:
                return SignUpOutcome.RECENT
        key, message = render(token, now)
        notices.queue(conn, key, NoticeKind.CONFIRM, subscriber_id, email, message, now)
        consents.record(conn, subscriber_id, ConsentMethod.FORM, consent_text, now, client)
        return SignUpOutcome.QUEUED


def confirm(
    store: Store,
    token: str,
    issued: datetime,
    now: datetime,
    render: Render,
    consent_text: str,
    client: str | None,
    *,
    welcome: bool = True,
) -> ConfirmOutcome:
    """Make the reader holding ``token`` (checked already) active, with its consent recorded and
    a welcome queued; a link sent before the reader last unsubscribed subscribes nobody."""
    with store.transaction() as conn:
        _lock(conn)
        row = conn.execute(select(subscribers).where(subscribers.c.token == token).with_for_update()).mappings().first()
        if row is None:
            return ConfirmOutcome.UNKNOWN
        if row["state"] == SubscriberState.ACTIVE:
            return ConfirmOutcome.ALREADY
        if row["state"] in SUPPRESSED:  # only the operator's `subscribers add` lifts a suppression
            return ConfirmOutcome.SUPPRESSED
        gone = row["unsubscribed_at"]
        if row["state"] == SubscriberState.UNSUBSCRIBED and gone is not None and gone >= issued:
            return ConfirmOutcome.STALE
        subscriber_id = int(row["id"])
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(state=SubscriberState.ACTIVE, unsubscribed_at=None)
        )
        consents.record(conn, subscriber_id, ConsentMethod.CONFIRM, consent_text, now, client)
        if not welcome:
            return ConfirmOutcome.CONFIRMED
        key, message = render(token, now)
        notices.queue(conn, key, NoticeKind.WELCOME, subscriber_id, str(row["email"]), message, now)
        return ConfirmOutcome.CONFIRMED


def activity(store: Store, since: datetime) -> tuple[int, int]:
    """Sign-ups (confirmation emails queued) and confirmations at or after ``since``."""
    with store.transaction() as conn:
        return (
            consents.count_since(conn, ConsentMethod.FORM, since),
            consents.count_since(conn, ConsentMethod.CONFIRM, since),
        )
