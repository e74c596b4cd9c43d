"""A price-level book (price → size) with a lazily recomputed best price, for the feeds' local books."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from tradehall.marketdata.models import Level

ZERO = Decimal(0)


class LevelBook:
    """One side of a book. `best()` is the highest price for bids, the lowest for asks."""

    __slots__ = ("_best", "_highest_first", "levels")

    def __init__(self, highest_first: bool) -> None:
        self.levels: dict[Decimal, Decimal] = {}
        self._highest_first = highest_first
        self._best: Decimal | None = None

    def clear(self) -> None:
        self.levels.clear()
        self._best = None

    def set(self, price: Decimal, size: Decimal) -> None:
        """Set a level's absolute size; zero (or less) removes it."""
        if size <= ZERO:
            if self.levels.pop(price, None) is not None and price == self._best:
                self._best = None
            return
        self.levels[price] = size
        best = self._best
        if best is None:
            if len(self.levels) == 1:
                self._best = price
        elif price > best if self._highest_first else price < best:
            self._best = price

    def set_levels(self, levels: Iterable[Level]) -> None:
        """`set` for many levels (a depth diff), with the lookups hoisted out of the loop."""
        book = self.levels
        best = self._best
        highest = self._highest_first
        for price, size in levels:
            if size <= ZERO:
                if book.pop(price, None) is not None and price == best:
                    best = None
            else:
                book[price] = size
                if best is None:
                    if len(book) == 1:
                        best = price
                elif price > best if highest else price < best:
                    best = price
        self._best = best

    def add(self, price: Decimal, change: Decimal) -> Decimal:
        """Apply a signed change to a level; returns the new size (0 when gone)."""
        size = self.levels.get(price, Decimal(0)) + change
        self.set(price, size)
        return size if size > 0 else Decimal(0)

    def best(self) -> Level | None:
        if not self.levels:
            return None
        best = self._best
        if best is None:
            best = max(self.levels) if self._highest_first else min(self.levels)
            self._best = best
        return best, self.levels[best]

    def sorted_levels(self) -> tuple[Level, ...]:
        return tuple(sorted(self.levels.items(), reverse=self._highest_first))


class SequencedBook:
    """A venue's local book kept from a snapshot and the deltas after it (OKX `books`, Bybit
    `orderbook.N`). The caller decides from the venue's own sequence rule whether a delta joins
    up; this keeps the levels, the last sequence applied and whether a snapshot was loaded."""

    __slots__ = ("asks", "bids", "exchange_ts", "seq", "symbol", "synced")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = LevelBook(highest_first=True)
        self.asks = LevelBook(highest_first=False)
        self.seq: int | None = None
        self.exchange_ts: int | None = None
        self.synced = False

    def load(
        self, bids: Iterable[Level], asks: Iterable[Level], seq: int | None, exchange_ts: int | None
    ) -> None:
        """Replace the whole book (a snapshot)."""
        self.bids.clear()
        self.asks.clear()
        self.bids.set_levels(bids)
        self.asks.set_levels(asks)
        self.seq = seq
        self.exchange_ts = exchange_ts
        self.synced = True

    def apply(
        self, bids: Iterable[Level], asks: Iterable[Level], seq: int | None, exchange_ts: int | None
    ) -> None:
        """Absolute sizes per level (0 removes), after the caller checked the sequence."""
        self.bids.set_levels(bids)
        self.asks.set_levels(asks)
        self.seq = seq
        self.exchange_ts = exchange_ts

    def reset(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.seq = None
        self.synced = False

    def top_levels(self) -> tuple[Level | None, Level | None]:
        return self.bids.best(), self.asks.best()

    def depth(self, count: int) -> tuple[list[Level], list[Level]]:
        """The best `count` levels of each side, best first."""
        bids = sorted(self.bids.levels.items(), reverse=True)[:count]
        asks = sorted(self.asks.levels.items())[:count]
        return bids, asks
