"""Rate limits for the public endpoints of ``publisher serve``.

A :class:`Limiter` is a set of token buckets, one per key (a client address, an email address,
a webhook source): each holds ``burst`` tokens and refills at ``per_minute`` tokens a minute.
It lives in the server's memory, which is enough for one ``publisher serve``: a limit exists to
keep one client or one address from costing the list its reputation, not to count exactly.
Time is ``time.monotonic`` unless a test hands in its own, so the limits follow no wall clock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class Limiter:
    """Token buckets by key; :meth:`allow` takes one token when there is one."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("a limit needs per_minute > 0 and burst >= 1")
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_keys = max_keys
        self.monotonic = monotonic
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Whether a request for ``key`` may go ahead now (and count it if so)."""
        now = self.monotonic()
        with self._lock:
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                bucket = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            allowed = bucket.tokens >= 1.0
            if allowed:
                bucket.tokens -= 1.0
            self._buckets[key] = bucket  # most recently used last
            while len(self._buckets) > self.max_keys:  # forget the longest-idle key: memory stays bounded
                self._buckets.popitem(last=False)
            return allowed
