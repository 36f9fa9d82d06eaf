"""Readers' choices (which topics of which digest), the digests' per-choice copies, and the
addresses erased on request: their tables and SQL.

    preferences        one row per (subscriber, digest name): the topic keys they want; no row
                       means everything (the default, and what every reader had before)
    digest_variants    a digest's copy for one group of readers, frozen when its batches are
                       planned: the batches first_batch..last_batch carry it (the others carry
                       the digest's own message)
    forgotten          a keyed hash of each erased address (``subscribers forget``), so that no
                       import or add brings it back; nothing else of the reader is kept

The tables are registered on the store's ``metadata`` when this module is imported (the store
package imports it for its migration), so a new store gets them from ``create_all``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    delete,
    false,
    insert,
    or_,
    select,
    text,
    update,
)

from publisher.states import SubscriberState
from publisher.store.schema import UtcDateTime, articles, batch_recipients, batches, metadata, subscribers
from publisher.store.send import SendStore

if TYPE_CHECKING:
    from publisher.store import Store

DEFAULT_DIGEST = "digest"  # the digest's name while there is one digest per site

preferences = Table(
    "preferences",
    metadata,
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(100), primary_key=True),
    Column("topics", JSON, nullable=False),  # sorted topic keys (casefolded tags)
    Column("updated_at", UtcDateTime, nullable=False),
)

digest_variants = Table(
    "digest_variants",
    metadata,
    Column("digest_id", ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True),
    Column("first_batch", Integer, primary_key=True),
    Column("last_batch", Integer, nullable=False),
    Column("topics", JSON, nullable=False),  # the choice it was made for, as shown in `status`
    Column("message", LargeBinary, nullable=False),
)

forgotten = Table(
    "forgotten",
    metadata,
    Column("hash", String(64), primary_key=True),  # HMAC-SHA256 of the address key, hex
    Column("forgotten_at", UtcDateTime, nullable=False),
)

TABLES = [preferences, digest_variants, forgotten]


def migrate(conn: Connection) -> None:
    """The three tables, on a store made before them."""
    metadata.create_all(conn, tables=TABLES)


Choice = tuple[str, ...] | None  # topic keys, sorted; None: everything


# -- choices ----------------------------------------------------------------------------------


def choice(store: Store, subscriber_id: int, digest: str = DEFAULT_DIGEST) -> Choice:
    query = select(preferences.c.topics).where(
        preferences.c.subscriber_id == subscriber_id, preferences.c.digest == digest
    )
    with store.transaction() as conn:
        topics = conn.execute(query).scalar_one_or_none()
    return None if topics is None else tuple(topics)


def set_choice(store: Store, token: str, topics: Choice, now: datetime, digest: str = DEFAULT_DIGEST) -> bool:
    """The choice of whoever holds ``token`` (None: everything); False if nobody active does."""
    with store.transaction() as conn:
        found = conn.execute(
            select(subscribers.c.id).where(subscribers.c.token == token, subscribers.c.state == SubscriberState.ACTIVE)
        ).scalar_one_or_none()
        if found is None:
            return False
        mine = (preferences.c.subscriber_id == found) & (preferences.c.digest == digest)
        conn.execute(delete(preferences).where(mine))
        if topics is not None:
            conn.execute(
                insert(preferences),
                {"subscriber_id": found, "digest": digest, "topics": sorted(topics), "updated_at": now},
            )
        return True


def anyone_chose(store: SendStore, digest: str = DEFAULT_DIGEST) -> bool:
    """Whether an active reader has a choice for ``digest``: one row looked at."""
    query = (
        select(preferences.c.subscriber_id)
        .join(subscribers, subscribers.c.id == preferences.c.subscriber_id)
        .where(preferences.c.digest == digest, subscribers.c.state == SubscriberState.ACTIVE)
        .limit(1)
    )
    with store.transaction() as conn:
        return conn.execute(query).first() is not None


def chosen_by_active(store: SendStore, digest: str) -> tuple[int, int]:
    """Of the active readers with a choice for ``digest``: how many chose nothing (left it),
    and how many chose something. Read in Python: JSON equality differs by database."""
    query = (
        select(preferences.c.topics)
        .join(subscribers, subscribers.c.id == preferences.c.subscriber_id)
        .where(preferences.c.digest == digest, subscribers.c.state == SubscriberState.ACTIVE)
    )
    with store.transaction() as conn:
        topics = [list(row or []) for row in conn.execute(query).scalars()]
    empty = sum(1 for t in topics if not t)
    return empty, len(topics) - empty


def tag_lists(store: Store) -> list[list[str]]:
    """The tags of every live, published article (the page offers them as topics)."""
    query = select(articles.c.tags).where(articles.c.removed_at.is_(None), articles.c.draft.is_(false()))
    with store.transaction() as conn:
        return [list(tags or []) for tags in conn.execute(query).scalars()]


# -- planning a digest by choice --------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """Readers who get the same copy: ``message`` None is the digest's own."""

    key: Hashable  # what makes two choices one group (the articles they select)
    order: int  # groups are planned in this order: the digest's own first
    message: bytes | None
    topics: list[str]


