"""Login throttling: failed attempts per username and per client IP, with exponential waits.

The rule: only failed attempts count. After `username_threshold` (5) failures for a username, or
`ip_threshold` (20) from one IP, within `window_seconds` (15 minutes), the next attempt must wait
1 s, then 2 s, 4 s, ... (capped at 30 s) after the last failure; an attempt before that is refused
with 429 `rate_limited` and `Retry-After`, before any password hashing, so a refusal costs nothing.
A successful login clears its username's failures (not its IP's).

Per key only the newest failures are kept (enough to reach the cap), which gives the same count as
keeping them all; keys are swept once their window is over and their number is bounded.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from tradehall.api.errors import ApiError
from tradehall.domain.errors import Code


class LoginThrottle:
    def __init__(
        self,
        *,
        username_threshold: int = 5,
        ip_threshold: int = 20,
        window_seconds: float = 900.0,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.username_threshold = username_threshold
        self.ip_threshold = ip_threshold
        self.window = window_seconds
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_keys = max_keys
        self.clock = clock
        """Replaceable (tests use a manual clock)."""
        steps_to_cap = max(0, math.ceil(math.log2(max(1.0, max_delay / base_delay))))
        self._keep_extra = steps_to_cap + 1
        self._failures: dict[str, deque[float]] = {}
        self._checking: dict[str, int] = {}  # key -> attempts admitted and not yet decided
        self._last_sweep = clock()

    @staticmethod
    def username_key(username: str) -> str:
        # usernames are unique case-insensitively, so `Alice` and `alice` share one count
        return "user:" + username.lower()

    @staticmethod
    def ip_key(ip: str) -> str:
        return "ip:" + ip

    def wait_seconds(self, username: str, ip: str) -> float:
        """Seconds until an attempt for `username` from `ip` is allowed; 0.0 when it is now."""
        now = self.clock()
        return max(
            self._wait(self.username_key(username), self.username_threshold, now),
            self._wait(self.ip_key(ip), self.ip_threshold, now),
        )

    def check(self, username: str, ip: str) -> None:
        wait = self.wait_seconds(username, ip)
        if wait > 0:
            raise self.refusal(wait)

    @staticmethod
    def refusal(wait: float) -> ApiError:
        """429 `rate_limited`, telling the client to wait `wait` seconds (at least 1)."""
        return ApiError(
            Code.RATE_LIMITED,
            "too many failed logins; wait before trying again",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )

    def admit(self, username: str, ip: str) -> float:
        """Like `wait_seconds`, and also bounds the attempts being checked at once: a key may have
        only as many in flight as it has failures left before its threshold (at least one), so a burst
        of concurrent attempts cannot run a password hash each the moment a wait expires. An admitted
        attempt must be `release`d once decided."""
        wait = self.wait_seconds(username, ip)
        if wait > 0:
            return wait
        now = self.clock()
        keys = ((self.username_key(username), self.username_threshold), (self.ip_key(ip), self.ip_threshold))
        for key, threshold in keys:
            checking = self._checking.get(key, 0)
            if checking and checking + self._count(key, now) >= threshold:
                return self.base_delay
        for key, _ in keys:
            self._checking[key] = self._checking.get(key, 0) + 1
        return 0.0

    def release(self, username: str, ip: str) -> None:
        for key in (self.username_key(username), self.ip_key(ip)):
            left = self._checking.get(key, 0) - 1
            if left > 0:
                self._checking[key] = left
            else:
                self._checking.pop(key, None)

    def failed(self, username: str, ip: str) -> None:
        now = self.clock()
        self._record(self.username_key(username), self.username_threshold, now)
        self._record(self.ip_key(ip), self.ip_threshold, now)
        self._maybe_sweep(now)

    def succeeded(self, username: str) -> None:
        self._failures.pop(self.username_key(username), None)

    def clear(self) -> None:
        self._failures.clear()

    def __len__(self) -> int:
        return len(self._failures)

    # ------------------------------------------------------------------------------------------------

    def _wait(self, key: str, threshold: int, now: float) -> float:
        failures = self._failures.get(key)
        if not failures:
            return 0.0
        self._expire(failures, now)
        count = len(failures)
        if count < threshold:
            return 0.0
        delay = min(self.max_delay, self.base_delay * 2.0 ** (count - threshold))
        return max(0.0, failures[-1] + delay - now)

    def _count(self, key: str, now: float) -> int:
        failures = self._failures.get(key)
        if not failures:
            return 0
        self._expire(failures, now)
        return len(failures)

    def _record(self, key: str, threshold: int, now: float) -> None:
        failures = self._failures.pop(key, None)
        if failures is None:
            if len(self._failures) >= self.max_keys:
                self._sweep(now)
                while len(self._failures) >= self.max_keys:  # the least recently failed go first
                    del self._failures[next(iter(self._failures))]
            failures = deque(maxlen=threshold + self._keep_extra)
        self._expire(failures, now)
        failures.append(now)
        self._failures[key] = failures  # re-inserted: the dict stays in order of the last failure

    def _expire(self, failures: deque[float], now: float) -> None:
        cutoff = now - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()

    def _maybe_sweep(self, now: float) -> None:
        if now - self._last_sweep >= 60.0:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        cutoff = now - self.window
        for key, failures in list(self._failures.items()):
            if not failures or failures[-1] <= cutoff:
                del self._failures[key]


class Tarpit:
    """Holds a refused login before answering: a client that ignores `Retry-After` and retries at once
    then gets one answer per pause instead of thousands per second, and the event loop that also runs
    the engine stays free. Holding costs a sleeping coroutine, no CPU; at most `max_held` are held at
    once (beyond that, answered at once), so memory stays bounded too."""

    def __init__(self, max_seconds: float, max_held: int = 1024) -> None:
        self.max_seconds = max(0.0, max_seconds)
        self.max_held = max_held
        self.held = 0
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        """Replaceable: tests hold the pause on an event instead of the wall clock."""

    async def hold(self, seconds: float) -> float:
        """Sleeps up to `seconds` (capped); returns how long it held."""
        pause = min(seconds, self.max_seconds)
        if pause <= 0 or self.held >= self.max_held:
            return 0.0
        self.held += 1
        try:
            await self.sleep(pause)
        finally:
            self.held -= 1
        return pause
