"""OHLCV candles (1m, 5m, 15m, 1h, 1d) from trades or quote mids; pure and in memory.

A candle is handed to the sink when it closes: when the first price of a later window arrives, or
when `close_until(ts)` passes its end (so quiet markets still close their candles).

Persistence is a `part_sink`'s business (`tradehall.store.candles.CandleWriter`): it receives *parts*,
what each window gained since its previous part, at every `flush_parts()` and when the window closes.
Merging a window's parts (earliest open, latest close, max high, min low, summed volume) gives the
whole candle, so a store that merges parts counts every price once, also for the window that is still
open and across a restart in the middle of a window (the parts before and after it add up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from tradehall.domain.candles import INTERVALS, Candle
from tradehall.marketdata.parsing import NS_PER_S


class _Stats:
    __slots__ = ("close", "close_ts", "high", "low", "open", "open_ts", "trades", "volume")

    def __init__(self, price: Decimal, size: Decimal, trade: bool, ts: int) -> None:
        self.open = self.high = self.low = self.close = price
        self.open_ts = self.close_ts = ts
        self.volume = size
        self.trades = 1 if trade else 0

    def add(self, price: Decimal, size: Decimal, trade: bool, ts: int) -> None:
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.close = price
        self.close_ts = ts
        self.volume += size
        if trade:
            self.trades += 1

    def freeze(self, market: str, interval: str, start_ts: int, closed: bool) -> Candle:
        return Candle(
            market,
            interval,
            start_ts,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.trades,
            closed,
            self.open_ts,
            self.close_ts,
        )


class _Working:
    """The whole candle of an open window, and the part of it not handed to the part sink yet."""

    __slots__ = ("part", "parts", "start_ts", "whole")

    def __init__(
        self, start_ts: int, price: Decimal, size: Decimal, trade: bool, ts: int, parts: bool
    ) -> None:
        self.start_ts = start_ts
        self.whole = _Stats(price, size, trade, ts)
        self.parts = parts
        """Without a part sink there is no part to keep (the hot path of a busy feed)."""
        self.part: _Stats | None = _Stats(price, size, trade, ts) if parts else None

    def add(self, price: Decimal, size: Decimal, trade: bool, ts: int) -> None:
        self.whole.add(price, size, trade, ts)
        if not self.parts:
            return
        if self.part is None:
            self.part = _Stats(price, size, trade, ts)
        else:
            self.part.add(price, size, trade, ts)

    def freeze(self, market: str, interval: str, closed: bool) -> Candle:
        return self.whole.freeze(market, interval, self.start_ts, closed)

    def take_part(self, market: str, interval: str, closed: bool) -> Candle | None:
        part, self.part = self.part, None
        return None if part is None else part.freeze(market, interval, self.start_ts, closed)


CandleSink = Callable[[Candle], None]


class CandleAggregator:
    def __init__(
        self,
        sink: CandleSink | None = None,
        intervals: Sequence[str] = tuple(INTERVALS),
        *,
        part_sink: CandleSink | None = None,
    ) -> None:
        unknown = [name for name in intervals if name not in INTERVALS]
        if unknown:
            raise ValueError(f"unknown candle intervals: {unknown}")
        self.sink = sink
        self.part_sink = part_sink
        """Receives the parts of each window (see the module docstring). Set it before the first price:
        a window opened without it has no part to hand over."""
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
                self._working[key] = _Working(start, price, size, trade, ts, self.part_sink is not None)
            elif start == working.start_ts:
                working.add(price, size, trade, ts)
            elif start > working.start_ts:
                self._close(working, market, name)
                self._working[key] = _Working(start, price, size, trade, ts, self.part_sink is not None)
            else:
                self.late += 1

    def close_until(self, ts: int) -> list[Candle]:
        """Close every candle whose window ended at or before `ts`."""
        closed = []
        widths = dict(self.widths)
        for (market, name), working in list(self._working.items()):
            if working.start_ts + widths[name] <= ts:
                del self._working[(market, name)]
                closed.append(self._close(working, market, name))
        return closed

    def flush_parts(self) -> int:
        """Hand what each open window gained since its last part to the part sink; returns the count."""
        if self.part_sink is None:
            return 0
        count = 0
        for (market, name), working in list(self._working.items()):
            part = working.take_part(market, name, closed=False)
            if part is not None:
                self.part_sink(part)
                count += 1
        return count

    def open_candles(self) -> list[Candle]:
        """Every window still open, whole (for a chart's live candle)."""
        working = self._working.items()
        return [candle.freeze(market, name, closed=False) for (market, name), candle in working]

    def current(self, market: str, interval: str) -> Candle | None:
        working = self._working.get((market, interval))
        return None if working is None else working.freeze(market, interval, closed=False)

    def _close(self, working: _Working, market: str, interval: str) -> Candle:
        if self.part_sink is not None:
            part = working.take_part(market, interval, closed=True)
            if part is not None:
                self.part_sink(part)
        candle = working.freeze(market, interval, closed=True)
        if self.sink is not None:
            self.sink(candle)
        return candle


__all__ = ["INTERVALS", "Candle", "CandleAggregator", "CandleSink"]
