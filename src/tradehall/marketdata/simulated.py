"""A seeded simulated feed: random walk with jumps and a two-sided book, for the demo and tests.

The walk runs in integer ticks, so every price is on the market's tick and the same seed always
produces the same stream (the demo and tests depend on it).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tradehall.domain.fixedpoint import decimal_of, units_of
from tradehall.marketdata.breaker import Clock
from tradehall.marketdata.feed import Feed, NsClock, Sink, sleep_or_stop
from tradehall.marketdata.models import BookSnapshot, FeedEvent, Quote, TradeTick

SOURCE = "simulated"


@dataclass(frozen=True, slots=True)
class SimulatedInstrument:
    name: str
    start: Decimal
    tick: Decimal
    spread_ticks: int = 2
    step_ticks: float = 3.0
    """Standard deviation of one step, in ticks."""
    jump_probability: float = 0.01
    jump_ticks: int = 50
    lot: Decimal = Decimal(1)
    max_size_lots: int = 10
    depth: int = 5
    trade_probability: float = 0.3
    floor: Decimal | None = None
    """Lowest mid (e.g. one tick for a binary market); the walk reflects off it."""
    ceiling: Decimal | None = None


class SimulatedMarket:
    """The walk of one instrument; `step()` returns the events of one tick of time."""

    def __init__(self, spec: SimulatedInstrument, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.mid_ticks = units_of(spec.start, spec.tick, "start")
        half = max(1, spec.spread_ticks // 2)
        self.half_spread = half
        # Quotes stay strictly inside (floor, ceiling): a binary's bid never reaches 0 nor its ask 1.
        floor = units_of(spec.floor, spec.tick, "floor") if spec.floor is not None else 0
        self.low = floor + half + 1
        self.high = (
            units_of(spec.ceiling, spec.tick, "ceiling") - half - 1 if spec.ceiling is not None else None
        )
        self.trade_seq = 0

    def _price(self, ticks: int) -> Decimal:
        return decimal_of(ticks, self.spec.tick)

    def _size(self) -> Decimal:
        return decimal_of(self.rng.randint(1, self.spec.max_size_lots), self.spec.lot)

    def step(self, ts: int, with_book: bool = False) -> list[FeedEvent]:
        spec = self.spec
        move = round(self.rng.gauss(0.0, spec.step_ticks))
        if self.rng.random() < spec.jump_probability:
            move += spec.jump_ticks if self.rng.random() < 0.5 else -spec.jump_ticks
        mid = self.mid_ticks + move
        if mid < self.low:
            mid = 2 * self.low - mid
        if self.high is not None and mid > self.high:
            mid = 2 * self.high - mid
        mid = max(self.low, mid if self.high is None else min(self.high, mid))
        self.mid_ticks = mid
        bid_ticks, ask_ticks = mid - self.half_spread, mid + self.half_spread
        events: list[FeedEvent] = []
        last = None
        if self.rng.random() < spec.trade_probability:
            self.trade_seq += 1
            buy = self.rng.random() < 0.5
            last = self._price(ask_ticks if buy else bid_ticks)
            events.append(
                TradeTick(
                    SOURCE,
                    spec.name,
                    last,
                    self._size(),
                    "buy" if buy else "sell",
                    str(self.trade_seq),
                    ts,
                    ts,
                )
            )
        bid_size, ask_size = self._size(), self._size()
        events.append(
            Quote(
                SOURCE,
                spec.name,
                self._price(bid_ticks),
                self._price(ask_ticks),
                bid_size,
                ask_size,
                last,
                ts,
                ts,
            )
        )
        if with_book:
            bids = [
                (self._price(bid_ticks - i), bid_size if i == 0 else self._size()) for i in range(spec.depth)
            ]
            asks = [
                (self._price(ask_ticks + i), ask_size if i == 0 else self._size()) for i in range(spec.depth)
            ]
            events.append(
                BookSnapshot(SOURCE, spec.name, tuple(b for b in bids if b[0] > 0), tuple(asks), None, ts, ts)
            )
        return events


class SimulatedFeed(Feed):
    def __init__(
        self,
        instruments: Sequence[SimulatedInstrument],
        sink: Sink,
        *,
        seed: int = 7,
        interval: float = 0.5,
        with_book: bool = False,
        clock: Clock = time.monotonic,
        clock_ns: NsClock = time.time_ns,
        name: str = SOURCE,
    ) -> None:
        super().__init__(name, sink, clock=clock, clock_ns=clock_ns)
        rng = random.Random(seed)
        self.markets = [SimulatedMarket(spec, random.Random(rng.getrandbits(64))) for spec in instruments]
        self.interval = interval
        self.with_book = with_book
        self._stop = asyncio.Event()

    def step(self, ts: int | None = None) -> list[FeedEvent]:
        """One step of every instrument, emitted and returned."""
        stamp = self.clock_ns() if ts is None else ts
        events: list[FeedEvent] = []
        for market in self.markets:
            events.extend(market.step(stamp, self.with_book))
        for event in events:
            self.note_message()
            self.emit(event)
        return events

    async def run(self) -> None:
        self._stop.clear()
        self.set_connected(True, "stream")
        while not self._stop.is_set():
            self.step()
            await sleep_or_stop(self.interval, self._stop)

    async def stop(self) -> None:
        self._stop.set()
        await super().stop()
