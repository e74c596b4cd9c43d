"""Incremental indicators: each `update` is O(1) (Donchian amortised O(1)), none keeps a history.

`update(x)` returns the new value, or None while the indicator is still warming up. The definitions
follow the `ta` library's (the tests compare value by value on the same series):
EMA is pandas' `ewm(span=n, adjust=False)` seeded with the first value and reported from the n-th;
RSI and ATR use Wilder's smoothing (RSI from `ewm(alpha=1/n, adjust=False)` with a first change of 0,
ATR seeded with the mean of the first n true ranges); Bollinger uses the population deviation.
"""

from __future__ import annotations

import math
from collections import deque


class SMA:
    """Simple moving average over the last `period` values (a running sum over a ring buffer)."""

    __slots__ = ("_count", "_index", "_ring", "_sum", "period", "value")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be at least 1")
        self.period = period
        self._ring = [0.0] * period
        self._index = 0
        self._count = 0
        self._sum = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        index = self._index
        self._sum += x - self._ring[index]
        self._ring[index] = x
        index += 1
        self._index = 0 if index == self.period else index
        if self._count < self.period:
            self._count += 1
            if self._count < self.period:
                return None
        value = self.value = self._sum / self.period
        return value


class EMA:
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the first value."""

    __slots__ = ("_alpha", "_count", "_ema", "period", "value")

    def __init__(self, period: int, alpha: float | None = None) -> None:
        if period < 1:
            raise ValueError("period must be at least 1")
        self.period = period
        self._alpha = 2.0 / (period + 1) if alpha is None else alpha
        self._ema = 0.0
        self._count = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        if self._count == 0:
            self._ema = x
        else:
            self._ema += self._alpha * (x - self._ema)
        self._count += 1
        if self._count < self.period:
            return None
        self.value = self._ema
        return self._ema


class RSI:
    """Wilder's relative strength index, 0..100 (100 when there was no down move)."""

    __slots__ = ("_down", "_prev", "_up", "value")

    def __init__(self, period: int = 14) -> None:
        self._up = EMA(period, alpha=1.0 / period)
        self._down = EMA(period, alpha=1.0 / period)
        self._prev: float | None = None
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        change = 0.0 if self._prev is None else x - self._prev
        self._prev = x
        up = self._up.update(change if change > 0 else 0.0)
        down = self._down.update(-change if change < 0 else 0.0)
        if up is None or down is None:
            return None
        value = self.value = 100.0 if down == 0 else 100.0 - 100.0 / (1.0 + up / down)
        return value


class RollingStd:
    """Mean and population standard deviation of the last `period` values."""

    __slots__ = ("_count", "_index", "_ring", "_sum", "_sumsq", "mean", "period", "value")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be at least 1")
        self.period = period
        self._ring = [0.0] * period
        self._index = 0
        self._count = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self.mean: float | None = None
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        old = self._ring[self._index]
        self._ring[self._index] = x
        self._index = (self._index + 1) % self.period
        self._sum += x - old
        self._sumsq += x * x - old * old
        if self._count < self.period:
            self._count += 1
            if self._count < self.period:
                return None
        n = self.period
        mean = self.mean = self._sum / n
        variance = max(self._sumsq / n - mean * mean, 0.0)
        value = self.value = math.sqrt(variance)
        return value


class Bollinger:
    """Bands at mean ± k standard deviations (population) of the last `period` closes."""

    __slots__ = ("_std", "k", "lower", "middle", "upper")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self._std = RollingStd(period)
        self.k = k
        self.middle: float | None = None
        self.upper: float | None = None
        self.lower: float | None = None

    def update(self, x: float) -> tuple[float, float, float] | None:
        std = self._std.update(x)
        if std is None:
            return None
        mean = self._std.mean
        assert mean is not None
        self.middle, self.upper, self.lower = mean, mean + self.k * std, mean - self.k * std
        return self.lower, mean, self.upper


class Donchian:
    """Highest high and lowest low of the last `period` bars (monotonic deques)."""

    __slots__ = ("_count", "_highs", "_lows", "lower", "period", "upper")

    def __init__(self, period: int = 20) -> None:
        if period < 1:
            raise ValueError("period must be at least 1")
        self.period = period
        self._highs: deque[tuple[int, float]] = deque()
        self._lows: deque[tuple[int, float]] = deque()
        self._count = 0
        self.upper: float | None = None
        self.lower: float | None = None

    def update(self, high: float, low: float) -> tuple[float, float] | None:
        i = self._count
        self._count += 1
        highs, lows = self._highs, self._lows
        while highs and highs[-1][1] <= high:
            highs.pop()
        highs.append((i, high))
        while lows and lows[-1][1] >= low:
            lows.pop()
        lows.append((i, low))
        oldest = i - self.period + 1
        if highs[0][0] < oldest:
            highs.popleft()
        if lows[0][0] < oldest:
            lows.popleft()
        if self._count < self.period:
            return None
        self.upper, self.lower = highs[0][1], lows[0][1]
        return self.lower, self.upper


class ATR:
    """Wilder's average true range, seeded with the mean of the first `period` true ranges."""

    __slots__ = ("_count", "_prev_close", "_sum", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._prev_close: float | None = None
        self._count = 0
        self._sum = 0.0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        prev = self._prev_close
        tr = high - low if prev is None else max(high - low, abs(high - prev), abs(low - prev))
        self._prev_close = close
        self._count += 1
        n = self.period
        if self._count < n:
            self._sum += tr
            return None
        if self._count == n:
            value = (self._sum + tr) / n
        else:
            assert self.value is not None
            value = (self.value * (n - 1) + tr) / n
        self.value = value
        return value


class VolumeSpike:
    """A bar's volume over the mean volume of the `period` bars before it (None while warming up)."""

    __slots__ = ("_mean", "ratio")

    def __init__(self, period: int = 20) -> None:
        self._mean = SMA(period)
        self.ratio: float | None = None

    def update(self, volume: float) -> float | None:
        before = self._mean.value
        self._mean.update(volume)
        if before is None:
            return None
        ratio = self.ratio = volume / before if before > 0 else (math.inf if volume > 0 else 1.0)
        return ratio


def book_imbalance(
    bids: tuple[tuple[float, float | None], ...] | list[tuple[float, float | None]],
    asks: tuple[tuple[float, float | None], ...] | list[tuple[float, float | None]],
    depth: int = 5,
) -> float | None:
    """(bid size - ask size) / (bid size + ask size) over the best `depth` levels, in [-1, 1];
    None when a side's sizes are unknown or both are empty."""
    bid_size = 0.0
    for _, size in bids[:depth]:
        if size is None:
            return None
        bid_size += size
    ask_size = 0.0
    for _, size in asks[:depth]:
        if size is None:
            return None
        ask_size += size
    total = bid_size + ask_size
    if total <= 0:
        return None
    return (bid_size - ask_size) / total
