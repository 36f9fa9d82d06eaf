"""``publisher digest hold`` / ``release``: keep the next digest from going out.

While held, no new digest is created (``run``, ``digest send`` and the daemon's digest job
say so and send nothing); the articles stay in the feeds and wait for the digest after the
release. A digest that had already begun is not held back: ``digest resume`` finishes it.
The hold is a store setting, so every machine and the daemon sharing the store see it.
"""

from __future__ import annotations

from datetime import datetime

from publisher.store import Store

SETTING = "digest_hold"  # the ISO time it was held; "" when released


def held_since(store: Store) -> datetime | None:
    value = store.setting(SETTING)
    return datetime.fromisoformat(value) if value else None


def hold(store: Store, when: datetime) -> datetime:
    """Hold the next digest; returns since when it is held (an earlier hold is kept)."""
    since = held_since(store)
    if since is not None:
        return since
    store.put_setting(SETTING, when.isoformat())
    return when


def release(store: Store) -> datetime | None:
    """Let the next digest go out; returns since when it was held, None if it was not."""
    since = held_since(store)
    if since is not None:
        store.put_setting(SETTING, "")
    return since


def message(since: datetime) -> str:
    return f"digest: held since {since.isoformat()}, no email sent (`publisher digest release` lets it go out)"
