"""A live session's bars: one per market and cycle, built from the durable journal records.

Time is the engine's: a record's `ts` (stamped by the sequencer's clock, the manual one in tests) says
which cycle it belongs to, so a cycle closes when the first record at or after its end arrives (the
service sends `AdvanceTime` every `clock_tick_seconds`, so an idle market still closes its cycles).
Cycle n covers [anchor + (n - 1) x interval, anchor + n x interval); the anchor is aligned to the
epoch like a backtest's bars (`strategies.bars`). A bar is made of the cycle's trades in the market
(book venues: a quote venue's trades are the paper fills of its orders, not market prices); without
trades, of its quotes (the mid, else the quote's last); without either, of its marks. A cycle with no
price makes no bar (the contract's settled point). Event-driven sessions close a cycle after every
record that priced one of their markets.

Prices are Decimals here (exact, as the store keeps them); strategies get floats (`Bar`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from tradehall.domain.commands import Quote
from tradehall.domain.enums import Venue
from tradehall.domain.events import MarkPriceUpdated, QuoteUpdated, TradeExecuted
from tradehall.domain.fixedpoint import decimal_of
from tradehall.domain.market import MarketSpec
from tradehall.journal.records import JournalRecord
from tradehall.strategies.types import Bar, QuoteTick, TradeTick

SpecOf = Callable[[str], MarketSpec | None]

_TRADES, _QUOTES, _MARKS = 0, 1, 2


@dataclass(slots=True)
class BarData:
    """One market's bar of one cycle, exact."""

    market: str
    start_ns: int
    end_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    def bar(self) -> Bar:
        return Bar(
            self.start_ns,
            float(self.open),
            float(self.high),
            float(self.low),
            float(self.close),
            float(self.volume),
            self.end_ns,
        )


@dataclass(slots=True)
class ClosedCycle:
    cycle: int
    start_ns: int
    end_ns: int
    bars: dict[str, BarData] = field(default_factory=dict)


class _Prices:
    """The cycle's prices of one market by source: trades, quotes, marks (best source wins)."""

    __slots__ = ("_ohlc", "_volume")

    def __init__(self) -> None:
        self._ohlc: list[list[Decimal] | None] = [None, None, None]
        self._volume = Decimal(0)

    def add(self, source: int, price: Decimal, volume: Decimal = Decimal(0)) -> None:
        ohlc = self._ohlc[source]
        if ohlc is None:
            self._ohlc[source] = [price, price, price, price]
        else:
            ohlc[1] = max(ohlc[1], price)
            ohlc[2] = min(ohlc[2], price)
            ohlc[3] = price
        if source == _TRADES:
            self._volume += volume

    def bar(self, market: str, start_ns: int, end_ns: int) -> BarData | None:
        for source in (_TRADES, _QUOTES, _MARKS):
            ohlc = self._ohlc[source]
            if ohlc is not None:
                volume = self._volume if source == _TRADES else Decimal(0)
                return BarData(market, start_ns, end_ns, ohlc[0], ohlc[1], ohlc[2], ohlc[3], volume)
        return None


