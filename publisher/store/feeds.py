"""The feed writer's tables: article_changes, article_tags, feed_content, feed_builds, feed_ids,
feed_tag_slugs, and the reads of articles a rebuild needs (publisher.feed owns the rules).

``article_changes`` (filled by database triggers on every write to ``articles``) says which
articles changed since a rebuild; ``article_tags`` lets a tag feed read its newest entries
from one index range; ``feed_content`` keeps each article's prepared content;
``feed_builds`` remembers what each feeds folder holds; ``feed_ids`` each article's entry id;
``feed_tag_slugs`` each tag feed's file name. Each function runs inside the caller's
transaction (:meth:`Store.transaction`), which translates database errors. Long reads go a
chunk at a time, so no query runs per article.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, false, func, insert, literal, or_, select, update

from publisher import clock
from publisher.store import ARTICLE_COLUMNS, FEED_IDS_LEGACY_BEFORE, Article, locks
from publisher.store.locks import Lock
from publisher.store.schema import (
    article_changes,
    article_tags,
    articles,
    feed_builds,
    feed_content,
    feed_ids,
    feed_tag_slugs,
    settings,
)

TAGS_REV = "article_tags_rev"  # the newest change applied to article_tags
_CHUNK = 2000  # rows per read of a long scan, and ids per IN (...)

# In the feeds: not removed, not a draft. An article dated in the future is live too, but not
# shown before its date (the ``now`` of the reads below): an embargo.
_LIVE = and_(articles.c.removed_at.is_(None), articles.c.draft.is_(false()))
# Dated after it was first seen: an embargo, until that date.
_EMBARGOED = articles.c.published > articles.c.first_seen


def _shown(now: datetime | None) -> Any:
    """Not embargoed at ``now`` (default: the clock's). An article dated up to when it was
    first seen is never held back, so that a clock set back (PUBLISHER_NOW) hides nothing."""
    return or_(articles.c.published <= (now or clock.now()), ~_EMBARGOED)


_NEWEST_FIRST = (articles.c.published.desc(), articles.c.id.desc())
# What a feed entry needs: every column but the plain text, which no feed shows.
_COLUMNS = [literal("").label("body_text") if column is articles.c.body_text else column for column in ARTICLE_COLUMNS]

Prepared = tuple[str, str, str]  # version, url, html


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


# -- articles, as the feeds see them ---------------------------------------------------------


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


def live_heads(conn: Connection) -> Iterator[list[Head]]:
    """Every live article's head, a chunk at a time, by id."""
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


def dated(conn: Connection, instants: Iterable[datetime]) -> set[int]:
    """The live articles published at one of ``instants``."""
    found: set[int] = set()
    wanted = sorted(set(instants))
    for start in range(0, len(wanted), _CHUNK):
        query = select(articles.c.id).where(_LIVE, articles.c.published.in_(wanted[start : start + _CHUNK]))
        found.update(conn.execute(query).scalars())
    return found


def dated_in_order(conn: Connection, instants: Sequence[datetime]) -> list[tuple[int, datetime]]:
    """(id, published) of the live articles dated one of ``instants`` (sorted), by date then id."""
    found: list[tuple[int, datetime]] = []
    for start in range(0, len(instants), 500):
        query = (
            select(articles.c.id, articles.c.published)
            .where(_LIVE, articles.c.published.in_(instants[start : start + 500]))
            .order_by(articles.c.published, articles.c.id)
        )
        found += [(row[0], row[1]) for row in conn.execute(query)]
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


def source_path(conn: Connection, key: str) -> str | None:
    """The file the article ``key`` was read from."""
    found: str | None = conn.execute(select(articles.c.source_path).where(articles.c.key == key)).scalar_one_or_none()
    return found


def setting(conn: Connection, name: str) -> str | None:
    return conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar_one_or_none()


# -- the tag index (article_tags) ------------------------------------------------------------


def tag_slugs(conn: Connection) -> list[str]:
    return list(conn.execute(select(article_tags.c.slug).distinct().order_by(article_tags.c.slug)).scalars())


def tags_rev(conn: Connection) -> int | None:
    value = setting(conn, TAGS_REV)
    return int(value) if value is not None else None


def lock_tags(conn: Connection) -> None:
    """One tag index writer at a time; on SQLite, a write first, so the lock is waited for."""
    if not locks.in_transaction(conn, Lock.TAG_INDEX):
        conn.execute(update(settings).where(settings.c.name == TAGS_REV).values(value=settings.c.value))


def clear_tags(conn: Connection, ids: Iterable[int] | None = None) -> None:
    """Forget the tag index rows of these articles, or all of them."""
    if ids is None:
        conn.execute(delete(article_tags))
        return
    for chunk in _chunks(sorted(set(ids))):
        conn.execute(delete(article_tags).where(article_tags.c.article_id.in_(chunk)))


def insert_tags(conn: Connection, rows: Iterable[tuple[int, str, str, datetime]]) -> None:
    """(article id, slug, tag, published) each, in one INSERT."""
    values = [{"article_id": a, "slug": s, "tag": t, "published": p} for a, s, t, p in rows]
    if values:
        conn.execute(insert(article_tags), values)


def set_tags_rev(conn: Connection, upto: int) -> None:
    conn.execute(delete(settings).where(settings.c.name == TAGS_REV))
    conn.execute(insert(settings), {"name": TAGS_REV, "value": str(upto)})


# -- tag feed names (feed_tag_slugs) ---------------------------------------------------------


def tag_names(conn: Connection) -> list[tuple[str, str, str]]:
    """Every remembered tag feed name: (tag key, slug, tag as first met)."""
    rows = conn.execute(select(feed_tag_slugs.c.tag_key, feed_tag_slugs.c.slug, feed_tag_slugs.c.tag))
    return [(row[0], row[1], row[2]) for row in rows]


def add_tag_names(conn: Connection, rows: Sequence[dict[str, str]]) -> None:
    """New names: {"tag_key", "tag", "slug"} each, in one INSERT."""
    if rows:
        conn.execute(insert(feed_tag_slugs), list(rows))


# -- prepared content (feed_content) ---------------------------------------------------------


def contents(conn: Connection, ids: Iterable[int]) -> dict[int, Prepared]:
    """The prepared URL and content of these articles, by id."""
    found: dict[int, Prepared] = {}
    columns = (feed_content.c.article_id, feed_content.c.version, feed_content.c.url, feed_content.c.html)
    for chunk in _chunks(sorted(set(ids))):
        query = select(*columns).where(feed_content.c.article_id.in_(chunk))
        found.update((row[0], (row[1], row[2], row[3])) for row in conn.execute(query))
    return found


def replace_contents(conn: Connection, prepared: dict[int, Prepared]) -> None:
    ids = sorted(prepared)
    for chunk in _chunks(ids):
        conn.execute(delete(feed_content).where(feed_content.c.article_id.in_(chunk)))
    for chunk in _chunks(ids):
        rows = [
            {"article_id": i, "version": prepared[i][0], "url": prepared[i][1], "html": prepared[i][2]} for i in chunk
        ]
        conn.execute(insert(feed_content), rows)


# -- what each feeds folder holds (feed_builds) ----------------------------------------------


def load_build(conn: Connection, folder: str) -> tuple[int, dict[str, Any]] | None:
    """The serial and state the last rebuild of ``folder`` saved, if any."""
    row = conn.execute(select(feed_builds.c.serial, feed_builds.c.state).where(feed_builds.c.dir == folder)).first()
    return (int(row[0]), json.loads(row[1])) if row else None


def put_build(conn: Connection, folder: str, seen: int | None, data: str) -> bool:
    """Save ``data`` as the folder's state if its serial is still ``seen`` (None: no record yet;
    raises StoreConflict, at commit, if one was saved meanwhile); False if another saved since.

    A write first, no read before it: on SQLite a read would pin a snapshot that another
    writer could make stale, and the write would then fail instead of waiting its turn.
    """
    if seen is None:
        conn.execute(insert(feed_builds), {"dir": folder, "serial": 1, "state": data})
        return True
    saved = conn.execute(
        update(feed_builds)
        .where(feed_builds.c.dir == folder, feed_builds.c.serial == seen)
        .values(serial=seen + 1, state=data)
    )
    return bool(saved.rowcount == 1)


def forget_build(conn: Connection, folder: str) -> None:
    conn.execute(delete(feed_builds).where(feed_builds.c.dir == folder))


# -- entry ids (feed_ids) --------------------------------------------------------------------


def known_ids(conn: Connection) -> tuple[bool, str | None]:
    """Whether some entry id is remembered, and the setting FEED_IDS_LEGACY_BEFORE."""
    known = conn.execute(select(feed_ids.c.key).limit(1)).first() is not None
    return known, setting(conn, FEED_IDS_LEGACY_BEFORE)


def without_id(conn: Connection, since: int | None, upto: int) -> list[tuple[str, datetime]]:
    """(key, first seen) of the articles without an id: among those written after change
    ``since``, or all."""
    query = (
        select(articles.c.key, articles.c.first_seen)
        .outerjoin(feed_ids, feed_ids.c.key == articles.c.key)
        .where(feed_ids.c.key.is_(None))
        .order_by(articles.c.id)
    )
    if since is not None:
        changed = select(article_changes.c.article_id).where(
            article_changes.c.rev > since, article_changes.c.rev <= upto
        )
        query = query.where(articles.c.id.in_(changed))
    return [(row[0], row[1]) for row in conn.execute(query)]


def insert_ids(conn: Connection, rows: Sequence[dict[str, str]]) -> None:
    """{"key", "entry_id"} each, in one INSERT (StoreConflict at commit if one is there already)."""
    conn.execute(insert(feed_ids), list(rows))


def lookup_ids(conn: Connection, keys: Iterable[str]) -> dict[str, str]:
    """The remembered ids of these article keys."""
    found: dict[str, str] = {}
    wanted = sorted(set(keys))
    for start in range(0, len(wanted), _CHUNK):
        query = select(feed_ids.c.key, feed_ids.c.entry_id).where(feed_ids.c.key.in_(wanted[start : start + _CHUNK]))
        found.update((row[0], row[1]) for row in conn.execute(query))
    return found


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]
