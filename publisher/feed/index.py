"""The store's side of an incremental feed rebuild: the reads it needs and nothing more.

``article_changes`` (filled by database triggers on every write to ``articles``) says which
articles changed since a rebuild; ``article_tags`` lets a tag feed read its newest entries
from one index range; ``feed_content`` keeps each article's prepared content;
``feed_builds`` remembers what each feeds folder holds. Each function
takes an open connection from :meth:`Store.transaction`, which translates database errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, false, func, insert, literal, or_, select, text, update

from publisher import clock
from publisher.errors import StoreConflict
from publisher.feed import tags
from publisher.feed.model import clean_tags
from publisher.store import ARTICLE_COLUMNS, Article, Store
from publisher.store.schema import (
    AdvisoryLock,
    article_changes,
    article_tags,
    articles,
    feed_builds,
    feed_content,
    settings,
)

SlugsOf = Callable[["tags.Names", list[str]], dict[str, str]]
TAGS_REV = "article_tags_rev"  # the newest change applied to article_tags
_CHUNK = 2000  # rows per read of a long scan, and ids per IN (...)

# In the feeds: not removed, not a draft. An article dated in the future is live too, but not
# shown before its date (the ``now`` of the reads below): an embargo.
_LIVE = and_(articles.c.removed_at.is_(None), articles.c.draft.is_(false()))
LIVE = _LIVE
# Dated after it was first seen: an embargo, until that date.
_EMBARGOED = articles.c.published > articles.c.first_seen


def _shown(now: datetime | None) -> Any:
    """Not embargoed at ``now`` (default: the clock's). An article dated up to when it was
    first seen is never held back, so that a clock set back (PUBLISHER_NOW) hides nothing."""
    return or_(articles.c.published <= (now or clock.now()), ~_EMBARGOED)


_NEWEST_FIRST = (articles.c.published.desc(), articles.c.id.desc())
# What a feed entry needs: every column but the plain text, which no feed shows.
_COLUMNS = [literal("").label("body_text") if column is articles.c.body_text else column for column in ARTICLE_COLUMNS]


@dataclass(frozen=True)
class Change:
    article_id: int
    old_published: datetime | None  # None: the article is new
    old_tags: list[str] | None


@dataclass(frozen=True)
class Head:
    """An article's place in the feeds, without its content."""

    id: int
    published: datetime
    tags: list[str]
    live: bool


def current_rev(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(article_changes.c.rev), 0))).scalar_one())


def changes(conn: Connection, since: int, upto: int) -> list[Change]:
    query = select(article_changes.c.article_id, article_changes.c.old_published, article_changes.c.old_tags).where(
        article_changes.c.rev > since, article_changes.c.rev <= upto
    )
    return [Change(*row) for row in conn.execute(query)]


def heads(conn: Connection, ids: Iterable[int]) -> list[Head]:
    found: list[Head] = []
    for chunk in _chunks(sorted(set(ids))):
        query = select(articles.c.id, articles.c.published, articles.c.tags, _LIVE).where(articles.c.id.in_(chunk))
        found += [Head(row[0], row[1], row[2], bool(row[3])) for row in conn.execute(query)]
    return found


def dated(conn: Connection, instants: Iterable[datetime]) -> set[int]:
    """The live articles published at one of ``instants``."""
    found: set[int] = set()
    wanted = sorted(set(instants))
    for start in range(0, len(wanted), _CHUNK):
        query = select(articles.c.id).where(_LIVE, articles.c.published.in_(wanted[start : start + _CHUNK]))
        found.update(conn.execute(query).scalars())
    return found


def newest(conn: Connection, limit: int, now: datetime | None = None) -> list[Article]:
    """The newest ``limit`` live articles dated up to ``now`` (default: the clock's), newest
    first (ties: the higher id first)."""
    query = select(*_COLUMNS).where(_LIVE, _shown(now)).order_by(*_NEWEST_FIRST).limit(limit)
    return [Article(**row) for row in conn.execute(query).mappings()]


