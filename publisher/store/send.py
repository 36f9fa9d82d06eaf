"""What the send pipeline (publisher.dispatch, publisher.journal) needs of a store, and no more.

A narrow contract, as listmonk's manager has one: a job engine (or a test double) can stand
under the send by providing these methods, without dispatch changing. :class:`Store` is one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from publisher.states import DigestState

if TYPE_CHECKING:
    from publisher.store import Article, Digest, Tx


class SendStore(Protocol):
    def transaction(self) -> AbstractContextManager[Tx]:
        """One transaction for the journal's repository calls (publisher.store.batches)."""
        ...

    def unsent_digest(self) -> Digest | None: ...

    def digest(self, digest_id: str) -> Digest | None: ...

    def claim_digest(self, digest: Digest, now: datetime, owner: str | None = None) -> bool: ...

    def finish_digest(self, digest_id: str, state: DigestState, now: datetime, error: str | None = None) -> None: ...

    def recent_digests(self, limit: int) -> list[Digest]: ...

    def digest_articles(self, digest_id: str) -> list[Article]: ...
