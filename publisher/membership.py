"""The operator's own changes to the subscriber list, address by address (`subscribers add/remove`).

Each address gets an outcome of its own, so that the CLI can say what happened to each; the
list itself is kept by :mod:`publisher.subscribers`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from publisher import subscribers
from publisher.store import Store


class Outcome(StrEnum):
    ADDED = "added"
    RESUBSCRIBED = "resubscribed"
    ALREADY_SUBSCRIBED = "already_subscribed"
    UNSUBSCRIBED = "unsubscribed"
    ALREADY_UNSUBSCRIBED = "already_unsubscribed"
    UNKNOWN = "unknown"  # not on the list
    FORGOTTEN = "forgotten"  # erased at the reader's request: never added again


@dataclass(frozen=True)
class Change:
    address: str  # as stored; as given for UNKNOWN
    outcome: Outcome


def normalized(given: Iterable[str]) -> tuple[list[str], list[str]]:
    """Normalized addresses without repeats, and a "'value': reason" line for each bad one."""
    valid: dict[str, str] = {}
    bad = []
    for address in given:
        try:
            found = subscribers.normalize(address)
        except subscribers.BadAddress as exc:
            bad.append(f"{address.strip()!r}: {exc}")
            continue
        valid.setdefault(subscribers.key(found), found)
    return list(valid.values()), bad


def subscribe(
    store: Store, addresses: Iterable[str], now: datetime, *, forget_key: bytes | None = None
) -> list[Change]:
    """Subscribe each address (normalized); one that had unsubscribed is subscribed again, a pending
    sign-up is confirmed. The operator vouches for the consent (recorded as by hand)."""
    changes = []
    for address in addresses:
        added = subscribers.add(
            store, [(address, None)], now, resubscribe=True, consent=subscribers.BY_HAND, forget_key=forget_key
        )
        outcome = (
            Outcome.FORGOTTEN
            if added.forgotten
            else Outcome.ADDED
            if added.added
            else Outcome.RESUBSCRIBED
            if added.resubscribed
            else None
        )
        changes.append(Change(address, outcome or Outcome.ALREADY_SUBSCRIBED))
    return changes


def unsubscribe(store: Store, addresses: Iterable[str], now: datetime) -> list[Change]:
    """Unsubscribe each address; it stays on the list as unsubscribed, so an import cannot add it back."""
    changes = []
    for address in addresses:
        found = subscribers.find(store, address)
        if found is None:
            changes.append(Change(address, Outcome.UNKNOWN))
        elif subscribers.remove(store, found.email, now):
            changes.append(Change(found.email, Outcome.UNSUBSCRIBED))
        else:
            changes.append(Change(found.email, Outcome.ALREADY_UNSUBSCRIBED))
    return changes
