"""The store's tables (SQLAlchemy Core), as of the newest migration in :mod:`publisher.store`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


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
    Column("key", String(500), nullable=False, unique=True),  # source path, stable identity
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
    Column("sent_at", UtcDateTime),
)

# article_id is unique: an article goes out in one digest at most, even with two publishers
# racing on one PostgreSQL store (the second insert fails instead of sending twice).
digest_articles = Table(
    "digest_articles",
    metadata,
    Column("digest_id", ForeignKey("digests.id", ondelete="CASCADE"), nullable=False),
    Column("article_id", ForeignKey("articles.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("position", Integer, nullable=False),
)
