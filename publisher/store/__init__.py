"""The article store: one SQLAlchemy Core layer for SQLite (default) and PostgreSQL.

Every method runs in its own transaction, so what it changed is committed when it returns:
callers mark a step done only after the step happened. Database errors are translated into
:class:`StoreError` here and nowhere else: a broken constraint into :class:`StoreConflict`,
another refused statement into :class:`StoreRefused`, so no caller needs to know SQLAlchemy's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    event,
    false,
    func,
    insert,
    inspect,
    not_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.schema import CreateColumn

from publisher import clock
from publisher.errors import StoreConflict, StoreError, StoreRefused
from publisher.states import DigestState, SaveStatus
from publisher.store import (
    digests as _digests,
)
from publisher.store import (
    locks,
    schema,
    suppressions,  # its table joins the metadata a new store is made from
)
from publisher.store.consents import consents as _consents_table
from publisher.store.locks import Lock
from publisher.store.notices import notices as _notices_table
from publisher.store.preferences import migrate as preferences_tables
from publisher.store.schema import (
    article_changes,
    article_tags,
    articles,
    articles_by_published,
    batch_recipients,
    digest_articles,
    feed_builds,
    feed_content,
    feed_ids,
    feed_tag_slugs,
    metadata,
    recreate_triggers,
    remote_items,
    remote_sources,
    schema_version,
    settings,
    source_stats,
    sources,
)
from publisher.store.urls import safe_url as safe_url

# A transaction of the store, as repositories take it: opaque outside the store package.
Tx = Connection


def _v2_removed_at(conn: Connection) -> None:
    column_type = articles.c.removed_at.type.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE articles ADD COLUMN removed_at {column_type}"))


def _v3_subscribers_and_journal(conn: Connection) -> None:
    metadata.create_all(conn, tables=[schema.subscribers, schema.batches, batch_recipients])
    column_type = schema.digests.c.claimed_by.type.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE digests ADD COLUMN claimed_by {column_type}"))


def _v4_source_stats(conn: Connection) -> None:
    metadata.create_all(conn, tables=[source_stats])


def _feed_index(conn: Connection) -> None:
    """The feed writer's change log (with its triggers), tag index, prepared contents and build records."""
    metadata.create_all(conn, tables=[article_changes, article_tags, feed_builds, feed_content])
    articles_by_published.create(conn)


def _draft(conn: Connection) -> None:
    """Articles marked ``draft: true``; the change-log triggers then watch the new column too."""
    if "draft" not in {column["name"] for column in inspect(conn).get_columns("articles")}:
        column = CreateColumn(articles.c.draft).compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE articles ADD COLUMN {column}"))
    recreate_triggers(conn)


def _meta(conn: Connection) -> None:
    """Articles' metadata (ArticleMeta); the change-log triggers then watch it too."""
    if "meta" not in {column["name"] for column in inspect(conn).get_columns("articles")}:
        column = CreateColumn(articles.c.meta).compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE articles ADD COLUMN {column}"))
    recreate_triggers(conn)


def _feed_ids(conn: Connection) -> None:
    """Remembered entry ids and tag feed names (issue 12). Entries of the articles already in
    the store keep the ids they were published with (first-seen based); the setting
    ``feed_ids_legacy_before`` says which. The tag index is rebuilt with the new tag names."""
    metadata.create_all(conn, tables=[feed_ids, feed_tag_slugs])
    conn.execute(insert(settings), {"name": FEED_IDS_LEGACY_BEFORE, "value": clock.now().isoformat()})
    conn.execute(article_tags.delete())
    conn.execute(settings.delete().where(settings.c.name == "article_tags_rev"))
    conn.execute(feed_builds.delete())


def _signup(conn: Connection) -> None:
    """Sign-ups (issue 14): the consent record and the notices (confirmation, welcome) to send."""
    metadata.create_all(conn, tables=[_consents_table, _notices_table])


