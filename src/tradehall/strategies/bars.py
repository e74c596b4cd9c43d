"""Bars from prices: one bar per interval window (aligned to the UTC epoch) built from that window's
trades or quotes; a window with no price makes no bar.

Backtests on recorded feed events and live sessions build their bars here, so both hand strategies
the same bars on the same data. A bar is closed (and seen) once a price at or after its end arrives,
or when the caller says time has passed its end (`close_until`).
"""

from __future__ import annotations

import re

from tradehall.domain.candles import INTERVALS
from tradehall.domain.errors import invalid_request
from tradehall.strategies.types import Bar

NS_PER_S = 1_000_000_000
_INTERVAL = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def interval_ns(interval: str | int | float) -> int:
    """"1m", "15s", "4h", "1d", or a number of seconds, as nanoseconds."""
    if isinstance(interval, bool):
        raise invalid_request("interval must be like '1m' or a number of seconds")
    if isinstance(interval, int | float):
        seconds = float(interval)
    else:
        if interval in INTERVALS:
            return INTERVALS[interval] * NS_PER_S
        match = _INTERVAL.match(interval.strip())
        if match is None:
            raise invalid_request(f"interval {interval!r} is not like '1m', '15s', '4h', '1d'")
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not seconds > 0:
        raise invalid_request("interval must be positive")
    return int(seconds * NS_PER_S)


class BarBuilder:
    __slots__ = ("_close", "_high", "_low", "_open", "_start", "_volume", "width")

    def __init__(self, width_ns: int) -> None:
        if width_ns <= 0:
            raise ValueError("a bar's width is positive")
        self.width = width_ns
        self._start: int | None = None
        self._open = self._high = self._low = self._close = 0.0
        self._volume = 0.0

    def add(self, ts: int, price: float, volume: float = 0.0) -> Bar | None:
        """Add a price; returns the previous window's bar when this price is the first of a later one."""
        start = ts - ts % self.width
        finished = None
        if self._start is not None and start != self._start:
            finished = self._bar()
            self._start = None
        if self._start is None:
            self._start = start
            self._open = self._high = self._low = self._close = price
            self._volume = volume
            return finished
        if price > self._high:
            self._high = price
        elif price < self._low:
            self._low = price
        self._close = price
        self._volume += volume
        return finished

    def close_until(self, now: int) -> Bar | None:
        """The open window's bar if `now` is at or past its end (a cycle's end), else None."""
        if self._start is None or now < self._start + self.width:
            return None
        bar = self._bar()
        self._start = None
        return bar

    def _bar(self) -> Bar:
        start = self._start
        assert start is not None
        return Bar(start, self._open, self._high, self._low, self._close, self._volume, start + self.width)
