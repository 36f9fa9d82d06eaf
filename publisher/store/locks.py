"""Named locks: one place for every lock the store's users take, file or advisory.

A lock is named by :class:`Lock` (the PostgreSQL advisory key is its value, so no two uses
ever share one). :func:`in_transaction` holds one for a transaction (released at its end);
:func:`held` holds one for as long as a block runs, and the operating system drops it when the
process dies, even by SIGKILL: a file lock (flock) beside a SQLite store, a session advisory
lock on PostgreSQL.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from publisher.errors import StoreError
from publisher.store.schema import AdvisoryLock as Lock

__all__ = ["Lock", "LockHeld", "held", "in_transaction"]


class LockHeld(StoreError):
    """Another process holds the lock; ``detail`` says who, as far as is known."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def in_transaction(conn: Connection, lock: Lock) -> bool:
    """Wait for ``lock`` and hold it until ``conn``'s transaction ends (PostgreSQL); False on
    SQLite, whose caller takes its one write lock its own way."""
    if conn.dialect.name != "postgresql":
        return False
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(lock)})
    return True


@contextmanager
def held(engine: Engine, lock: Lock) -> Iterator[None]:
    """Hold ``lock`` while the block runs, or raise :class:`LockHeld` at once."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        path = Path(f"{url.database}.{lock.name.lower()}.lock")
        with path.open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                raise LockHeld(f"pid {handle.read().strip() or '?'}, lock {path}") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        return
    with engine.connect() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": int(lock)}).scalar():
            raise LockHeld("PostgreSQL advisory lock held")
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": int(lock)})
