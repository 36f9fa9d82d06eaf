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


def choose(config: Config, store: Store, when: datetime, *, digest_id: str | None, last: bool) -> Preview:
    """The stored digest (``digest_id``, or the newest with ``last``), else the next one."""
    if digest_id is not None or last:
        return Preview(stored(config, store, digest_id), None)
    shown = preview(config, store, when)
    return Preview(shown, store.last_digest() if shown is None else None)


def stored(config: Config, store: Store, digest_id: str | None) -> Outgoing:
    """The stored digest ``digest_id``, or the newest one when it is None."""
    found = store.digest(digest_id) if digest_id is not None else store.last_digest()
    if found is None:
        if digest_id is None:
            raise PublisherError("digest: no digest yet, nothing to preview (`publisher run` creates the first)")
        raise PublisherError(f"digest {digest_id}: no such digest (see `publisher digest list`)")
    return outgoing(config, store, found)


def write(shown: Outgoing, out: Path) -> list[Path]:
    """The digest as ``digest-ID.html``, ``.txt`` and ``.eml`` in ``out``; their paths, the HTML first."""
    paths = []
    for suffix, data in ((".html", shown.html.encode()), (".txt", shown.text.encode()), (".eml", shown.message)):
        path = out / f"digest-{shown.id}{suffix}"
        write_atomic(path, data)
        paths.append(path)
    return paths
