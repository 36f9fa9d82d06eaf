"""Keep a send under the provider's rate: ``[mailer] rate`` messages a second, whatever the batches.

One :class:`Pace` is shared by the threads sending a digest. Before each request, ``wait(n)``
returns once ``n`` more messages may go. Two rules, both kept:

- spread: a request of ``n`` messages uses ``n / rate`` seconds, and the next request starts
  after that (so a batch larger than the rate waits proportionally longer);
- window: in any one second no more than ``rate`` messages start, even when batch sizes do
  not divide the rate (two batches of 150 at 200/s are a second apart, not 0.75 s).

Each request's start is reserved under a lock, then waited for outside it, so threads take
turns in the order they asked. ``clock`` and ``sleep`` can be replaced so that tests need not wait.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class Pace:
    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate  # messages a second; 0 for no limit
        self.clock, self.sleep = clock, sleep
        self._lock = threading.Lock()
        self._free_at = -math.inf  # when the last request's share of time is used up
        self._recent: deque[tuple[float, int]] = deque()  # (start, messages) within a second of the last

    def wait(self, messages: int) -> None:
        """Return once ``messages`` more may go; at once when there is no limit."""
        if self.rate <= 0 or messages <= 0:
            return
        with self._lock:
            now = self.clock()
            start = max(now, self._free_at, self._window(messages))
            self._free_at = start + messages / self.rate
            self._recent.append((start, messages))
            while self._recent[0][0] <= start - 1.0:
                self._recent.popleft()
        if start > now:
            self.sleep(start - now)

    def _window(self, messages: int) -> float:
        """The earliest start at which the second before it leaves room for ``messages`` more."""
        used = messages
        for start, count in reversed(self._recent):  # newest first; starts never decrease
            used += count
            if used > self.rate:
                return start + 1.0  # that request (and any before it) must be a second back
        return -math.inf
