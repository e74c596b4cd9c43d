"""Token buckets per user or API key (the request body limit is `api.body.RequestBody`).

A bucket holds up to `burst` tokens and refills at `rate` per second; a request takes one token or
is refused with 429 and `Retry-After` (whole seconds until a token is back). Buckets idle long
enough to be full again are dropped, so memory stays bounded by the number of active callers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from tradehall.api.errors import ApiError
from tradehall.domain.errors import Code


class TokenBucketLimiter:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._last_sweep = clock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """Takes one token for `key`: 0.0 when allowed, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self._maybe_sweep(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def check(self, key: str) -> None:
        wait = self.take(key)
        if wait > 0:
            raise ApiError(
                Code.RATE_LIMITED,
                "too many requests; slow down",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    def _maybe_sweep(self, now: float) -> None:
        if now - self._last_sweep < 60.0:
            return
        self._last_sweep = now
        full_after = self.burst / self.rate
        for key, (_, at) in list(self._buckets.items()):
            if now - at > full_after:
                del self._buckets[key]
