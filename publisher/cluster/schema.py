"""``publisher db upgrade``: the store's migrations, and on PostgreSQL the cluster's job tables."""

from __future__ import annotations

from publisher.store import Store
from publisher.store import cluster as sql


def upgrade(store_url: str) -> list[str]:
    """Bring the store (and Procrastinate's schema beside it) up to date; one line per part."""
    store = Store.open(store_url)  # applies the store's own migrations, as every command does
    try:
        lines = [f"store: schema v{store.schema_version()}, up to date"]
        if sql.is_postgresql(store_url):
            done = sql.engine_schema(store)
            lines.append(f"cluster jobs (procrastinate): {', '.join(done) + ' applied' if done else 'up to date'}")
        return lines
    finally:
        store.close()
