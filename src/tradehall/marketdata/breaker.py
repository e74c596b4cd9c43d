"""Circuit breaker and backoff for every feed.

A breaker stops hammering a provider that is down or rate-limiting us: after `failure_threshold`
consecutive failures it opens for `reset_timeout` seconds (or the provider's `Retry-After`, whichever
is longer), then lets exactly one probe through (half-open); the probe's result closes or reopens it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from tradehall.marketdata.models import CircuitState

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
"""Monotonic seconds; replaced in tests."""


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        reset_timeout: float = 5.0,
        max_reset_timeout: float = 60.0,
        clock: Clock = time.monotonic,
        on_change: Callable[[str, CircuitState], None] | None = None,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.max_reset_timeout = max_reset_timeout
        self._clock = clock
        self._on_change = on_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_count = 0
        self._open_until = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._clock() >= self._open_until:
            self._set(CircuitState.HALF_OPEN)
        return self._state

    @property
    def failures(self) -> int:
        return self._failures

    def seconds_until_retry(self) -> float:
        if self.state is CircuitState.OPEN:
            return max(0.0, self._open_until - self._clock())
        return 0.0

    def allow(self) -> bool:
        """May a request go out now? In half-open only one probe is allowed until it reports."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_count = 0
        self._probe_in_flight = False
        if self._state is not CircuitState.CLOSED:
            self._set(CircuitState.CLOSED)

    def record_failure(self, retry_after: float | None = None, *, open_now: bool = False) -> None:
        """A failure. A rate limit (`open_now`, `retry_after` from a 429) opens the breaker at once,
        for exactly `retry_after` seconds when given: hammering a provider that asked us to wait gets
        us banned, and waiting longer than it asked only loses data."""
        self._failures += 1
        was_probe = self._probe_in_flight
        self._probe_in_flight = False
        if open_now or retry_after is not None or was_probe or self._failures >= self.failure_threshold:
            self._open(retry_after)

    def _open(self, retry_after: float | None) -> None:
        # Each consecutive reopening doubles the wait, so a dead provider is probed ever more rarely;
        # a provider that says when to come back (Retry-After) is taken at its word.
        if retry_after is not None:
            timeout = retry_after
        else:
            timeout = min(self.reset_timeout * (2**self._opened_count), self.max_reset_timeout)
        self._opened_count += 1
        self._open_until = self._clock() + timeout
        self._set(CircuitState.OPEN)

    def _set(self, state: CircuitState) -> None:
        if state is self._state:
            return
        self._state = state
        log.info("feed_circuit", feed=self.name, state=state.value)
        if self._on_change is not None:
            self._on_change(self.name, state)


@dataclass
class Backoff:
    """Exponential backoff with full jitter (delay uniform in [0, min(cap, base * 2^attempt)])."""

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random | None = None
    attempt: int = 0

    def next_delay(self, at_least: float = 0.0) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        rng = self.rng if self.rng is not None else random
        return max(at_least, rng.uniform(0.0, ceiling))

    def reset(self) -> None:
        self.attempt = 0
