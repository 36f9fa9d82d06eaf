"""The program's one clock.

Every "now" in publisher (the CLI, the jobs, the daemon, the server, the store) comes from
:func:`now`: the system's time in UTC, to the second, unless it is set.

- ``PUBLISHER_NOW`` in the environment (ISO 8601 with an offset, ``2026-11-24T06:30:00Z``)
  fixes it for a process and its children: tests set it for the commands and daemons they
  start, and an operator can replay a run as of a moment.
- :func:`frozen` fixes it inside one process for the length of a ``with`` block.

Seconds only: stored times, feed dates and digest ids carry no fractions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from publisher.errors import ConfigError

ENV = "PUBLISHER_NOW"

_fixed: datetime | None = None


def now() -> datetime:
    """The current instant, timezone-aware (UTC), without microseconds."""
    if _fixed is not None:
        return _fixed
    value = os.environ.get(ENV)
    if value:
        return parse(value)
    return datetime.now(UTC).replace(microsecond=0)


def parse(value: str) -> datetime:
    """``PUBLISHER_NOW``'s value as an aware UTC datetime, or a ConfigError naming the variable."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ConfigError(ENV, f"expected an ISO 8601 time with an offset (2026-11-24T06:30:00Z), got {value!r}")
    return when.astimezone(UTC).replace(microsecond=0)


@contextmanager
def frozen(when: datetime) -> Iterator[datetime]:
    """Within the block, :func:`now` is ``when`` (which must be timezone-aware)."""
    if when.tzinfo is None:
        raise ValueError("clock.frozen needs a timezone-aware datetime")
    global _fixed
    before, _fixed = _fixed, when.astimezone(UTC).replace(microsecond=0)
    try:
        yield _fixed
    finally:
        _fixed = before
