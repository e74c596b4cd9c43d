"""Rotation over a provider's base URLs: a failing root is left at once, the first root is retried
after `primary_retry_seconds`, so the pool never sticks on a broken endpoint nor on a backup."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tradehall.marketdata.breaker import Clock


class EndpointPool:
    def __init__(
        self, roots: Sequence[str], *, primary_retry_seconds: float = 60.0, clock: Clock = time.monotonic
    ) -> None:
        if not roots:
            raise ValueError("an endpoint pool needs at least one root")
        self.roots = [root.rstrip("/") for root in roots]
        self.primary_retry_seconds = primary_retry_seconds
        self._clock = clock
        self._index = 0
        self._left_primary_at = 0.0

    def current(self) -> str:
        if self._index != 0 and self._clock() - self._left_primary_at >= self.primary_retry_seconds:
            self._index = 0
        return self.roots[self._index]

    def failed(self, root: str) -> None:
        """Move past `root` (if it is still the current one)."""
        if self.roots[self._index] != root:
            return
        if self._index == 0:
            self._left_primary_at = self._clock()
        self._index = (self._index + 1) % len(self.roots)