Split = Callable[[set[Choice]], Mapping[Choice, Group | None]]  # None: the choice selects nothing


def plan(
    store: SendStore,
    digest_id: str,
    size: int,
    now: datetime,
    split: Split,
    digest: str = DEFAULT_DIGEST,
    unchosen: Choice = None,
) -> bool:
    """Write the batches of ``digest_id``, readers with one copy (:class:`Group`) together, in
    chunks of ``size``; the copies go in the same transaction. False if planned already.

    As journal.plan_subscribers: batch 1 is written first (on SQLite that takes the write lock,
    so no choice or unsubscribe commits until this does), and on PostgreSQL the list and the
    choices are locked against writes meanwhile.
    """
    with store.transaction() as conn:
        if conn.execute(select(batches.c.id).where(batches.c.digest_id == digest_id).limit(1)).first():
            return False
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE subscribers, preferences IN SHARE MODE"))
        first = _insert_batch(conn, digest_id, 1, 0, now)
        readers = conn.execute(
            select(subscribers.c.id, subscribers.c.email, subscribers.c.email_key, preferences.c.topics)
            .select_from(
                subscribers.outerjoin(
                    preferences, (preferences.c.subscriber_id == subscribers.c.id) & (preferences.c.digest == digest)
                )
            )
            .where(subscribers.c.state == SubscriberState.ACTIVE)
            .order_by(subscribers.c.email_key)
        ).all()
        # ``unchosen``: the choice of a reader with none for this digest (None: everything; (): nothing)
        choices: dict[int, Choice] = {r.id: (unchosen if r.topics is None else tuple(r.topics)) for r in readers}
        groups = split(set(choices.values()))
        members: dict[Hashable, list[Any]] = {}
        for reader in readers:
            group = groups[choices[reader.id]]
            if group is not None:
                members.setdefault(group.key, []).append(reader)
        by_key = {g.key: g for g in groups.values() if g is not None}
        ordered = sorted(members, key=lambda k: by_key[k].order)
        number, recipients, counts = 1, [], []
        for group_key in ordered:
            people = members[group_key]
            chunks = [people[i : i + size] for i in range(0, len(people), size)]
            group = by_key[group_key]
            if group.message is not None:
                conn.execute(
                    insert(digest_variants),
                    {
                        "digest_id": digest_id,
                        "first_batch": number,
                        "last_batch": number + len(chunks) - 1,
                        "topics": group.topics,
                        "message": group.message,
                    },
                )
            for chunk in chunks:
                counts.append(len(chunk))
                recipients += [(number, r) for r in chunk]
                number += 1
        counts = counts or [0]  # nobody to mail: one empty batch, as plan_subscribers makes
        conn.execute(update(batches).where(batches.c.id == first).values(recipient_count=counts[0]))
        ids = {1: first}
        for n, count in enumerate(counts[1:], start=2):
            ids[n] = _insert_batch(conn, digest_id, n, count, now)
        if recipients:
            conn.execute(
                insert(batch_recipients),
                [
                    {
                        "batch_id": ids[n],
                        "digest_id": digest_id,
                        "email": r.email,
                        "email_key": r.email_key,
                        "subscriber_id": r.id,
                    }
                    for n, r in recipients
                ],
            )
    return True


