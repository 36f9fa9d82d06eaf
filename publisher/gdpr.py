"""A reader's rights over what is stored about them: a copy of it all, and its erasure.

:func:`export` gathers every row about one address as JSON: the subscriber, their choices, the
batches they were planned into, and the tables of :data:`SECTIONS` (their consent record with
the client address when one was kept, the confirmation and welcome emails sent to them, what
mail providers reported about them). :func:`forget` deletes all of it in one transaction and
keeps a keyed hash of the address alone: HMAC-SHA256 under the link secret ([digest] secret_env), so that the stored
hashes cannot be matched against a list of guessed addresses without the secret, while an
import or an add of the same address is still recognised and refused (publisher.subscribers).
The secret must therefore stay the same for as long as erasures are to hold.

A table added later that holds rows about a reader joins through :data:`SECTIONS` and
:data:`ERASERS`, with the owning store module's functions (SQL stays in publisher.store).

An erased address that signs up again through the form is let in: the form, the confirmation
email and the click on its button are the person's own fresh consent, recorded as any other.
An import or an operator's add is not that, and stays refused. The hash is kept either way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from publisher import subscribers
from publisher.config import Config
from publisher.errors import PublisherError
from publisher.store import Store, Tx, consents, notices, suppressions
from publisher.store import preferences as table

# More of what is stored about a reader: (name in the export, its rows for an address key),
# read inside the export's transaction; and their erasures, run inside the erasure's, before
# the subscriber's own row goes. Each from the store module that owns the table.
SECTIONS: list[tuple[str, Callable[[Tx, str], list[dict[str, Any]]]]] = [
    ("consents", consents.of_key),  # publisher.signup, publisher.subscribers
    ("notices", notices.of_key),  # publisher.notices: confirmation and welcome emails
    ("mail_events", suppressions.of_key),  # publisher.bounces: bounces and complaints
]
ERASERS: list[Callable[[Tx, str], None]] = [consents.erase, notices.erase, suppressions.erase]


class NotOnList(PublisherError):
    """The address is not on the list (or was erased already); ``str()`` says which."""


def key(config: Config) -> bytes:
    """The secret the hashes are keyed with; ConfigError naming the variable when unset."""
    return subscribers.secret(config)


def key_if_set(config: Config) -> bytes | None:
    """The same, or None when the variable is unset: a store with no erasures needs none."""
    value = os.environ.get(config.digest.secret_env, "")
    return value.encode() if len(value) >= 16 else None


hashed = subscribers.forget_hash  # the one-way keyed hash kept of an erased address


def export(config: Config, store: Store, address: str) -> str:
    """All that is stored about ``address``, as indented JSON; NotOnList if nothing is."""
    email_key = subscribers.key(address)
    with store.transaction() as tx:  # one snapshot of it all
        found = table.export(tx, email_key)
        if found is not None:
            for name, rows in SECTIONS:
                found[name] = rows(tx, email_key)
    if found is None:
        raise NotOnList(_absent(config, store, address))
    return json.dumps(found, indent=2, sort_keys=True, default=_plain, ensure_ascii=False)


def forget(config: Config, store: Store, address: str, now: datetime) -> None:
    """Erase ``address``: every row about it, keeping the hash; NotOnList if it is not there."""
    secret_key = key(config)
    email_key = subscribers.key(address)
    with store.transaction() as tx:  # all of it or, on any error, none of it
        for erase in ERASERS:
            erase(tx, email_key)
        erased = table.erase(tx, email_key, hashed(secret_key, address), now)
    if not erased:  # nothing was there for the erasers to delete either
        raise NotOnList(_absent(config, store, address))


def _absent(config: Config, store: Store, address: str) -> str:
    secret_key = key_if_set(config)
    when = table.forgotten_at(store, hashed(secret_key, address)) if secret_key else None
    if when is not None:
        return f"{address.strip()!r}: erased on {when:%Y-%m-%d}; nothing is stored about it but a one-way hash"
    return f"{address.strip()!r}: not on the list (see `publisher subscribers list --all`)"


def _plain(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot export {type(value).__name__}")
