"""The store's tables (SQLAlchemy Core), as of the newest migration in :mod:`publisher.store`."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    false,
    inspect,
    text,
)

ARTICLE_KEY_CHARS = 500  # articles.key: PostgreSQL enforces the width, SQLite would not (ingest checks)


class AdvisoryLock(IntEnum):
    """PostgreSQL advisory lock keys, all here so that no two uses ever share one."""

    MIGRATION = 7239001  # store.migrate: several machines may start at once
    DAEMON = 7239002  # scheduler.only_daemon: one daemon per store (held for the daemon's life)
    TAG_INDEX = 7239003  # feed.index: one tag index writer at a time
    ARTICLE_CHANGES = 7239004  # the article_changes trigger: change numbers in commit order
    CLUSTER_SLOTS = 7239005  # publisher.cluster.slots: a slot is offered after every older one


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; datetimes must be aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stored: datetime = value
        return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UtcDateTime, nullable=False),
)

# Small named values: the digest backlog cutoff, the store's creation time.
settings = Table(
    "settings",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

articles = Table(
    "articles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(ARTICLE_KEY_CHARS), nullable=False, unique=True),  # source path, stable identity
    Column("slug", String(200), nullable=False, unique=True),  # URL part
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("body_html", Text, nullable=False),
    Column("body_text", Text, nullable=False),
    Column("author", Text),
    Column("tags", JSON, nullable=False),
    Column("format", String(10), nullable=False),
    Column("source_path", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("published", UtcDateTime, nullable=False),
    Column("updated", UtcDateTime, nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    # Set by `publisher articles remove`: the article leaves the feeds and digests, and its
    # unchanged source file does not bring it back (a changed one does). Schema version 2.
    Column("removed_at", UtcDateTime),
    # `draft: true` in front matter: stored, but out of the feeds and digests until the flag
    # goes (migration _draft).
    Column("draft", Boolean, nullable=False, server_default=false()),
    # Metadata beyond the columns above, as publisher.store.ArticleMeta (language, direction,
    # lead image, audio, canonical URL...): front matter or the page's own (migration _meta).
    Column("meta", JSON, nullable=False, server_default=text("'{}'")),
)

# Every distinct version of every source file, byte for byte, so cleaning can be re-run.
sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("article_id", ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("ingested_at", UtcDateTime, nullable=False),
    UniqueConstraint("article_id", "content_hash"),
)

# Where and how each article's source file was last found (schema version 4): a file at the
# same path with the same size and st_mtime_ns is taken as unchanged without reading it, as
# rsync and make do. No row, or NULL size: not to be trusted (the file was written in the
# seconds before the scan), so the file is read and hashed. A table of its own, so that
# recording a stat is no write to ``articles``.
source_stats = Table(
    "source_stats",
    metadata,
    Column("article_id", ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("source_path", Text, nullable=False),
    Column("size", BigInteger),
    Column("mtime_ns", BigInteger),
)

# A digest is frozen when created (the whole RFC 5322 message), so a retry sends the same bytes.
# state: pending -> sending -> sent; a failed attempt goes back to pending.
digests = Table(
    "digests",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("subject", Text, nullable=False),
    Column("message", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("provider_id", Text),
    Column("claimed_at", UtcDateTime),  # when the current send began (see jobs.send_digest)
    Column("claimed_by", String(200)),  # host:pid:start of the sender (publisher.owner); version 3
    Column("sent_at", UtcDateTime),
    # Which digest of the site ([[digest]] name); version 13. The single [digest] is "digest".
    Column("name", String(64), nullable=False, server_default="digest"),
)

# (digest_name, article_id) is unique: an article goes out in each digest at most once, even
# with two publishers racing on one PostgreSQL store (the second insert fails instead of
# sending twice). ``digest_name`` repeats the digest's name so that the constraint can see it.
digest_articles = Table(
    "digest_articles",
    metadata,
    Column("digest_id", ForeignKey("digests.id", ondelete="CASCADE"), nullable=False),
    Column("article_id", ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("digest_name", String(64), nullable=False, server_default="digest"),
    UniqueConstraint("digest_name", "article_id", name="digest_articles_once_per_digest"),
)

# -- schema version 3: local subscribers and the delivery journal ---------------------------

# The publisher's own list, used when [digest] recipients = "subscribers". ``email_key`` (the
# address lower-cased) merges duplicates; ``token`` is the random id in unsubscribe links,
# which carry an HMAC of it (see publisher.subscribers).
subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),
    Column("name", Text),
    Column("token", String(64), nullable=False, unique=True),
    Column("state", String(16), nullable=False),  # active | unsubscribed
    Column("created_at", UtcDateTime, nullable=False),
    Column("unsubscribed_at", UtcDateTime),
)

# A digest's delivery: the requests it takes (batches), each with the recipients it carries.
# All of them are written before the first request; each state change is committed before the
# next step. state: pending -> sending -> accepted | failed | in_doubt. ``key`` is the
# idempotency key sent with the batch; it never changes.
batches = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("digest_id", ForeignKey("digests.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("key", String(100), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("recipient_count", Integer, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("provider_id", Text),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("digest_id", "number"),
)

# (digest_id, email_key) is unique: nobody is planned into one digest twice. ``error`` holds a
# provider's refusal of this one address inside an accepted batch (Postmark does that).
batch_recipients = Table(
    "batch_recipients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", ForeignKey("batches.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("digest_id", String(64), nullable=False),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="SET NULL")),
    Column("error", Text),
    UniqueConstraint("digest_id", "email_key"),
)

# -- the feed index: what lets `publisher feed` rebuild only the documents that changed ------

# Newest-first reads of live articles (the main feeds, an archive month) without a sort.
articles_by_published = Index("ix_articles_published", articles.c.published, articles.c.id)

# Every write to ``articles`` appends a row here, by database trigger (below), whatever code
# path made it: a feed rebuild reads the rows after the last one it saw. ``old_published`` and
# ``old_tags`` (NULL for an insert) say which archive month and tag feeds the article left.
# ``rev`` follows commit order: SQLite has one writer at a time, and on PostgreSQL the trigger
# takes a transaction lock, so a later rev is never committed before an earlier one.
article_changes = Table(
    "article_changes",
    metadata,
    Column("rev", Integer, primary_key=True),
    Column("article_id", Integer, nullable=False),
    Column("old_published", UtcDateTime),
    Column("old_tags", JSON),
    sqlite_autoincrement=True,  # never reuse a rev, or a rebuild would miss a change
)

# The live articles' tags by slug, kept by the feed writer from article_changes (the slug is
# computed in Python), with ``published`` copied so a tag feed's newest entries are one index
# range. The newest rev it has applied is the setting ``article_tags_rev``.
article_tags = Table(
    "article_tags",
    metadata,
    Column("article_id", ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("slug", String(200), primary_key=True),
    Column("tag", Text, nullable=False),  # the spelling the article gives it first
    Column("published", UtcDateTime, nullable=False),
    Index("ix_article_tags_slug", "slug", "published", "article_id"),
)

# One row per feeds folder: what its last rebuild wrote (JSON, see publisher.feed.state), and a
# serial that a rebuild bumps only if no other rebuild saved in between.
feed_builds = Table(
    "feed_builds",
    metadata,
    Column("dir", String(1000), primary_key=True),
    Column("serial", Integer, nullable=False),
    Column("state", Text, nullable=False),
)

# Each article's URL and content as the feeds show them (links made absolute), kept by the
# feed writer so that an unchanged article is not parsed again on every rebuild that shows it.
# ``version`` is a digest of the settings, code and article fields they were made from.
feed_content = Table(
    "feed_content",
    metadata,
    Column("article_id", ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("html", Text, nullable=False),
)

# The id each article's feed entry carries, remembered from the first rebuild that showed it:
# an id once published never changes (a new store adopts them, see publisher.feed.ids). Keyed
# by the article key (its source path), which survives a store rebuilt from the same files.
feed_ids = Table(
    "feed_ids",
    metadata,
    Column("key", String(500), primary_key=True),
    Column("entry_id", Text, nullable=False),
)

# The file name each tag's feed got, remembered so that it never changes when a tag that
# slugifies alike arrives later (see publisher.feed.tags). ``tag_key`` is a digest of the tag
# as compared (case-folded), so its length suits every backend.
feed_tag_slugs = Table(
    "feed_tag_slugs",
    metadata,
    Column("tag_key", String(64), primary_key=True),
    Column("tag", Text, nullable=False),
    Column("slug", String(200), nullable=False, unique=True),
)

# Only the columns a feed shows: ingest recording a file's new mtime is no change to the feeds.
_FEED_COLUMNS = (
    "key, slug, title, summary, body_html, author, tags, published, updated, first_seen, removed_at, draft, meta"
)
_SQLITE_TRIGGERS = [
    "CREATE TRIGGER article_changes_insert AFTER INSERT ON articles BEGIN "
    "INSERT INTO article_changes (article_id) VALUES (NEW.id); END",
    "CREATE TRIGGER article_changes_update AFTER UPDATE OF {columns} ON articles BEGIN "
    "INSERT INTO article_changes (article_id, old_published, old_tags) VALUES (NEW.id, OLD.published, OLD.tags); END",
    "CREATE TRIGGER article_changes_delete AFTER DELETE ON articles BEGIN "
    "INSERT INTO article_changes (article_id, old_published, old_tags) VALUES (OLD.id, OLD.published, OLD.tags); END",
]
# The lock is taken before the statement touches a row, so writers never wait on it while
# holding an article row lock (no deadlock between two ingests).
_POSTGRES_TRIGGERS = [
    f"""CREATE OR REPLACE FUNCTION article_changes_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({AdvisoryLock.ARTICLE_CHANGES.value});
    RETURN NULL;
