"""Helpers the delivery tests share: the journal read back from a project's store, a local
list of subscribers, and checks on personal unsubscribe links and on leaked secrets.
"""

from __future__ import annotations

import re
from contextlib import closing

from publisher import journal, subscribers
from publisher.store import Digest
from tests.conftest import NOW, Project

# The HMAC secret for unsubscribe links; tests put it in PUBLISHER_UNSUBSCRIBE_SECRET.
UNSUBSCRIBE_SECRET = "unsubscribe-secret-0123456789"
LINK = re.compile(r"https://news\.example\.org/unsubscribe\?s=([\w-]+)&(?:amp;)?t=([\w-]+)")


def last_digest(project: Project) -> Digest:
    with closing(project.open_store()) as store:
        digest = store.last_digest()
    assert digest is not None, "no digest in the store"
    return digest


def batches(project: Project, digest: Digest) -> list[journal.Batch]:
    with closing(project.open_store()) as store:
        return journal.batches_of(store, digest.id)


def read_journal(project: Project) -> tuple[Digest, list[journal.Batch]]:
    """The last digest and its batches, in order."""
    digest = last_digest(project)
    return digest, batches(project, digest)


def subscribe(project: Project, addresses: list[str]) -> None:
    """Send the digest to the local list, with ``addresses`` on it."""
    project.configure(digest={"recipients": "subscribers"})
    with closing(project.open_store()) as store:
        subscribers.add(store, [(address, None) for address in addresses], NOW, resubscribe=False)


def add_subscribers(project: Project, count: int) -> list[str]:
    """``count`` readers (reader0000@example.net, ...) on the local list the digest goes to."""
    addresses = [f"reader{n:04d}@example.net" for n in range(count)]
    subscribe(project, addresses)
    return addresses


def tokens(project: Project) -> dict[str, str]:
    """Each subscriber's unsubscribe token -> their address."""
    with closing(project.open_store()) as store:
        return {s.token: s.email for s in subscribers.listing(store)}


def assert_own_link(holders: dict[str, str], address: str, text: str) -> None:
    """``text`` holds one unsubscribe link, signed, and it is ``address``'s (``holders``: from tokens())."""
    found = set(LINK.findall(text))
    assert len(found) == 1, f"{address}: links {found}"
    [(token, sig)] = found
    assert subscribers.check(UNSUBSCRIBE_SECRET.encode(), token, sig), f"{address}: bad signature"
    assert holders.get(token) == address


def assert_no_secret(text: str | None, *secrets: str) -> None:
    """No 4 characters in a row of any of ``secrets`` are in ``text``.

    Test secrets are distinctive, so even a part of one in output is a leak, not chance.
    """
    assert secrets, "name the secrets to look for"
    text = text or ""
    for secret in secrets:
        for start in range(len(secret) - 3):
            assert secret[start : start + 4] not in text, f"part of a secret in: {text!r}"