def older(
    conn: Connection,
    before: tuple[datetime, int],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> list[Article]:
    """Live articles after ``before`` (a (published, id) place) in newest-first order, none
    embargoed at ``now``."""
    published, article_id = before
    after = or_(articles.c.published < published, and_(articles.c.published == published, articles.c.id < article_id))
    query = select(*_COLUMNS).where(_LIVE, after, _shown(now)).order_by(*_NEWEST_FIRST).limit(limit)
    if since is not None:
        query = query.where(articles.c.published >= since)
    if until is not None:
        query = query.where(articles.c.published < until)
    return [Article(**row) for row in conn.execute(query).mappings()]


def stream_older(conn: Connection, before: tuple[datetime, int], now: datetime | None = None) -> Iterator[Article]:
    """:func:`older`, all of them, a chunk at a time (never the whole archive in memory)."""
    while True:
        chunk = older(conn, before, limit=_CHUNK, now=now)
        yield from chunk
        if len(chunk) < _CHUNK:
            return
        before = (chunk[-1].published, chunk[-1].id)


def tagged(conn: Connection, slug: str, limit: int, now: datetime | None = None) -> list[Article]:
    """The newest ``limit`` live articles dated up to ``now`` (default: the clock's) with the
    tag ``slug``, newest first."""
    query = (
        select(*_COLUMNS)
        .join(article_tags, article_tags.c.article_id == articles.c.id)
        .where(article_tags.c.slug == slug, _LIVE, _shown(now))
        .order_by(article_tags.c.published.desc(), article_tags.c.article_id.desc())
        .limit(limit)
    )
    return [Article(**row) for row in conn.execute(query).mappings()]


def next_due(conn: Connection, now: datetime) -> datetime | None:
    """The date of the first live article dated after ``now`` (embargoed), if any."""
    query = select(func.min(articles.c.published)).where(_LIVE, _EMBARGOED, articles.c.published > now)
    found: datetime | None = conn.execute(query).scalar_one()
    return found


def arrived(conn: Connection, since: datetime, now: datetime) -> set[int]:
    """The live articles dated from ``since`` to ``now``: those whose embargo ended, once
    ``since`` is the first date a rebuild left out."""
    query = select(articles.c.id).where(_LIVE, _EMBARGOED, articles.c.published.between(since, now))
    return set(conn.execute(query).scalars())


def tag_slugs(conn: Connection) -> list[str]:
    return list(conn.execute(select(article_tags.c.slug).distinct().order_by(article_tags.c.slug)).scalars())


def sync_tags(store: Store, slugs_of: SlugsOf, *, full_after: int) -> None:
    """Bring article_tags up to the newest change: the changed articles' rows, or all of them
    when it was never built, the store went back in time, or more than ``full_after`` changed.

    ``slugs_of(names, tags)`` maps an article's tags to {slug: spelling}, with the remembered
    tag feed names (publisher.feed.tags), which this names first for tags that have none.
    """
    with store.transaction() as conn:
        done, upto = tags_rev(conn), current_rev(conn)
    if done == upto:
        return
    with store.transaction() as conn:
        _lock_tags(conn)
        done, upto = tags_rev(conn), current_rev(conn)
        if done == upto:
            return
        names = tags.Names(conn)
        if done is None or done > upto or upto - done > full_after:
            conn.execute(delete(article_tags))
            # every new tag named first, all at once: one order, however many chunks
            names.assign(conn, (use for rows in _live_heads(conn) for use in _uses(rows)))
            for rows in _live_heads(conn):
                _insert_tags(conn, rows, names, slugs_of)
        else:
            ids = {change.article_id for change in changes(conn, done, upto)}
            for chunk in _chunks(sorted(ids)):
                conn.execute(delete(article_tags).where(article_tags.c.article_id.in_(chunk)))
            live = [head for head in heads(conn, ids) if head.live]
            names.assign(conn, _uses(live))
            _insert_tags(conn, live, names, slugs_of)
        conn.execute(delete(settings).where(settings.c.name == TAGS_REV))
        conn.execute(insert(settings), {"name": TAGS_REV, "value": str(upto)})


def _live_heads(conn: Connection) -> Iterator[list[Head]]:
    last = 0
    while True:
        query = (
            select(articles.c.id, articles.c.published, articles.c.tags)
            .where(_LIVE, articles.c.id > last)
            .order_by(articles.c.id)
            .limit(_CHUNK)
        )
        rows = [Head(row[0], row[1], row[2], True) for row in conn.execute(query)]
        yield rows
        if len(rows) < _CHUNK:
            return
        last = rows[-1].id


def _uses(rows: list[Head]) -> list[tuple[str, datetime]]:
    return [(tag, row.published) for row in rows for tag in clean_tags(row.tags)]


def setting(conn: Connection, name: str) -> str | None:
    return conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar_one_or_none()


def tags_rev(conn: Connection) -> int | None:
    value = conn.execute(select(settings.c.value).where(settings.c.name == TAGS_REV)).scalar_one_or_none()
    return int(value) if value is not None else None


def _lock_tags(conn: Connection) -> None:
    """One tag index writer at a time; on SQLite, a write first, so the lock is waited for."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(AdvisoryLock.TAG_INDEX)})
    else:
        conn.execute(update(settings).where(settings.c.name == TAGS_REV).values(value=settings.c.value))


def _insert_tags(conn: Connection, rows: list[Head], names: tags.Names, slugs_of: SlugsOf) -> None:
    values = [
        {"article_id": row.id, "slug": slug, "tag": tag, "published": row.published}
        for row in rows
        for slug, tag in slugs_of(names, row.tags).items()
    ]
    if values:
        conn.execute(insert(article_tags), values)


Prepared = tuple[str, str, str]  # version, url, html


def contents(conn: Connection, ids: Iterable[int]) -> dict[int, Prepared]:
    """The prepared URL and content of these articles, by id."""
    found: dict[int, Prepared] = {}
    columns = (feed_content.c.article_id, feed_content.c.version, feed_content.c.url, feed_content.c.html)
    for chunk in _chunks(sorted(set(ids))):
        query = select(*columns).where(feed_content.c.article_id.in_(chunk))
        found.update((row[0], (row[1], row[2], row[3])) for row in conn.execute(query))
    return found


def save_contents(store: Store, prepared: dict[int, Prepared]) -> None:
    """Keep prepared content for next time; a cache, so losing a race to another writer (or
    to an article's removal from the store) only means preparing it again."""
    try:
        with store.transaction() as conn:
            ids = sorted(prepared)
            for chunk in _chunks(ids):
                conn.execute(delete(feed_content).where(feed_content.c.article_id.in_(chunk)))
            for chunk in _chunks(ids):
                rows = [
                    {"article_id": i, "version": prepared[i][0], "url": prepared[i][1], "html": prepared[i][2]}
                    for i in chunk
                ]
                conn.execute(insert(feed_content), rows)
    except StoreConflict:
        pass


def load_build(conn: Connection, folder: str) -> tuple[int, dict[str, Any]] | None:
    """The serial and state the last rebuild of ``folder`` saved, if any."""
    row = conn.execute(select(feed_builds.c.serial, feed_builds.c.state).where(feed_builds.c.dir == folder)).first()
    return (int(row[0]), json.loads(row[1])) if row else None


def save_build(store: Store, folder: str, seen: int | None, state: dict[str, Any]) -> bool:
    """Save ``state`` if no other rebuild saved since ``seen`` was read; otherwise forget the
    folder's state (the next rebuild starts from scratch) and return False."""
    data = json.dumps(state, separators=(",", ":"))
    try:
        if _saved(store, folder, seen, data):
            return True
    except StoreConflict:  # another rebuild saved the folder's first state meanwhile
        pass
    forget_build(store, folder)
    return False


def _saved(store: Store, folder: str, seen: int | None, data: str) -> bool:
    # A write first, no read before it: on SQLite a read would pin a snapshot that another
    # writer could make stale, and the write would then fail instead of waiting its turn.
    with store.transaction() as conn:
        if seen is None:  # the folder's first record; raises StoreConflict if one was saved meanwhile
            conn.execute(insert(feed_builds), {"dir": folder, "serial": 1, "state": data})
            return True
        saved = conn.execute(
            update(feed_builds)
            .where(feed_builds.c.dir == folder, feed_builds.c.serial == seen)
            .values(serial=seen + 1, state=data)
        )
        return bool(saved.rowcount == 1)


def forget_build(store: Store, folder: str) -> None:
    with store.transaction() as conn:
        conn.execute(delete(feed_builds).where(feed_builds.c.dir == folder))


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]
