"""The digests table's statements that run inside a caller's transaction (the journal's).

The Store's own digest methods (create, claim, finish...) each run in a transaction of their
own; these are the ones another repository's work must commit together with.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from publisher.states import DigestState
from publisher.store.schema import digests


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
