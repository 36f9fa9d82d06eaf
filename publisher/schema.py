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
    Column("claimed_by", String(200)),  # host:pid:start of the sender (publisher.owner); version 3
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