class CycleBars:
    """Feeds on durable records; `advance(ts)` closes the cycles `ts` has passed, `add(record)` takes
    the record's prices and returns the ticks strategies see (`on_trade`, `on_quote`)."""

    def __init__(
        self,
        markets: Sequence[str],
        spec_of: SpecOf,
        *,
        anchor_ns: int,
        interval_ns: int,
        cycles_done: int = 0,
        event_driven: bool = False,
    ) -> None:
        if interval_ns <= 0:
            raise ValueError("a cycle lasts a positive time")
        self.markets = frozenset(markets)
        self._spec_of = spec_of
        self.anchor_ns = anchor_ns
        self.interval_ns = interval_ns
        self.event_driven = event_driven
        self.cycle = cycles_done + 1
        """The cycle the next prices belong to."""
        self._started_ns = anchor_ns + cycles_done * interval_ns
        self._prices: dict[str, _Prices] = {}

    def cycle_of(self, ts: int) -> int:
        return max(1, (ts - self.anchor_ns) // self.interval_ns + 1)

    def advance(self, ts: int) -> ClosedCycle | None:
        """The cycle that ends at or before `ts`, if it has a price (then the next starts at `ts`'s)."""
        if self.event_driven:
            return None
        reached = self.cycle_of(ts)
        if reached <= self.cycle:
            return None
        closed = self._close(self.anchor_ns + self.cycle * self.interval_ns)
        self.cycle = reached
        self._started_ns = self.anchor_ns + (reached - 1) * self.interval_ns
        return closed

    def close_now(self, ts: int) -> ClosedCycle | None:
        """Event-driven: the cycle of the prices taken so far ends at `ts`."""
        closed = self._close(ts)
        if closed is not None:
            self.cycle += 1
            self._started_ns = ts
        return closed

    def _close(self, end_ns: int) -> ClosedCycle | None:
        prices, self._prices = self._prices, {}
        closed = ClosedCycle(self.cycle, self._started_ns, end_ns)
        for market in sorted(prices):
            bar = prices[market].bar(market, self._started_ns, end_ns)
            if bar is not None:
                closed.bars[market] = bar
        return closed if closed.bars else None

    def _price(self, market: str) -> _Prices:
        found = self._prices.get(market)
        if found is None:
            found = self._prices[market] = _Prices()
        return found

    def add(self, record: JournalRecord) -> list[TradeTick | QuoteTick]:
        """The record's prices of the session's markets; the trade and quote ticks in record order."""
        ticks: list[TradeTick | QuoteTick] = []
        markets = self.markets
        for event in record.events:
            if isinstance(event, TradeExecuted):
                if event.market not in markets:
                    continue
                spec = self._spec_of(event.market)
                if spec is None or spec.venue is not Venue.BOOK:
                    continue  # a quote venue's trades are its paper fills, not the market's prices
                price = decimal_of(event.price, spec.tick_size)
                quantity = decimal_of(event.quantity, spec.lot_size)
                self._price(event.market).add(_TRADES, price, quantity)
                ticks.append(
                    TradeTick(event.market, event.ts, float(price), float(quantity), event.taker_side.value)
                )
            elif isinstance(event, QuoteUpdated):
                if event.market not in markets:
                    continue
                spec = self._spec_of(event.market)
                if spec is None:
                    continue
                tick = spec.tick_size
                bid = None if event.bid is None else decimal_of(event.bid, tick)
                ask = None if event.ask is None else decimal_of(event.ask, tick)
                last = None if event.last is None else decimal_of(event.last, tick)
                mid = (bid + ask) / 2 if bid is not None and ask is not None else (last or bid or ask)
                if mid is not None:
                    self._price(event.market).add(_QUOTES, mid)
                ticks.append(_quote_tick(event.market, event.ts, bid, ask, record))
            elif isinstance(event, MarkPriceUpdated):
                if event.market not in markets:
                    continue
                spec = self._spec_of(event.market)
                if spec is not None:
                    self._price(event.market).add(_MARKS, decimal_of(event.price, spec.tick_size))
        return ticks


def _quote_tick(
    market: str, ts: int, bid: Decimal | None, ask: Decimal | None, record: JournalRecord
) -> QuoteTick:
    """The quote as strategies see it, with the depth the `Quote` command carried (if any)."""
    command = record.command
    if isinstance(command, Quote) and command.market == market:
        return QuoteTick(
            market,
            ts,
            None if bid is None else float(bid),
            None if ask is None else float(ask),
            None if command.bid_size is None else float(command.bid_size),
            None if command.ask_size is None else float(command.ask_size),
            tuple((float(p), float(s)) for p, s in command.bids),
            tuple((float(p), float(s)) for p, s in command.asks),
        )
    return QuoteTick(market, ts, None if bid is None else float(bid), None if ask is None else float(ask))
