"""``publisher digest preview`` and ``digest list``: the next digest, or a stored one, as files.

A stored digest is shown as it was frozen when it was created (the very message that went,
or goes, out), not rendered again from the articles, which may have changed since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from publisher.config import Config
from publisher.digest import outgoing, preview
from publisher.errors import PublisherError
from publisher.files import write_atomic
from publisher.message import Outgoing
from publisher.store import Digest, Store


@dataclass(frozen=True)
class Preview:
    shown: Outgoing | None  # None: nothing new since the last digest
    newest: Digest | None  # then, the last digest, to offer with --last


def choose(
    config: Config, store: Store, when: datetime, *, digest_id: str | None, last: bool, name: str | None = None
) -> Preview:
    """The stored digest (``digest_id``, or the newest with ``last``), else the next one; of
    the digest ``name`` (``--digest``), or else of the first digest of the file."""
    named = config if name is None else config.for_digest(name)
    if digest_id is not None or last:
        return Preview(stored(named, store, digest_id, name), None)
    shown = preview(named, store, when)
    return Preview(shown, store.last_digest(named.digest.name) if shown is None else None)


def stored(config: Config, store: Store, digest_id: str | None, name: str | None = None) -> Outgoing:
    """The stored digest ``digest_id``, or the newest one (of ``name``) when it is None."""
    found = store.digest(digest_id) if digest_id is not None else store.last_digest(name)
    if found is None:
        if digest_id is None:
            raise PublisherError("digest: no digest yet, nothing to preview (`publisher run` creates the first)")
        raise PublisherError(f"digest {digest_id}: no such digest (see `publisher digest list`)")
    known = {d.name for d in config.digests}
    return outgoing(config.for_digest(found.name) if found.name in known else config, store, found)


def listed(config: Config, store: Store, limit: int, name: str | None) -> list[Digest]:
    """``digest list``: the newest stored digests, of ``name`` (``--digest``) or of every digest."""
    if name is not None:
        config.for_digest(name)  # an unknown name is the operator's typo: say so
    return store.recent_digests(limit, name)


def write(shown: Outgoing, out: Path) -> list[Path]:
    """The digest as ``digest-ID.html``, ``.txt`` and ``.eml`` in ``out``; their paths, the HTML first."""
    paths = []
    for suffix, data in ((".html", shown.html.encode()), (".txt", shown.text.encode()), (".eml", shown.message)):
        path = out / f"digest-{shown.id}{suffix}"
        write_atomic(path, data)
        paths.append(path)
    return paths
