"""A plainly correct order book: sorted lists and linear scans, the oracle for `book.OrderBook`.

Same interface and semantics as the fast book; property tests run random command streams through
an engine on each and demand identical events. Nothing here is clever, on purpose.
"""

from __future__ import annotations

from tradehall.domain.enums import SelfTradePrevention, Side
from tradehall.engine.book import Fill, OrderBook
from tradehall.engine.constants import (
    BUY,
    SELL,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
)
from tradehall.engine.orders import Order


class ReferenceBook(OrderBook):
    """A subclass of the fast book only so that the engine holds one concrete book type (the compiled
    build then calls a book's methods directly); it overrides every method and uses none of its state."""

    def __init__(self) -> None:
        super().__init__()
        self._ref_bids: list[Order] = []  # best first: price descending, then arrival
        self._ref_asks: list[Order] = []  # best first: price ascending, then arrival
        self._ref_reported: tuple[dict[int, int], dict[int, int]] = ({}, {})

    def _side(self, side: Side) -> list[Order]:
        return self._ref_bids if side is BUY else self._ref_asks

    def _totals(self, side: Side) -> dict[int, int]:
        totals: dict[int, int] = {}
        for order in self._side(side):
            assert order.price is not None
            totals[order.price] = totals.get(order.price, 0) + order.remaining
        return totals

    def best_bid(self) -> int | None:
        return self._ref_bids[0].price if self._ref_bids else None

    def best_ask(self) -> int | None:
        return self._ref_asks[0].price if self._ref_asks else None

    def depth(self, limit: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = sorted(self._totals(BUY).items(), reverse=True)[:limit]
        asks = sorted(self._totals(SELL).items())[:limit]
        return bids, asks

    def side_levels(self, bids: bool) -> list[tuple[int, int]]:
        depth_bids, depth_asks = self.depth()
        return depth_bids if bids else depth_asks

    def orders(self) -> list[Order]:
        def key(order: Order) -> int:
            assert order.price is not None
            return order.price

        return sorted(self._ref_bids, key=key) + sorted(self._ref_asks, key=key)

    def would_cross(self, side: Side, price: int) -> bool:
        if side is BUY:
            return bool(self._ref_asks) and price >= self._ref_asks[0].price  # type: ignore[operator]
        return bool(self._ref_bids) and price <= self._ref_bids[0].price  # type: ignore[operator]

    def _crosses(self, side: Side, limit: int | None, price: int) -> bool:
        if limit is None:
            return True
        return price <= limit if side is BUY else price >= limit

    def fillable(
        self, side: Side, limit: int | None, quantity: int, account_id: str, stp: SelfTradePrevention
    ) -> tuple[int, int | None]:
        need = quantity
        worst: int | None = None
        for maker in self._side(SELL if side is BUY else BUY):
            assert maker.price is not None
            if not self._crosses(side, limit, maker.price) or need == 0:
                break
            if maker.account_id == account_id:
                if stp is STP_CANCEL_OLDEST:
                    continue
                break
            take = min(need, maker.remaining)
            need -= take
            worst = maker.price
        return quantity - need, worst

    def add(self, order: Order) -> None:
        book = self._side(order.side)
        assert order.price is not None
        index = len(book)
        for position, other in enumerate(book):
            assert other.price is not None
            worse = other.price < order.price if order.side is BUY else other.price > order.price
            if worse:
                index = position
                break
        book.insert(index, order)
        order.in_book = True

    def remove(self, order: Order) -> None:
        self._side(order.side).remove(order)
        order.in_book = False

    def reduce(self, order: Order, new_remaining: int) -> None:
        order.remaining = new_remaining

    def match(
        self,
        side: Side,
        limit: int | None,
        quantity: int,
        account_id: str,
        stp: SelfTradePrevention,
        fills: list[Fill],
        stp_cancelled: list[Order],
    ) -> tuple[int, bool]:
        opposite = self._side(SELL if side is BUY else BUY)
        remaining = quantity
        while remaining and opposite:
            maker = opposite[0]
            assert maker.price is not None
            if not self._crosses(side, limit, maker.price):
                break
            if maker.account_id == account_id:
                if stp is STP_CANCEL_NEWEST:
                    return remaining, True
                opposite.pop(0)
                maker.in_book = False
                stp_cancelled.append(maker)
                if stp is STP_CANCEL_BOTH:
                    return remaining, True
                continue
            take = min(remaining, maker.remaining)
            maker.remaining -= take
            remaining -= take
            fills.append((maker, take, maker.price))
            if maker.remaining == 0:
                opposite.pop(0)
                maker.in_book = False
        return remaining, False

    def take_changes(self) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        result = []
        for side, reported in zip((BUY, SELL), self._ref_reported, strict=True):
            totals = self._totals(side)
            prices = sorted(set(totals) | set(reported), reverse=side is BUY)
            changes = tuple((p, totals.get(p, 0)) for p in prices if totals.get(p, 0) != reported.get(p, 0))
            reported.clear()
            reported.update(totals)
            result.append(changes)
        return result[0], result[1]

    def has_changes(self) -> bool:
        return True