def _remote_sources(conn: Connection) -> None:
    """Remote feed sources' state and item identities ([[sources]], publisher.store.remote)."""
    metadata.create_all(conn, tables=[remote_sources, remote_items])


# Schema changes after the first release, as steps (version 2, 3, ...): each a function of a
# Connection that ALTERs an existing store. A new store is created from schema.py at once and
# stamped with the newest version, so these only ever run on older stores.
MIGRATIONS: list[Callable[[Connection], None]] = [
    _v2_removed_at,
    _v3_subscribers_and_journal,
    _v4_source_stats,
    _feed_index,
    _draft,
    _meta,
    _feed_ids,
    _signup,
    suppressions.create,
    preferences_tables,  # publisher.store.preferences: readers' choices, per-choice copies, erased addresses
    _remote_sources,
    _digests.several,  # [[digest]]: a digest's name; an article once in each digest
]
SCHEMA_VERSION = 1 + len(MIGRATIONS)
# Articles first seen before this time (ISO 8601) carry entry ids of the old, first-seen form.
FEED_IDS_LEGACY_BEFORE = "feed_ids_legacy_before"
BUSY_SECONDS = 30  # how long a write waits for another run's (SQLite); then one line, exit 1


class AudioMeta(TypedDict, total=False):
    url: str  # http(s) or a path on the site
    type: str  # media type, audio/mpeg
    length: int  # bytes
    duration: str  # HH:MM:SS or seconds, as iTunes wants it


class ArticleMeta(TypedDict, total=False):
    """What is known of an article beyond its columns: from front matter, or the page itself.

    Every key is optional; readers fall back (direction from the language or the script,
    the lead image from the body's first image). URLs are http(s) or paths on the site.
    """

    language: str  # BCP 47: en, ar, pt-BR
    direction: str  # "ltr" | "rtl"
    image: str  # lead image
    image_alt: str
    audio: AudioMeta  # a podcast episode's enclosure
    canonical: str  # the page's own URL
    modified: str  # ISO 8601, the page's last modification
    description: str


@dataclass(frozen=True)
class Article:
    id: int
    key: str
    slug: str
    title: str
    summary: str
    body_html: str
    body_text: str
    author: str | None
    tags: list[str]
    format: str
    published: datetime
    updated: datetime
    first_seen: datetime
    meta: ArticleMeta = field(default_factory=lambda: ArticleMeta())


@dataclass(frozen=True)
class Digest:
    id: str
    created_at: datetime
    subject: str
    message: bytes
    state: DigestState
    attempts: int
    last_error: str | None
    provider_id: str | None
    claimed_at: datetime | None
    claimed_by: str | None
    sent_at: datetime | None
    article_count: int
    name: str = "digest"  # which [[digest]]; the single [digest] is "digest"

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", DigestState(self.state))  # read back as the plain string stored


@dataclass(frozen=True)
class NewArticle:
    """What ingest hands the store for one source file."""

    key: str
    slug: str
    title: str
    summary: str
    body_html: str
    body_text: str
    author: str | None
    tags: list[str]
    format: str
    source_path: str
    content_hash: str
    raw: bytes
    published: datetime | None
    explicit_slug: bool = False  # set in front matter: may move the article; a derived one may not
    source_size: int | None = None  # the file's stat when read; None: not to be trusted
    source_mtime_ns: int | None = None
    draft: bool = False  # front matter `draft: true`: stored, out of the feeds and digests
    meta: ArticleMeta = field(default_factory=lambda: ArticleMeta())


@dataclass(frozen=True)
class SourceState:
    """What the store knows of an article's source file: ingest's unchanged check."""

    article_id: int
    key: str
    content_hash: str
    source_path: str | None  # None: no stat recorded
    size: int | None
    mtime_ns: int | None


