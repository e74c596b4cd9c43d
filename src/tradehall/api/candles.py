"""OHLCV candles of the engine's own trades, kept in memory for the API and the WebSocket.

Feeds write their candles to the read models (`store.upsert_candles`); a book market's candles come
from its trades, which the gateway sees as durable events. A bounded number per market and interval
is kept; older ones are in the read models when a recorder stores them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tradehall.domain.events import TradeExecuted
from tradehall.journal.records import JournalRecord

INTERVAL_NS: dict[str, int] = {
    "1m": 60 * 10**9,
    "5m": 300 * 10**9,
    "15m": 900 * 10**9,
    "1h": 3600 * 10**9,
    "1d": 86_400 * 10**9,
}


@dataclass(slots=True)
class Bar:
    """Prices in ticks, volume in lots."""

    start: int
    open: int
    high: int
    low: int
    close: int
    volume: int


CandleListener = Callable[[str, str, Bar], None]


class CandleBook:
    def __init__(self, keep: int = 1440) -> None:
        self.keep = keep
        self._bars: dict[tuple[str, str], OrderedDict[int, Bar]] = {}
        self.listeners: list[CandleListener] = []

    def on_records(self, records: Sequence[JournalRecord]) -> None:
        for record in records:
            for event in record.events:
                if isinstance(event, TradeExecuted):
                    self.add(event.market, event.ts, event.price, event.quantity)

    def add(self, market: str, ts: int, price: int, quantity: int) -> None:
        for interval, width in INTERVAL_NS.items():
            start = ts - ts % width
            bars = self._bars.setdefault((market, interval), OrderedDict())
            bar = bars.get(start)
            if bar is None:
                bar = bars[start] = Bar(start, price, price, price, price, quantity)
                while len(bars) > self.keep:
                    bars.popitem(last=False)
            else:
                bar.high = max(bar.high, price)
                bar.low = min(bar.low, price)
                bar.close = price
                bar.volume += quantity
            for listener in list(self.listeners):
                listener(market, interval, bar)

    def bars(self, market: str, interval: str, start: int | None = None, end: int | None = None) -> list[Bar]:
        """Newest first, within [start, end)."""
        bars = self._bars.get((market, interval))
        if not bars:
            return []
        return [
            bar
            for bar in reversed(bars.values())
            if (start is None or bar.start >= start) and (end is None or bar.start < end)
        ]
