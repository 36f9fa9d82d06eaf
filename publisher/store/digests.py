"""The digests table's statements that run inside a caller's transaction (the journal's).

The Store's own digest methods (create, claim, finish...) each run in a transaction of their
own; these are the ones another repository's work must commit together with.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, inspect, select, text, update
from sqlalchemy.schema import CreateColumn

from publisher.states import DigestState
from publisher.store.schema import digest_articles, digests, metadata


def renew_lease(conn: Connection, digest_id: str, now: datetime) -> None:
    """The digest's sender is alive: a long send of many batches stays visibly so."""
    conn.execute(update(digests).where(digests.c.id == digest_id).values(claimed_at=now))


def incomplete(conn: Connection) -> list[str]:
    """The ids of the digests in state incomplete, oldest first."""
    query = (
        select(digests.c.id)
        .where(digests.c.state == DigestState.INCOMPLETE)
        .order_by(digests.c.created_at, digests.c.id)
    )
    return [str(row) for row in conn.execute(query).scalars()]


def close_incomplete(conn: Connection, digest_id: str) -> bool:
    """Move an incomplete digest to closed; False if it was not incomplete."""
    changed = conn.execute(
        update(digests)
        .where(digests.c.id == digest_id, digests.c.state == DigestState.INCOMPLETE)
        .values(state=DigestState.CLOSED)
    )
    return int(changed.rowcount) == 1


def several(conn: Connection) -> None:
    """Several digests per site (version 13): each digest row gets its name, and an article
    may be in one digest of each name. The rows there are belong to "digest", the single
    [digest]. The unique key changes, so digest_articles is rebuilt and its rows copied."""
    if "name" not in {column["name"] for column in inspect(conn).get_columns("digests")}:
        column = CreateColumn(digests.c.name).compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE digests ADD COLUMN {column}"))
    if "digest_name" in {column["name"] for column in inspect(conn).get_columns("digest_articles")}:
        return  # made from the schema of this version already
    conn.execute(text("ALTER TABLE digest_articles RENAME TO digest_articles_v12"))
    metadata.create_all(conn, tables=[digest_articles])
    conn.execute(
        text(
            "INSERT INTO digest_articles (digest_id, article_id, position, digest_name)"
            " SELECT digest_id, article_id, position, 'digest' FROM digest_articles_v12"
        )
    )
    conn.execute(text("DROP TABLE digest_articles_v12"))
