"""The SQL of remote feed sources: ``remote_sources`` (each source's fetch state) and
``remote_items`` (the identities of the items each has shown). See publisher.sources."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update

from publisher.store import Store
from publisher.store.schema import remote_items, remote_sources


@dataclass(frozen=True)
class RemoteSource:
    name: str
    configured_url: str
    url: str  # where it is fetched now (a permanent redirect moves it)
    etag: str | None
    last_modified: str | None
    first_success: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failing_since: datetime | None
    failures: int
    next_fetch: datetime | None
    items: int = 0  # articles taken from it


@dataclass(frozen=True)
class KnownItem:
    id: int
    article_key: str | None  # None: seen, not taken
    guid_key: str | None
    link_key: str | None
    title_key: str
    content_key: str
    entry_hash: str


@dataclass(frozen=True)
class SeenItem:
    """An item as this fetch found it; ``id`` None for one never seen before."""

    id: int | None
    article_key: str | None
    guid: str | None
    guid_key: str | None
    link_key: str | None
    title_key: str
    content_key: str
    entry_hash: str


_COLUMNS = [c for c in remote_sources.c]


def source(store: Store, name: str, configured_url: str) -> RemoteSource:
    """The state of source ``name``, created on first use. When publisher.toml gives it another
    URL, it starts over there: validators, moved URL and backlog reset; items stay known."""
    with store.transaction() as conn:
        row = conn.execute(select(*_COLUMNS).where(remote_sources.c.name == name)).mappings().first()
        fresh = {
            "configured_url": configured_url,
            "url": configured_url,
            "etag": None,
            "last_modified": None,
            "first_success": None,
            "next_fetch": None,
        }
        if row is None:
            conn.execute(insert(remote_sources).values(name=name, failures=0, **fresh))
        elif row["configured_url"] != configured_url:
            conn.execute(update(remote_sources).where(remote_sources.c.name == name).values(**fresh))
        else:
            return RemoteSource(**row)
        row = conn.execute(select(*_COLUMNS).where(remote_sources.c.name == name)).mappings().one()
        return RemoteSource(**row)


def sources(store: Store) -> list[RemoteSource]:
    """Every source the store knows, by name, with the number of articles taken from each."""
    taken = (
        select(func.count())
        .where(remote_items.c.source == remote_sources.c.name, remote_items.c.article_key.is_not(None))
        .correlate(remote_sources)
        .scalar_subquery()
        .label("items")
    )
    with store.transaction() as conn:
        rows = conn.execute(select(*_COLUMNS, taken).order_by(remote_sources.c.name)).mappings()
        return [RemoteSource(**row) for row in rows]


def known_items(store: Store, name: str) -> list[KnownItem]:
    query = select(
        remote_items.c.id,
        remote_items.c.article_key,
        remote_items.c.guid_key,
        remote_items.c.link_key,
        remote_items.c.title_key,
        remote_items.c.content_key,
        remote_items.c.entry_hash,
    ).where(remote_items.c.source == name)
    with store.transaction() as conn:
        return [KnownItem(**row) for row in conn.execute(query.order_by(remote_items.c.id)).mappings()]


def claim(store: Store, name: str, seen: datetime | None, until: datetime) -> bool:
    """Take source ``name`` for one fetch, if its next fetch is still ``seen`` (as read): of two
    runs at once only one fetches it. ``until`` is when another run may take it over (this one
    died); the fetch's outcome sets the next fetch time anyway."""
    due = remote_sources.c.next_fetch.is_(None) if seen is None else remote_sources.c.next_fetch == seen
    with store.transaction() as conn:
        taken = conn.execute(update(remote_sources).where(remote_sources.c.name == name, due).values(next_fetch=until))
        return taken.rowcount == 1


def record_success(
    store: Store,
    name: str,
    *,
    url: str,
    etag: str | None,
    last_modified: str | None,
    now: datetime,
    next_fetch: datetime,
    items: Sequence[SeenItem] = (),
) -> None:
    """A fetch went well: its validators, where the source is now, and the items it showed.

    Called after the articles are saved, so a crash in between fetches the same feed again
    (the validators are the old ones) and finds the articles already there.
    """
    with store.transaction() as conn:
        conn.execute(
            update(remote_sources)
            .where(remote_sources.c.name == name)
            .values(
                url=url,
                etag=etag,
                last_modified=last_modified,
                first_success=func.coalesce(remote_sources.c.first_success, now),
                last_success=now,
                failing_since=None,
                failures=0,
                next_fetch=next_fetch,
            )
        )
        fresh = [_values(item) | {"source": name, "first_seen": now} for item in items if item.id is None]
        if fresh:
            conn.execute(insert(remote_items), fresh)
        for item in items:
            if item.id is not None:
                conn.execute(update(remote_items).where(remote_items.c.id == item.id).values(**_values(item)))


def record_failure(store: Store, name: str, error: str, now: datetime, next_fetch: datetime) -> RemoteSource:
    """A fetch failed: count it, keep the error, and say when to try again."""
    with store.transaction() as conn:
        conn.execute(
            update(remote_sources)
            .where(remote_sources.c.name == name)
            .values(
                last_error=error[:2000],
                last_error_at=now,
                failing_since=func.coalesce(remote_sources.c.failing_since, now),
                failures=remote_sources.c.failures + 1,
                next_fetch=next_fetch,
            )
        )
        row = conn.execute(select(*_COLUMNS).where(remote_sources.c.name == name)).mappings().one()
        return RemoteSource(**row)


def _values(item: SeenItem) -> dict[str, object]:
    return {
        "article_key": item.article_key,
        "guid": item.guid,
        "guid_key": item.guid_key,
        "link_key": item.link_key,
        "title_key": item.title_key,
        "content_key": item.content_key,
        "entry_hash": item.entry_hash,
    }
