"""What ``publisher digest resume`` can continue, and what keeps the rest waiting.

A resume never starts a new digest: it continues the unsent one, or an incomplete one whose
batches the operator's flags put back to pending (publisher.dispatch.reopen).
"""

from __future__ import annotations

from dataclasses import dataclass

from publisher import journal
from publisher.config import Config
from publisher.dispatch import reopened_states
from publisher.states import BatchState, DigestState
from publisher.store import Digest, Store

RECENT = 50  # digests looked at, as dispatch.reopen does


@dataclass(frozen=True)
class HeldBack:
    """An incomplete digest that no resume continues without a flag."""

    digest_id: str
    in_doubt: int  # batches: --resend-in-doubt
    failed: int  # batches: --retry-failed


def resumable(store: Store, resend_in_doubt: bool, retry_failed: bool) -> bool:
    """Whether send_digest would continue a digest (rather than start a new one)."""
    if store.unsent_digest() is not None:
        return True
    states = reopened_states(resend_in_doubt, retry_failed)
    return any(journal.summary(store, d.id).batches[state] for d in _incomplete(store) for state in states)


def waiting(config: Config, store: Store) -> list[Config]:
    """The digests (each as its own config) a resume continues: those with a digest unsent,
    or incomplete (which the operator's flags may put back to pending)."""
    names = {d.name for d in _incomplete(store)}
    return [each for each in config.each_digest() if each.digest.name in names or store.unsent_digest(each.digest.name)]


def held_back(store: Store) -> list[HeldBack]:
    """The incomplete digests with batches in doubt or failed, newest first."""
    held = []
    for d in _incomplete(store):
        done = journal.summary(store, d.id).batches
        if done[BatchState.IN_DOUBT] or done[BatchState.FAILED]:
            held.append(HeldBack(d.id, done[BatchState.IN_DOUBT], done[BatchState.FAILED]))
    return held


def _incomplete(store: Store) -> list[Digest]:
    return [d for d in store.recent_digests(RECENT) if d.state == DigestState.INCOMPLETE]