class Store:
    def __init__(self, url: str) -> None:
        try:
            self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"store: cannot use {safe_url(url)}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.url = url

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect and bring the schema up to date."""
        store = cls(url)
        store.migrate()
        return store

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One transaction, committed on leaving, for several repository calls (publisher.store.batches,
        .subscribers, .feeds...) that must commit together; its errors are translated here."""
        with self._tx() as conn:
            yield conn

    @contextmanager
    def lock(self, name: Lock) -> Iterator[None]:
        """Hold the named lock while the block runs (a file lock beside a SQLite store, a session
        advisory lock on PostgreSQL), or raise :class:`publisher.store.locks.LockHeld` at once."""
        with locks.held(self.engine, name):
            yield

    def has_schema(self) -> bool:
        """Whether the database holds a store already (read without creating anything)."""
        with self._tx() as conn:
            return bool(inspect(conn).has_table("schema_version"))

    def job_store(self) -> Any:
        """APScheduler's job store in this database (the daemon's schedule survives restarts)."""
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        return SQLAlchemyJobStore(engine=self.engine)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            first_line = str(exc).splitlines()[0]
            if "database is locked" in first_line:  # SQLite's busy_timeout ran out
                raise StoreError(
                    f"store {safe_url(self.url)}: another run holds the store (waited {BUSY_SECONDS} s); "
                    "this run stopped here, the next one carries on"
                ) from exc
            message = f"store {safe_url(self.url)}: {first_line}"
            if isinstance(exc, IntegrityError):
                raise StoreConflict(message) from exc
            if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError):
                raise StoreRefused(message) from exc  # one statement refused, not the database gone
            raise StoreError(message) from exc

    # -- schema -----------------------------------------------------------------------------

    def migrate(self) -> None:
        with self._tx() as conn:
            locked = locks.in_transaction(conn, Lock.MIGRATION)  # PostgreSQL: several machines may start at once
            if not locked and not _up_to_date(conn):  # SQLite: two first runs must not both create the store
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            if not inspect(conn).has_table("schema_version"):
                metadata.create_all(conn)
                now = clock.now()
                conn.execute(insert(schema_version), {"version": SCHEMA_VERSION, "applied_at": now})
                conn.execute(insert(settings), {"name": "created_at", "value": now.isoformat()})
                return
            current = conn.execute(select(func.max(schema_version.c.version))).scalar_one() or 1
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"store {safe_url(self.url)} has schema version {current}, newer than this "
                    f"publisher knows ({SCHEMA_VERSION}); upgrade publisher"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version - 2](conn)
                conn.execute(insert(schema_version), {"version": version, "applied_at": clock.now()})

    def schema_version(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(select(func.max(schema_version.c.version))).scalar_one())

    def setting(self, name: str) -> str | None:
        with self._tx() as conn:
            return conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar_one_or_none()

    def put_setting(self, name: str, value: str) -> None:
        # An upsert: a delete and an insert let two runs at once collide on the name.
        with self._tx() as conn:
            dialect_insert: Any = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
            upsert = dialect_insert(settings).values(name=name, value=value)
            conn.execute(upsert.on_conflict_do_update(index_elements=[settings.c.name], set_={"value": value}))

    def set_setting_once(self, name: str, value: str) -> str:
        """Store ``value`` under ``name`` unless a value is there already; return the value kept."""
        try:
            with self._tx() as conn:
                conn.execute(insert(settings), {"name": name, "value": value})
            return value
        except StoreConflict:
            kept = self.setting(name)
            assert kept is not None
            return kept

    # -- articles ---------------------------------------------------------------------------

    def save_article(self, new: NewArticle, now: datetime) -> SaveStatus:
        """Insert or update the article for ``new.key``; returns new, updated or unchanged.

        The raw bytes of each distinct version are kept. An updated article keeps its id,
        first-seen time, slug (unless front matter sets a new one) and, without a date of its
        own, its published date.
        """
        with self._tx() as conn:
            _lock_articles(conn)
            return _save_one(conn, new, now, None)

    def save_articles(self, batch: Sequence[NewArticle], now: datetime) -> list[SaveStatus]:
        """:meth:`save_article` for each of ``batch`` (distinct keys), all in one transaction.

        All are stored or, when this raises, none: the caller may then save them one by one.
        New articles go in with one multi-row INSERT each for articles and sources.
        """
        if not batch:
            return []
        with self._tx() as conn:
            _lock_articles(conn)
            keys = [new.key for new in batch]
            rows = {
                row["key"]: row for row in conn.execute(select(articles).where(articles.c.key.in_(keys))).mappings()
            }
            wanted = {new.slug for new in batch if new.key not in rows}
            taken = set(conn.execute(select(articles.c.slug).where(articles.c.slug.in_(wanted))).scalars())
            statuses: dict[str, SaveStatus] = {}
            fresh: list[dict[str, Any]] = []
            for new in batch:
                if new.key in rows:
                    statuses[new.key] = _save_one(conn, new, now, rows[new.key], taken)
                    continue
                slug = _free_slug(conn, new.slug, reserved=taken) if new.slug in taken else new.slug
                taken.add(slug)
                fresh.append(_article_values(new, now) | _first_values(new, slug, now))
            if fresh:
                inserted = conn.execute(
                    insert(articles).returning(articles.c.id, sort_by_parameter_order=True), fresh
                ).scalars()
                by_key = {new.key: new for new in batch}
                versions, stats = [], []
                for values, article_id in zip(fresh, inserted, strict=True):
                    new = by_key[values["key"]]
                    versions.append(
                        {"article_id": article_id, "content_hash": new.content_hash, "raw": new.raw, "ingested_at": now}
                    )
                    stats.append((article_id, new.source_path, new.source_size, new.source_mtime_ns))
                    statuses[new.key] = SaveStatus.NEW
                conn.execute(insert(sources), versions)
                _put_stats(conn, stats)
            return [statuses[key] for key in keys]

    def source_states(self) -> dict[str, SourceState]:
        """Every article's source file as last read, by article key."""
        query = select(
            articles.c.id.label("article_id"),
            articles.c.key,
            articles.c.content_hash,
            source_stats.c.source_path,
            source_stats.c.size,
            source_stats.c.mtime_ns,
        ).outerjoin(source_stats, source_stats.c.article_id == articles.c.id)
        with self._tx() as conn:
            return {row.key: SourceState(**row) for row in conn.execute(query).mappings()}

    def record_source_stats(self, states: Sequence[SourceState]) -> None:
        """Remember where and how each unchanged article's file was found."""
        with self._tx() as conn:
            _put_stats(conn, [(s.article_id, s.source_path, s.size, s.mtime_ns) for s in states])

    def source_versions(self, key: str) -> list[bytes]:
        """The raw bytes of every version of the article ``key``, oldest first."""
        with self._tx() as conn:
            query = (
                select(sources.c.raw)
                .join(articles, articles.c.id == sources.c.article_id)
                .where(articles.c.key == key)
                .order_by(sources.c.id)
            )
            return [bytes(raw) for raw in conn.execute(query).scalars()]

    def article(self, key: str) -> Article | None:
        with self._tx() as conn:
            row = conn.execute(select(*ARTICLE_COLUMNS).where(articles.c.key == key)).mappings().first()
            return Article(**row) if row else None

    def newest_articles(self, limit: int | None = None) -> list[Article]:
        """Live (not removed) articles, newest first; ties broken by id, so every run agrees."""
        query = (
            select(*ARTICLE_COLUMNS)
            .where(_LIVE)
            .order_by(articles.c.published.desc(), articles.c.id.desc())
            .limit(limit)
        )
        with self._tx() as conn:
            return [Article(**row) for row in conn.execute(query).mappings()]

    def article_count(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(select(func.count()).select_from(articles).where(_LIVE)).scalar_one())

    def remove_article(self, key: str, now: datetime) -> bool:
        """Take the article out of feeds and digests; False if there is no such live article."""
        with self._tx() as conn:
            result = conn.execute(update(articles).where(articles.c.key == key, _LIVE).values(removed_at=now))
            return result.rowcount == 1

    def undigested_articles(self, since: datetime, until: datetime, name: str = "digest") -> list[Article]:
        """Articles published at or after ``since`` that are in no digest ``name`` yet, newest
        first; drafts left out, and those dated after ``until`` (now) and after they were first
        seen (an embargo)."""
        in_digest = select(digest_articles.c.article_id).where(digest_articles.c.digest_name == name)
        embargoed = and_(articles.c.published > until, articles.c.published > articles.c.first_seen)
        dated = and_(articles.c.published >= since, not_(embargoed))
        query = (
            select(*ARTICLE_COLUMNS)
            .where(_LIVE, articles.c.draft.is_(false()), dated, articles.c.id.not_in(in_digest))
            .order_by(articles.c.published.desc(), articles.c.id.desc())
        )
        with self._tx() as conn:
            return [Article(**row) for row in conn.execute(query).mappings()]

    # -- digests ----------------------------------------------------------------------------

    def create_digest(
        self,
        digest_id: str,
        created_at: datetime,
        subject: str,
        message: bytes,
        article_ids: Sequence[int],
        name: str = "digest",
    ) -> bool:
        """Record a new pending digest ``name``; False if another process put one of the
        articles in a digest of that name first."""
        try:
            with self._tx() as conn:
                conn.execute(
                    insert(schema.digests),
                    {
                        "id": digest_id,
                        "created_at": created_at,
                        "subject": subject,
                        "message": message,
                        "state": DigestState.PENDING,
                        "attempts": 0,
                        "name": name,
                    },
                )
                if article_ids:
                    conn.execute(
                        insert(digest_articles),
                        [
                            {"digest_id": digest_id, "article_id": a, "position": i, "digest_name": name}
                            for i, a in enumerate(article_ids)
                        ],
                    )
        except StoreConflict:  # another process claimed one of the articles
            return False
        return True

    def unsent_digest(self, name: str | None = None) -> Digest | None:
        """The oldest digest still to send (of ``name``, or of any name): pending, or sending
        (perhaps by a process that died)."""
        unsent = schema.digests.c.state.in_((DigestState.PENDING, DigestState.SENDING))
        named = unsent if name is None else and_(unsent, schema.digests.c.name == name)
        with self._tx() as conn:
            row = (
                conn.execute(
                    _digest_query().where(named).order_by(schema.digests.c.created_at, schema.digests.c.id).limit(1)
                )
                .mappings()
                .first()
            )
            return Digest(**row) if row else None

    def digest(self, digest_id: str) -> Digest | None:
        with self._tx() as conn:
            row = conn.execute(_digest_query().where(schema.digests.c.id == digest_id)).mappings().first()
            return Digest(**row) if row else None

    def last_digest(self, name: str | None = None) -> Digest | None:
        newest = self.recent_digests(1, name)
        return newest[0] if newest else None

    def digest_articles(self, digest_id: str) -> list[Article]:
        query = (
            select(*ARTICLE_COLUMNS)
            .join(digest_articles, digest_articles.c.article_id == articles.c.id)
            .where(digest_articles.c.digest_id == digest_id)
            .order_by(digest_articles.c.position)
        )
        with self._tx() as conn:
            return [Article(**row) for row in conn.execute(query).mappings()]

    def claim_digest(self, digest: Digest, now: datetime, owner: str | None = None) -> bool:
        """Move ``digest`` to ``sending``, if it is still as it was read; False otherwise.

        The conditional UPDATE is the lock: of two processes only one sees a row change.
        """
        with self._tx() as conn:
            result = conn.execute(
                update(schema.digests)
                .where(
                    schema.digests.c.id == digest.id,
                    schema.digests.c.state == digest.state,
                    schema.digests.c.attempts == digest.attempts,
                )
                .values(
                    state=DigestState.SENDING, attempts=schema.digests.c.attempts + 1, claimed_at=now, claimed_by=owner
                )
            )
            return result.rowcount == 1

    def finish_digest(self, digest_id: str, state: DigestState, now: datetime, error: str | None = None) -> None:
        """Record where a send left the digest: sent, incomplete (some batches failed or in
        doubt), or pending (to be continued on the next run)."""
        values: dict[str, Any] = {"state": state, "last_error": error[:2000] if error else None}
        if state in (DigestState.SENT, DigestState.INCOMPLETE):
            values["sent_at"] = now
        with self._tx() as conn:
            conn.execute(update(schema.digests).where(schema.digests.c.id == digest_id).values(**values))

    def release_digest(self, digest_id: str, error: str | None = None) -> None:
        """A send left the digest ``sending``: back to pending, unless it moved on meanwhile (a
        cluster's settle job, on another daemon, recorded it sent between the look and this)."""
        sending = and_(schema.digests.c.id == digest_id, schema.digests.c.state == DigestState.SENDING)
        with self._tx() as conn:
            values = {"state": DigestState.PENDING, "last_error": error[:2000] if error else None}
            conn.execute(update(schema.digests).where(sending).values(**values))

    def recent_digests(self, limit: int, name: str | None = None) -> list[Digest]:
        """The newest digests (of ``name``, or of any name), newest first."""
        query = _digest_query()
        if name is not None:
            query = query.where(schema.digests.c.name == name)
        with self._tx() as conn:
            query = query.order_by(schema.digests.c.created_at.desc(), schema.digests.c.id.desc()).limit(limit)
            return [Digest(**row) for row in conn.execute(query).mappings()]


