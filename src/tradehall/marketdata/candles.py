"""OHLCV candles (1m, 5m, 15m, 1h, 1d) from trades or quote mids; pure and in memory.

A candle is handed to the sink when it closes: when the first price of a later window arrives, or
when `close_until(ts)` passes its end (so quiet markets still close their candles). Persistence
(the read-model database) is the sink's business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from tradehall.marketdata.parsing import NS_PER_S

INTERVALS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
"""Interval name → width in seconds (windows aligned to the UTC epoch)."""


@dataclass(frozen=True, slots=True)
class Candle:
    market: str
    interval: str
    start_ts: int
    """Window start, ns since the epoch; the window is [start_ts, start_ts + width)."""
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    closed: bool


class _Working:
    __slots__ = ("close", "high", "low", "open", "start_ts", "trades", "volume")

    def __init__(self, start_ts: int, price: Decimal, size: Decimal, trade: bool) -> None:
        self.start_ts = start_ts
        self.open = self.high = self.low = self.close = price
        self.volume = size
        self.trades = 1 if trade else 0

    def add(self, price: Decimal, size: Decimal, trade: bool) -> None:
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.close = price
        self.volume += size
        if trade:
            self.trades += 1

    def freeze(self, market: str, interval: str, closed: bool) -> Candle:
        return Candle(
            market,
            interval,
            self.start_ts,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.trades,
            closed,
        )


CandleSink = Callable[[Candle], None]


class CandleAggregator:
    def __init__(self, sink: CandleSink | None = None, intervals: Sequence[str] = tuple(INTERVALS)) -> None:
        unknown = [name for name in intervals if name not in INTERVALS]
        if unknown:
            raise ValueError(f"unknown candle intervals: {unknown}")
        self.sink = sink
        self.widths = [(name, INTERVALS[name] * NS_PER_S) for name in intervals]
        self._working: dict[tuple[str, str], _Working] = {}
        self.late = 0
        """Prices older than the open window (out-of-order input), ignored."""

    def on_trade(self, market: str, price: Decimal, size: Decimal, ts: int) -> None:
        self._add(market, price, size, ts, trade=True)

    def on_price(self, market: str, price: Decimal, ts: int) -> None:
        """A quote mid or mark: moves OHLC, adds no volume."""
        self._add(market, price, Decimal(0), ts, trade=False)

    def _add(self, market: str, price: Decimal, size: Decimal, ts: int, trade: bool) -> None:
        for name, width in self.widths:
            start = ts - ts % width
            key = (market, name)
            working = self._working.get(key)
            if working is None:
                self._working[key] = _Working(start, price, size, trade)
            elif start == working.start_ts:
                working.add(price, size, trade)
            elif start > working.start_ts:
                self._emit(working.freeze(market, name, closed=True))
                self._working[key] = _Working(start, price, size, trade)
            else:
                self.late += 1

    def close_until(self, ts: int) -> list[Candle]:
        """Close every candle whose window ended at or before `ts`."""
        closed = []
        widths = dict(self.widths)
        for (market, name), working in list(self._working.items()):
            if working.start_ts + widths[name] <= ts:
                candle = working.freeze(market, name, closed=True)
                del self._working[(market, name)]
                closed.append(candle)
                self._emit(candle)
        return closed

    def current(self, market: str, interval: str) -> Candle | None:
        working = self._working.get((market, interval))
        return None if working is None else working.freeze(market, interval, closed=False)

    def _emit(self, candle: Candle) -> None:
        if self.sink is not None:
            self.sink(candle)
