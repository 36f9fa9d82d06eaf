"""The token buckets behind every public endpoint of ``publisher serve``."""

from __future__ import annotations

import pytest

from publisher.ratelimit import Limiter


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    ticks = Ticks()
    limiter = Limiter(per_minute=6, burst=3, monotonic=ticks)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")  # keys are independent
    ticks.now += 10  # one token back after 10 s at 6 a minute
    assert limiter.allow("a")
    assert not limiter.allow("a")


def test_memory_stays_bounded_and_a_forgotten_key_starts_full() -> None:
    ticks = Ticks()
    limiter = Limiter(per_minute=1, burst=1, max_keys=2, monotonic=ticks)
    assert limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b") and limiter.allow("c")  # "a" is evicted
    assert limiter.allow("a")


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Limiter(per_minute=0, burst=1)
