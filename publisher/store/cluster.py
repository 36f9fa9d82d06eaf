"""The SQL of a cluster of daemons (publisher.cluster): Procrastinate's schema and what
``publisher status`` reads of its tables.

Procrastinate keeps its jobs, workers and periodic defers in tables of its own
(``procrastinate_*``) in the store's PostgreSQL database; this module only reads them, and
installs or upgrades them under the store's migration lock, so that daemons starting at once
never apply the schema twice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from sqlalchemy import text
from sqlalchemy.engine import make_url

from publisher.errors import StoreConflict, StoreError
from publisher.store import Store
from publisher.store.schema import AdvisoryLock

ENGINE_VERSION = "procrastinate_version"  # the setting: which Procrastinate's schema the store has
_MIGRATION = re.compile(r"^(\d+)\.(\d+)\.(\d+)_(\d+)_.*\.sql$")


def conninfo(url: str) -> str:
    """The store's SQLAlchemy URL (postgresql+psycopg://...) as a libpq URL for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def is_postgresql(url: str) -> bool:
    try:
        return make_url(url).get_backend_name() == "postgresql"
    except Exception:  # a URL SQLAlchemy cannot read: the store says so when it is opened
        return False


def engine_schema(store: Store) -> list[str]:
    """Install Procrastinate's schema, or apply the migrations it gained since; return what was done.

    A new database gets the whole schema of the installed Procrastinate; one set up by an older
    Procrastinate gets the migration files after the version recorded in the store's settings.
    """
    try:
        import procrastinate  # the [postgres] extra: only a cluster needs it
    except ImportError:
        raise StoreError("the cluster's job tables need procrastinate: pip install 'publisher[postgres]'") from None

    installed = _version(procrastinate.__version__)
    with store.transaction() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(AdvisoryLock.MIGRATION)})
        present = conn.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar_one()
        recorded = conn.execute(
            text("SELECT value FROM settings WHERE name = :name"), {"name": ENGINE_VERSION}
        ).scalar_one_or_none()
        done: list[str] = []
        if not present:
            conn.exec_driver_sql(_sql("schema.sql"))
            done.append(f"procrastinate schema {procrastinate.__version__}")
        elif recorded is not None and _version(recorded) < installed:
            for name in _migrations(_version(recorded), installed):
                conn.exec_driver_sql(_sql(f"migrations/{name}"))
                done.append(name)
        if recorded != procrastinate.__version__ and (done or recorded is None):
            conn.execute(text("DELETE FROM settings WHERE name = :name"), {"name": ENGINE_VERSION})
            conn.execute(
                text("INSERT INTO settings (name, value) VALUES (:name, :value)"),
                {"name": ENGINE_VERSION, "value": procrastinate.__version__},
            )
        return done


def has_engine_schema(store: Store) -> bool:
    with store.transaction() as conn:
        return bool(conn.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar_one())


def _version(value: str) -> tuple[int, int, int]:
    major, minor, patch = ([int(p) for p in re.findall(r"\d+", value)] + [0, 0, 0])[:3]
    return major, minor, patch


def _migrations(after: tuple[int, int, int], upto: tuple[int, int, int]) -> list[str]:
    folder = resources.files("procrastinate.sql") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match is not None:
            version = (int(match[1]), int(match[2]), int(match[3]))
            if after < version <= upto:
                found.append(entry.name)
    return sorted(found)


def _sql(name: str) -> str:
    """A file of Procrastinate's SQL, its percent signs doubled: the driver reads them as placeholders."""
    return (resources.files("procrastinate.sql") / name).read_text(encoding="utf-8").replace("%", "%%")


@dataclass(frozen=True)
class Worker:
    id: int
    last_heartbeat: datetime
    alive: bool


@dataclass(frozen=True)
class Jobs:
    queued: int
    running: int
    stalled: int  # running on a worker whose heartbeat stopped: retried after the stall timeout
    failed: int  # a job that raised (a bug, or the store gone): its work is redone by the next slot


def workers(store: Store, stall_seconds: int) -> list[Worker]:
    query = text(
        "SELECT id, last_heartbeat, last_heartbeat >= NOW() - make_interval(secs => :stall) AS alive "
        "FROM procrastinate_workers ORDER BY id"
    )
    with store.transaction() as conn:
        return [
            Worker(int(r.id), r.last_heartbeat, bool(r.alive)) for r in conn.execute(query, {"stall": stall_seconds})
        ]


def jobs(store: Store, stall_seconds: int) -> Jobs:
    query = text(
        "SELECT "
        "count(*) FILTER (WHERE j.status = 'todo') AS queued, "
        "count(*) FILTER (WHERE j.status = 'doing') AS running, "
        "count(*) FILTER (WHERE j.status = 'doing' AND (w.id IS NULL "
        "  OR w.last_heartbeat < NOW() - make_interval(secs => :stall))) AS stalled, "
        "count(*) FILTER (WHERE j.status = 'failed') AS failed "
        "FROM procrastinate_jobs j LEFT JOIN procrastinate_workers w ON w.id = j.worker_id"
    )
    with store.transaction() as conn:
        row = conn.execute(query, {"stall": stall_seconds}).one()
    return Jobs(int(row.queued), int(row.running), int(row.stalled), int(row.failed))


def defer_slot(
    store: Store, task_name: str, lock: str | None, slot: int, key: str | None = None, **args: str
) -> int | None:
    """Queue the periodic ``task_name`` for ``slot`` (a Unix time) unless some daemon did: the
    job's id, or None when it was deferred already, or an older slot's job still waits.

    Procrastinate's periodic defer keeps only the newest slot of a task in its table, so a
    daemon running late could queue an older slot once more; offered under a lock, after a
    look at the newest slot, a slot is never queued twice nor after a newer one. ``key`` (the
    task's name unless given: one per digest) is the periodic id and the queueing lock; ``args``
    go to the job beside the slot's ``timestamp``.
    """
    periodic = key or task_name
    try:
        with store.transaction() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(AdvisoryLock.CLUSTER_SLOTS)})
            newest = conn.execute(
                text(
                    "SELECT max(defer_timestamp) FROM procrastinate_periodic_defers "
                    "WHERE task_name = :task AND periodic_id = :periodic"
                ),
                {"task": task_name, "periodic": periodic},
            ).scalar_one()
            if newest is not None and slot <= int(newest):
                return None
            job_id = conn.execute(
                text(
                    "SELECT procrastinate_defer_periodic_job_v2('default', :lock, :periodic, :task, 0, :periodic, "
                    ":slot, CAST(:args AS jsonb))"
                ),
                {
                    "lock": lock,
                    "task": task_name,
                    "periodic": periodic,
                    "slot": slot,
                    "args": json.dumps({"timestamp": slot, **args}),
                },
            ).scalar_one()
    except StoreConflict:  # the queueing lock: the job of an older slot still waits, and does this one's work
        return None
    return None if job_id is None else int(job_id)


def last_defer(store: Store, task_name: str, periodic_id: str) -> int | None:
    """The newest slot (a Unix time) for which the periodic ``task_name`` was deferred."""
    query = text(
        "SELECT max(defer_timestamp) FROM procrastinate_periodic_defers "
        "WHERE task_name = :task AND periodic_id = :periodic"
    )
    with store.transaction() as conn:
        value = conn.execute(query, {"task": task_name, "periodic": periodic_id}).scalar_one()
    return None if value is None else int(value)