_LIVE = articles.c.removed_at.is_(None)
ARTICLE_COLUMNS = [  # an Article row; publisher.feed.index reads the same, less the plain text
    articles.c.id,
    articles.c.key,
    articles.c.slug,
    articles.c.title,
    articles.c.summary,
    articles.c.body_html,
    articles.c.body_text,
    articles.c.author,
    articles.c.tags,
    articles.c.format,
    articles.c.published,
    articles.c.updated,
    articles.c.first_seen,
    articles.c.meta,
]


def _digest_query() -> Any:
    count = (
        select(func.count())
        .where(digest_articles.c.digest_id == schema.digests.c.id)
        .correlate(schema.digests)
        .scalar_subquery()
        .label("article_count")
    )
    return select(
        schema.digests.c.id,
        schema.digests.c.created_at,
        schema.digests.c.subject,
        schema.digests.c.message,
        schema.digests.c.state,
        schema.digests.c.attempts,
        schema.digests.c.last_error,
        schema.digests.c.provider_id,
        schema.digests.c.claimed_at,
        schema.digests.c.claimed_by,
        schema.digests.c.sent_at,
        count,
        schema.digests.c.name,
    )


def _save_one(
    conn: Connection, new: NewArticle, now: datetime, row: Any, reserved: set[str] | None = None
) -> SaveStatus:
    """save_article's work inside ``conn``; ``row`` is the stored article, if already read.

    ``reserved``: slugs given to articles of the same batch not inserted yet; a slug given
    here is added to it.
    """
    if row is None:
        row = conn.execute(select(articles).where(articles.c.key == new.key)).mappings().first()
    if row is not None and row["content_hash"] == new.content_hash:
        return SaveStatus.UNCHANGED  # a removed article stays removed while its file is unchanged
    values = _article_values(new, now)
    if row is None:
        values |= _first_values(new, _free_slug(conn, new.slug), now)
        inserted = conn.execute(insert(articles).values(**values)).inserted_primary_key
        assert inserted is not None
        article_id = inserted[0]
        status = SaveStatus.NEW
    else:
        article_id = row["id"]
        # A draft without a date of its own is dated when it is published, as a new article is.
        undrafted = row["draft"] and not new.draft
        values["published"] = new.published or (now if undrafted else row["published"])
        if new.explicit_slug and new.slug != row["slug"]:
            values["slug"] = _free_slug(conn, new.slug, article_id, reserved)
            if reserved is not None:
                reserved.add(values["slug"])
        conn.execute(update(articles).where(articles.c.id == article_id).values(**values))
        status = SaveStatus.UPDATED
    _put_stats(conn, [(article_id, new.source_path, new.source_size, new.source_mtime_ns)])
    known = conn.execute(
        select(sources.c.id).where(sources.c.article_id == article_id, sources.c.content_hash == new.content_hash)
    ).first()
    if known is None:
        conn.execute(
            insert(sources),
            {"article_id": article_id, "content_hash": new.content_hash, "raw": new.raw, "ingested_at": now},
        )
    return status


