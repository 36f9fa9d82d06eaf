"""``publisher db copy``: the store moved to another database with every row as it is.

Every table of publisher.store.schema is copied in dependency order (parents first) with its
ids, in one transaction on the target: a copy that fails leaves nothing behind. So digests
keep their ids and journals, subscribers their tokens (the links already mailed still work),
and ``feed_ids`` every entry id already published: feeds rebuilt from the copy are the same
bytes. The target must hold no store yet; the source is first brought to this version's schema.

The change log (``article_changes``) is written by triggers as articles go in, so the
target's own rows are replaced by the source's afterwards; PostgreSQL's id sequences are then
moved past the copied ids, so that the next insert does not collide with them.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Integer, delete, func, insert, inspect, select, text

from publisher.errors import StoreError
from publisher.store import Store, safe_url
from publisher.store.schema import article_changes, metadata

CHUNK = 1000  # rows per INSERT: the sources table holds whole files


def copy_store(source_url: str, target_url: str, on_table: Callable[[str, int], None] | None = None) -> int:
    """Copy the store at ``source_url`` into the empty database at ``target_url``; the row count."""
    source = Store.open(source_url)
    target = Store(target_url)
    try:
        with target.transaction() as conn:
            if inspect(conn).has_table("schema_version"):
                raise StoreError(f"db copy: {safe_url(target_url)} holds a store already; copy into an empty database")
        total = 0
        with source.transaction() as src, target.transaction() as dst:
            metadata.create_all(dst)
            tables = [t for t in metadata.sorted_tables if t is not article_changes] + [article_changes]
            for table in tables:
                if table is article_changes:
                    dst.execute(delete(article_changes))  # the triggers' rows for the articles copied
                count = _copy_table(src, dst, table.name)
                total += count
                if on_table is not None:
                    on_table(table.name, count)
            if dst.dialect.name == "postgresql":
                _move_sequences(dst)
        return total
    finally:
        source.close()
        target.close()


def _copy_table(src: Connection, dst: Connection, name: str) -> int:
    table = metadata.tables[name]
    query = select(table).order_by(*table.primary_key.columns) if table.primary_key.columns else select(table)
    count = 0
    for chunk in src.execution_options(stream_results=True).execute(query).mappings().partitions(CHUNK):
        dst.execute(insert(table), [dict(row) for row in chunk])
        count += len(chunk)
    return count


def _move_sequences(conn: Connection) -> None:
    """Every serial id's sequence past the highest id copied."""
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            if not (isinstance(column.type, Integer) and column.autoincrement in (True, "auto")):
                continue
            if len(table.primary_key.columns) != 1 or column.foreign_keys:
                continue
            highest = conn.execute(select(func.max(column))).scalar_one()
            if highest is None:
                continue
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence(:table, :column), :value)"),
                {"table": table.name, "column": column.name, "value": int(highest)},
            )
