"""The token bucket in isolation (only the clock is simulated)."""

from __future__ import annotations

import pytest
from journeys.transport.ratelimit import RateLimiter, retry_after_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_steady_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=20, clock=clock)

    assert [limiter.acquire("k") for _ in range(20)] == [0.0] * 20
    assert limiter.acquire("k") == pytest.approx(0.1)
    clock.now = 0.5  # five tokens refilled
    assert [limiter.acquire("k") == 0 for _ in range(6)] == [True] * 5 + [False]


def test_keys_have_separate_buckets() -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())

    assert limiter.acquire("a") == 0
    assert limiter.acquire("b") == 0
    assert limiter.acquire("a") > 0


def test_refill_never_exceeds_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=100, burst=3, clock=clock)
    limiter.acquire("k")
    clock.now = 3600

    assert [limiter.acquire("k") == 0 for _ in range(4)] == [True, True, True, False]


def test_memory_is_bounded_by_forgetting_the_least_recent_key() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_keys=2, clock=Clock())
    limiter.acquire("a")
    limiter.acquire("b")
    limiter.acquire("c")  # forgets "a"

    assert limiter.acquire("a") == 0, "a forgotten key starts with a full bucket"
    assert limiter.acquire("c") > 0


@pytest.mark.parametrize(("wait", "header"), [(0.01, 1), (1.0, 1), (1.2, 2), (7.0, 7)])
def test_retry_after_is_whole_seconds_at_least_one(wait: float, header: int) -> None:
    assert retry_after_seconds(wait) == header
