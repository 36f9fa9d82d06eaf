"""The common event model every provider's payload is read into."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from publisher.states import MailEventKind


class Forged(Exception):
    """The request is not the provider's, or not fresh: nothing in it is looked at further.
    ``str()`` says why, for the server's log (never the client's answer)."""


class Malformed(Exception):
    """Signed by the provider, but not a payload this module can read."""


@dataclass(frozen=True)
class MailEvent:
    provider: str
    event_id: str  # unique per provider (with the address): a replay carries the same one
    kind: MailEventKind
    address: str
    occurred_at: datetime
    digest_id: str | None = None  # the ids publisher sent with the batch, when echoed back
    batch_key: str | None = None
    detail: str | None = None


def fresh(when: datetime, now: datetime, tolerance: timedelta) -> None:
    """Raise Forged unless a signed timestamp is within ``tolerance`` of ``now``: an old signed
    request replayed later, once its id has been forgotten by nobody, still changes nothing."""
    if abs(now - when) > tolerance:
        raise Forged(f"timestamp {when.isoformat()} is more than {tolerance} from now")


def from_unix(value: object) -> datetime:
    """A Unix timestamp (int, float or digits) as an aware datetime; Forged when it is none."""
    try:
        return datetime.fromtimestamp(float(str(value)), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise Forged(f"not a timestamp: {str(value)[:40]!r}") from None


def from_iso(value: object, default: datetime) -> datetime:
    """An ISO 8601 time from a payload, or ``default`` when it is missing or unreadable."""
    if not isinstance(value, str):
        return default
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return default
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def same(secret: str, given: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(secret.encode(), given.encode("utf-8", "replace"))


def text(value: object, limit: int = 300) -> str | None:
    """A payload's string field, flattened to one short line; None when it is not a string."""
    if not isinstance(value, str) or not value.strip():
        return None
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def obj(value: object) -> dict[str, Any]:
    """A payload's object field, or an empty one when it is anything else."""
    return value if isinstance(value, dict) else {}


def array(value: object) -> list[Any]:
    """A payload's array field, or an empty one when it is anything else."""
    return value if isinstance(value, list) else []