END $$""",
    """CREATE OR REPLACE FUNCTION article_changes_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO article_changes (article_id) VALUES (NEW.id);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO article_changes (article_id, old_published, old_tags) VALUES (NEW.id, OLD.published, OLD.tags);
    ELSE
        INSERT INTO article_changes (article_id, old_published, old_tags) VALUES (OLD.id, OLD.published, OLD.tags);
    END IF;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER article_changes_lock BEFORE INSERT OR UPDATE OF {columns} OR DELETE ON articles "
    "FOR EACH STATEMENT EXECUTE FUNCTION article_changes_lock()",
    "CREATE TRIGGER article_changes_log AFTER INSERT OR UPDATE OF {columns} OR DELETE ON articles "
    "FOR EACH ROW EXECUTE FUNCTION article_changes_log()",
]
_TRIGGERS = {"sqlite": _SQLITE_TRIGGERS, "postgresql": _POSTGRES_TRIGGERS}


def _create_triggers(target: Table, connection: Connection, **kw: Any) -> None:
    """Run when article_changes is created: by a new store's create_all, or its migration."""
    # Only the columns there are yet: an older store gets the newer ones by later migrations,
    # which create the triggers again (recreate_triggers).
    present = {column["name"] for column in inspect(connection).get_columns("articles")}
    columns = ", ".join(name for name in _FEED_COLUMNS.split(", ") if name in present)
    for sql in _TRIGGERS.get(connection.dialect.name, []):
        connection.execute(text(sql.replace("{columns}", columns)))


