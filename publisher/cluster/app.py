"""The Procrastinate App of a cluster: jobs, workers and periodic defers in the store's database."""

from __future__ import annotations

from procrastinate import App, PsycopgConnector

from publisher.store.cluster import conninfo


def build(store_url: str, *, connections: int) -> App:
    """An App on the store's PostgreSQL database (the URL without SQLAlchemy's driver name).

    ``connections``: the pool's size; the worker's jobs, its heartbeat and listener share it.
    """
    connector = PsycopgConnector(conninfo=conninfo(store_url), min_size=1, max_size=connections)
    return App(connector=connector)
