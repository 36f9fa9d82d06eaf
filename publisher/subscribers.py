"""The local subscriber list ([digest] recipients = "subscribers") and its unsubscribe links.

Addresses are checked with email-validator (syntax only: no DNS, so an import works offline)
and merged case-insensitively. Each subscriber has a random ``token``; an unsubscribe link
carries it with an HMAC-SHA256 of it under a secret from the environment, so a link cannot be
forged or guessed, and is checked in constant time. An unsubscribed address stays in the list
(so an import cannot quietly bring it back) and gets no further digest.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import hashlib
import hmac
import io
import os
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from email_validator import EmailNotValidError, validate_email

from publisher.config import Config
from publisher.errors import ConfigError
from publisher.states import SubscriberState
from publisher.store import Store, Tx, consents, preferences
from publisher.store import subscribers as table
from publisher.store.consents import ConsentMethod

ACTIVE, UNSUBSCRIBED = SubscriberState.ACTIVE, SubscriberState.UNSUBSCRIBED  # by their short names
# The consent record of `publisher subscribers add`: the operator vouches for it.
BY_HAND = (ConsentMethod.CLI, "added by the operator with `publisher subscribers add`")


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    token: str
    state: SubscriberState
    created_at: datetime
    unsubscribed_at: datetime | None


@dataclass
class ImportResult:
    added: int = 0
    resubscribed: int = 0  # unsubscribed earlier, added again by the operator (never by an import)
    already: int = 0  # on the list already (or twice in the file)
    kept_unsubscribed: int = 0  # unsubscribed earlier: an import does not resubscribe
    forgotten: int = 0  # erased on request (`subscribers forget`): never added again
    errors: list[str] = field(default_factory=list)  # "FILE:LINE: 'value': reason", one per bad row


class BadAddress(ValueError):
    """An address that email-validator refuses; ``str()`` says why, in its words."""


def normalize(address: str) -> str:
    """The address as it should be stored (domain lower-cased, IDN handled); raises BadAddress."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise BadAddress(str(exc)) from None


def key(address: str) -> str:
    """What makes two addresses the same subscriber: the normalized address, case ignored.

    Normalized first, so that an IDN domain in punycode or a local part in another Unicode
    form finds the stored address; an address email-validator refuses is only lower-cased.
    """
    with contextlib.suppress(BadAddress):
        address = normalize(address)
    return address.strip().lower()


# -- the list ---------------------------------------------------------------------------------


def add(
    store: Store,
    addresses: Iterable[tuple[str, str | None]],
    now: datetime,
    *,
    resubscribe: bool,
    consent: tuple[ConsentMethod, str] | None = None,
    forget_key: bytes | None = None,
) -> ImportResult:
    """Add (address, name) pairs, already normalized; duplicates merge.

    ``resubscribe`` is for an operator adding someone by hand (it also confirms a pending
    sign-up); an import never resubscribes. ``consent`` (how, note) is recorded for each
    address added or resubscribed. An address erased on request is never added:
    ``forget_key`` (the link secret) recognises it, and is needed once any address was erased.
    """
    result = ImportResult()
    changed: list[str] = []
    addresses = list(addresses)
    with store.transaction() as tx:
        state = table.states(tx)
        erased = _erased(tx, [a for a, _ in addresses if key(a) not in state], forget_key)
        new_rows = []
        for address, name in addresses:
            k = key(address)
            if k not in state and k in erased:
                result.forgotten += 1
            elif k not in state:
                new_rows.append(
                    {
                        "email": address,
                        "email_key": k,
                        "name": name,
                        "token": _new_token(),
                        "state": ACTIVE,
                        "created_at": now,
                    }
                )
                state[k] = ACTIVE
                changed.append(k)
                result.added += 1
            elif state[k] != ACTIVE and resubscribe:  # unsubscribed, pending or suppressed (publisher.bounces)
                table.resubscribe(tx, k, _new_token())
                state[k] = ACTIVE
                changed.append(k)
                result.resubscribed += 1
            elif state[k] != ACTIVE:  # unsubscribed, or suppressed after a bounce or complaint
                result.kept_unsubscribed += 1
            else:
                result.already += 1
        table.insert_many(tx, new_rows)
        if consent is not None and changed:
            consents.record_keys(tx, changed, consent[0], consent[1], now)
    return result