event.listen(article_changes, "after_create", _create_triggers)

_TRIGGER_NAMES = {
    "sqlite": ["article_changes_insert", "article_changes_update", "article_changes_delete"],
    "postgresql": ["article_changes_lock", "article_changes_log"],
}


def recreate_triggers(connection: Connection) -> None:
    """Drop and create the change-log triggers again: a migration that adds a column to
    _FEED_COLUMNS needs them to watch it too."""
    on = " ON articles" if connection.dialect.name == "postgresql" else ""
    for name in _TRIGGER_NAMES.get(connection.dialect.name, []):
        connection.execute(text(f"DROP TRIGGER IF EXISTS {name}{on}"))
    _create_triggers(article_changes, connection)


# -- remote feed sources ([[sources]], publisher.sources; SQL in publisher.store.remote) ------

# One row per configured source: what the next fetch sends (validators, the URL a permanent
# redirect moved it to), when it is due, and how it has fared. ``configured_url`` is the URL
# publisher.toml gave: when the operator changes it, the source starts over at the new one.
remote_sources = Table(
    "remote_sources",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("configured_url", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("first_success", UtcDateTime),  # None: never fetched, the backlog still applies
    Column("last_success", UtcDateTime),
    Column("last_error", Text),
    Column("last_error_at", UtcDateTime),
    Column("failing_since", UtcDateTime),
    Column("failures", Integer, nullable=False, server_default=text("0")),
    Column("next_fetch", UtcDateTime),
)

# Every item a source's feed has shown, by the identities it can be recognised by: its GUID,
# its link, its title and a hash of its content (each a sha256, so the indexes suit every backend).
# ``entry_hash`` is the item as last read, without its GUID: the same hash is no change.
# ``article_key`` is None for an item seen but not taken (older than the first fetch's backlog).
remote_items = Table(
    "remote_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", ForeignKey("remote_sources.name", ondelete="CASCADE"), nullable=False),
    Column("article_key", String(500), unique=True),
    Column("guid", Text),
    Column("guid_key", String(64)),
    Column("link_key", String(64)),
    Column("title_key", String(64), nullable=False),
    Column("content_key", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Index("ix_remote_items_source", "source", "guid_key"),
)