def _lock_articles(conn: Connection) -> None:
    """Take the articles' write lock at the start of a save, before its reads.

    Writers of articles take turns anyway (SQLite has one writer; on PostgreSQL the change-log
    trigger takes this advisory lock), but only at their first write: a save that read the
    stored keys and slugs before that could then insert a key or a slug that another run
    committed meanwhile. Taken first, the reads see every save before and none can interleave,
    so overlapping runs never collide on ``articles.key`` or ``articles.slug``. It is held for
    one batch's transaction (milliseconds), never while files are read or parsed.
    """
    if not locks.in_transaction(conn, Lock.ARTICLE_CHANGES):  # SQLite: waits up to busy_timeout for the writer ahead
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _up_to_date(conn: Connection) -> bool:
    """The store exists at this publisher's schema version (read without taking a lock)."""
    if not inspect(conn).has_table("schema_version"):
        return False
    return bool(conn.execute(select(func.max(schema_version.c.version))).scalar_one() == SCHEMA_VERSION)


def _put_stats(conn: Connection, stats: Sequence[tuple[int, str | None, int | None, int | None]]) -> None:
    """Set the source stats of these articles: (article id, path, size, mtime_ns) each.

    An upsert, so that two processes ingesting at once cannot collide on the row.
    """
    rows = [{"article_id": a, "source_path": p, "size": s, "mtime_ns": m} for a, p, s, m in stats if p is not None]
    if not rows:
        return
    dialect_insert: Any = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    upsert = dialect_insert(source_stats)
    changed = {name: upsert.excluded[name] for name in ("source_path", "size", "mtime_ns")}
    conn.execute(upsert.on_conflict_do_update(index_elements=[source_stats.c.article_id], set_=changed), rows)


