"""The time source of the sequencer: the engine reads no clock, the runner stamps commands with this one."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch."""
        ...


class SystemClock:
    """Wall-clock time that never goes backwards, so journaled timestamps are non-decreasing."""

    def __init__(self) -> None:
        self._last = 0

    def now_ns(self) -> int:
        now = time.time_ns()
        if now <= self._last:
            return self._last
        self._last = now
        return now


class ManualClock:
    """A clock tests move by hand; `step_ns` advances it on every read for distinct timestamps."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000, *, step_ns: int = 0) -> None:
        self._now = start_ns
        self._step = step_ns

    def now_ns(self) -> int:
        now = self._now
        self._now += self._step
        return now

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise ValueError("a clock does not go backwards")
        self._now += ns

    def set(self, ns: int) -> None:
        if ns < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = ns

    def peek_ns(self) -> int:
        """The time without reading it (a read may step the clock)."""
        return self._now
