"""Per-key token buckets: a partner's public key ships inside their app, so anyone can spend
it; a bucket per key keeps one abuser from starving the service."""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token bucket per key: `rate` tokens a second, at most `burst` saved up.

    Buckets live in this process only (each server replica limits on its own). Keys are
    remembered by digest, least recently used first out, so random keys cannot grow memory
    without bound.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[bytes, _Bucket] = OrderedDict()

    def acquire(self, key: str) -> float:
        """Takes one token; returns 0 if allowed, else the seconds until one is free."""
        now = self._clock()
        name = hashlib.blake2b(key.encode(), digest_size=16).digest()
        bucket = self._buckets.pop(name, None)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        self._buckets[name] = bucket
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


def retry_after_seconds(wait: float) -> int:
    """The Retry-After value: whole seconds, at least 1."""
    return max(1, math.ceil(wait))