def _article_values(new: NewArticle, now: datetime) -> dict[str, Any]:
    return {
        "title": new.title,
        "summary": new.summary,
        "body_html": new.body_html,
        "body_text": new.body_text,
        "author": new.author,
        "tags": new.tags,
        "format": new.format,
        "source_path": new.source_path,
        "content_hash": new.content_hash,
        "updated": now,
        "removed_at": None,  # a changed file brings a removed article back
        "draft": new.draft,
        "meta": dict(new.meta),
    }


def _first_values(new: NewArticle, slug: str, now: datetime) -> dict[str, Any]:
    """The columns only a new article sets."""
    return {"key": new.key, "slug": slug, "first_seen": now, "published": new.published or now}


def _free_slug(conn: Connection, slug: str, article_id: int | None = None, reserved: set[str] | None = None) -> str:
    """``slug``, or ``slug-2``, ``slug-3``... when another article has it (or it is ``reserved``)."""
    candidate, n = slug, 1
    while True:
        owner = conn.execute(select(articles.c.id).where(articles.c.slug == candidate)).scalar_one_or_none()
        if (owner is None and candidate not in (reserved or ())) or (owner is not None and owner == article_id):
            return candidate
        n += 1
        candidate = f"{slug}-{n}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets `publisher status` read while the daemon writes; busy_timeout waits out a
    # writer instead of failing at once with "database is locked".
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