def _insert_batch(conn: Connection, digest_id: str, number: int, count: int, now: datetime) -> int:
    row = {
        "digest_id": digest_id,
        "number": number,
        "key": f"{digest_id}-{number:04d}",
        "state": "pending",
        "recipient_count": count,
        "attempts": 0,
        "updated_at": now,
    }
    return int(conn.execute(insert(batches).returning(batches.c.id), row).scalar_one())


def variants(store: SendStore, digest_id: str) -> list[tuple[int, int, list[str], bytes]]:
    """(first batch, last batch, topics, message) of each copy of the digest made for a choice."""
    query = (
        select(
            digest_variants.c.first_batch,
            digest_variants.c.last_batch,
            digest_variants.c.topics,
            digest_variants.c.message,
        )
        .where(digest_variants.c.digest_id == digest_id)
        .order_by(digest_variants.c.first_batch)
    )
    with store.transaction() as conn:
        return [(int(a), int(b), list(t), bytes(m)) for a, b, t, m in conn.execute(query).all()]


# -- export and erasure -----------------------------------------------------------------------


def export(conn: Connection, email_key: str) -> dict[str, Any] | None:
    """All rows of these tables about the reader with ``email_key``, as plain values; None if
    not on the list. Inside the caller's transaction (publisher.gdpr adds the other tables')."""
    row = conn.execute(select(subscribers).where(subscribers.c.email_key == email_key)).mappings().first()
    if row is None:
        return None
    chosen = conn.execute(
        select(preferences.c.digest, preferences.c.topics, preferences.c.updated_at)
        .where(preferences.c.subscriber_id == row["id"])
        .order_by(preferences.c.digest)
    ).mappings()
    sent = conn.execute(
        select(
            batches.c.digest_id,
            batches.c.number,
            batches.c.key,
            batches.c.state,
            batches.c.updated_at,
            batch_recipients.c.email,
            batch_recipients.c.error,
        )
        .join(batches, batches.c.id == batch_recipients.c.batch_id)
        .where(_theirs(row["id"], email_key))
        .order_by(batches.c.digest_id, batches.c.number)
    ).mappings()
    return {"subscriber": dict(row), "preferences": [dict(p) for p in chosen], "batches": [dict(b) for b in sent]}


def _theirs(subscriber_id: int | None, email_key: str) -> Any:
    by_key = batch_recipients.c.email_key == email_key
    return by_key if subscriber_id is None else or_(batch_recipients.c.subscriber_id == subscriber_id, by_key)


def erase(conn: Connection, email_key: str, hashed: str, now: datetime) -> bool:
    """Delete the rows of these tables about the reader (the subscriber's last) and keep
    ``hashed`` alone; False if not on the list. Inside the caller's transaction.

    Their journal rows go too: a batch not sent yet leaves them out, and one sent keeps its
    count of recipients (journal.summary reads the batches' counts, not these rows).
    """
    found = conn.execute(select(subscribers.c.id).where(subscribers.c.email_key == email_key)).scalar_one_or_none()
    if found is None:
        return False
    conn.execute(delete(batch_recipients).where(_theirs(found, email_key)))
    conn.execute(delete(preferences).where(preferences.c.subscriber_id == found))
    conn.execute(delete(subscribers).where(subscribers.c.id == found))
    if conn.execute(select(forgotten.c.hash).where(forgotten.c.hash == hashed)).first() is None:
        conn.execute(insert(forgotten), {"hash": hashed, "forgotten_at": now})
    return True


def forgotten_at(store: Store, hashed: str) -> datetime | None:
    with store.transaction() as conn:
        return conn.execute(select(forgotten.c.forgotten_at).where(forgotten.c.hash == hashed)).scalar_one_or_none()


def any_forgotten(conn: Connection) -> bool:
    return conn.execute(select(forgotten.c.hash).limit(1)).first() is not None


def forgotten_among(conn: Connection, hashes: Iterable[str]) -> set[str]:
    """Which of ``hashes`` belong to erased addresses (inside the caller's transaction)."""
    wanted = list(set(hashes))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):  # bounded IN lists
        chunk = wanted[start : start + 500]
        found.update(conn.execute(select(forgotten.c.hash).where(forgotten.c.hash.in_(chunk))).scalars())
    return found