def _erased(tx: Tx, addresses: list[str], forget_key: bytes | None) -> set[str]:
    """The keys of ``addresses`` that were erased on request."""
    if not addresses or not preferences.any_forgotten(tx):
        return set()
    if forget_key is None:
        raise ConfigError(
            "[digest] secret_env",
            "the link secret is not set; it is needed to recognise the addresses erased by `subscribers forget`",
        )
    hashes = {forget_hash(forget_key, a): key(a) for a in addresses}
    return {hashes[h] for h in preferences.forgotten_among(tx, hashes)}


def import_csv(
    store: Store,
    path: Path,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
    forget_key: bytes | None = None,
) -> ImportResult:
    """Import a CSV file: an ``email`` column (or the first column), an optional ``name``.

    A bad row is reported by line number and the rest are imported. ``progress(done, total)``
    is called after each row read.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "not UTF-8 text (save the file as UTF-8 CSV)") from None
    rows = _rows(path, text)
    if not rows:
        return ImportResult()
    header = [cell.strip().lower() for cell in rows[0][1]]
    if "email" in header or "e-mail" in header:
        email_col = header.index("email") if "email" in header else header.index("e-mail")
        name_col = header.index("name") if "name" in header else None
        body = rows[1:]
    else:
        email_col, name_col, body = 0, (1 if len(header) > 1 else None), rows
    good: list[tuple[str, str | None]] = []
    errors: list[str] = []
    for done, (number, row) in enumerate(body, start=1):
        if progress is not None:
            progress(done, len(body))
        if not any(cell.strip() for cell in row):
            continue  # blank line
        cell = row[email_col] if email_col < len(row) else ""
        try:
            address = normalize(cell)
        except BadAddress as exc:
            errors.append(f"{path}:{number}: {_shown(cell)}: {exc}")
            continue
        name = row[name_col].strip() if name_col is not None and name_col < len(row) else ""
        good.append((address, name or None))
    result = add(
        store,
        good,
        now,
        resubscribe=False,
        consent=(ConsentMethod.IMPORT, f"imported from {path.name}"),
        forget_key=forget_key,
    )
    result.errors = errors
    return result


def _rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """The CSV rows, each with the line it starts on (a quoted cell may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    start = 1
    try:
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ConfigError(f"{path}:{start}", f"not a CSV file the import can read: {exc}") from None
    return rows


def _shown(cell: str) -> str:
    """A refused cell as the error line shows it: quoted, and cut short if long."""
    cell = cell.strip()
    return repr(cell if len(cell) <= 80 else cell[:80] + "...")


def find(store: Store, address: str) -> Subscriber | None:
    """The subscriber with ``address`` (compared as :func:`key` does), active or not."""
    with store.transaction() as tx:
        row = table.by_key(tx, key(address))
        return _subscriber(row) if row else None


def remove(store: Store, address: str, now: datetime) -> bool:
    """Unsubscribe ``address``; False if it is not on the list (or unsubscribed already)."""
    with store.transaction() as tx:
        return table.unsubscribe_key(tx, key(address), now)


def unsubscribe_token(store: Store, token: str, now: datetime) -> Subscriber | None:
    """Unsubscribe whoever holds ``token`` (checked already), confirmed or not; None if nobody does."""
    with store.transaction() as tx:
        table.unsubscribe_token(tx, token, now)
        row = table.by_token(tx, token)
        return _subscriber(row) if row else None


def by_token(store: Store, token: str) -> Subscriber | None:
    with store.transaction() as tx:
        row = table.by_token(tx, token)
        return _subscriber(row) if row else None


def listing(store: Store, *, include_unsubscribed: bool = False) -> list[Subscriber]:
    with store.transaction() as tx:
        return [_subscriber(row) for row in table.listing(tx, include_unsubscribed=include_unsubscribed)]


def active_count(store: Store) -> int:
    return counts(store)[ACTIVE]


def any_active(store: Store) -> bool:
    """Whether anyone is subscribed: one row looked at, where counting reads the whole list."""
    with store.transaction() as tx:
        return table.any_active(tx)


def counts(store: Store) -> Counter[str]:
    """Subscribers by state (active, unsubscribed)."""
    with store.transaction() as tx:
        return table.counts(tx)


def _subscriber(row: dict[str, Any]) -> Subscriber:
    return Subscriber(**{name: row[name] for name in Subscriber.__dataclass_fields__})


def _new_token() -> str:
    return secrets.token_urlsafe(18)  # 144 random bits


# -- unsubscribe links ------------------------------------------------------------------------


def secret(config: Config) -> bytes:
    """The HMAC secret from the environment; ConfigError naming the variable when unset."""
    value = os.environ.get(config.digest.secret_env, "")
    if len(value) < 16:
        problem = "is not set" if not value else "is too short (use at least 16 random characters)"
        raise ConfigError(
            f"{config.path.name}: [digest] secret_env",
            f"environment variable {config.digest.secret_env} {problem}; personal unsubscribe links are signed with it",
        )
    return value.encode()


def signature(secret_key: bytes, token: str) -> str:
    digest = hmac.new(secret_key, b"unsubscribe:" + token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def forget_hash(secret_key: bytes, address: str) -> str:
    """The one-way keyed hash kept of an address erased on request (publisher.gdpr)."""
    return hmac.new(secret_key, b"forget:" + key(address).encode(), hashlib.sha256).hexdigest()


def check(secret_key: bytes, token: str, sig: str) -> bool:
    """True when ``sig`` is the signature of ``token``; constant time."""
    return hmac.compare_digest(signature(secret_key, token).encode(), sig.encode("utf-8", "replace"))


def unsubscribe_url(base: str, secret_key: bytes, token: str) -> str:
    """``base`` (the public URL of `publisher serve`'s /unsubscribe) with the signed token."""
    return Links(base, secret_key).url(token)


# What urlencode leaves as it is: a token (token_urlsafe) and a signature (urlsafe base64) are
# made of these alone, so the link can be written without escaping each character again.
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


class Links:
    """The unsubscribe links of one send, made a batch at a time: the base and the keyed HMAC
    prepared once, and the signatures base64-encoded together (a send signs a link for every
    reader, so the work around each HMAC was most of the cost)."""

    def __init__(self, base: str, secret_key: bytes) -> None:
        self.prefix = base + ("&" if "?" in base else "?")
        self._mac = hmac.new(secret_key, b"unsubscribe:", hashlib.sha256)  # copied for each token

    def url(self, token: str) -> str:
        """The same link as :func:`unsubscribe_url`, byte for byte."""
        return self.urls([token])[0]

    def urls(self, tokens: Sequence[str]) -> list[str]:
        """The links of ``tokens``, in order."""
        prefix = self.prefix
        # Each 32-byte MAC padded to 33 bytes encodes to 44 characters on its own (33 is a
        # multiple of 3) whose first 43 are the MAC's unpadded base64: one call encodes all.
        macs = b"".join([self._sign(token.encode()) + b"\0" for token in tokens])
        encoded = binascii.b2a_base64(macs, newline=False).translate(_URL_SAFE_B64).decode("ascii")
        sigs = [encoded[i : i + 43] for i in range(0, len(encoded), 44)]
        if _URL_SAFE.fullmatch("".join(tokens)):  # tokens made by _new_token always are
            return [f"{prefix}s={token}&t={sig}" for token, sig in zip(tokens, sigs, strict=True)]
        return [prefix + urlencode({"s": token, "t": sig}) for token, sig in zip(tokens, sigs, strict=True)]

    def _sign(self, token: bytes) -> bytes:
        # A copy of the keyed state: no key schedule (or OpenSSL digest lookup) per token.
        mac = self._mac.copy()
        mac.update(token)
        return mac.digest()


_URL_SAFE_B64 = bytes.maketrans(b"+/", b"-_")  # base64 to its URL-safe alphabet, as urlsafe_b64encode
