"""The fast order book: price levels of FIFO queues, O(1) cancel, best price by lazy heaps.

A level is a deque of orders plus the live total. Cancel marks the order out of the book and
adjusts the total in O(1); dead orders are dropped when they reach the front of their queue (lazy
deletion). Best prices come from one heap per side whose stale entries are popped lazily; the heap
is rebuilt when stale entries outnumber live levels. Every changed level is remembered until
`take_changes`, which yields the per-command L2 delta. The state holds no reference cycles.
"""

from __future__ import annotations

from collections import deque
from heapq import heapify, heappop, heappush
from typing import Any

from tradehall.domain.enums import SelfTradePrevention, Side
from tradehall.engine.constants import (
    BUY,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
)
from tradehall.engine.orders import Order

Fill = tuple[Order, int, int]
"""(maker order, quantity in lots, price in ticks)."""


class _Level:
    __slots__ = ("count", "orders", "total")

    def __init__(self) -> None:
        self.orders: deque[Order] = deque()
        self.total = 0
        self.count = 0


class OrderBook:
    __slots__ = (
        "_ask_heap",
        "_asks",
        "_bid_heap",
        "_bids",
        "_reported_asks",
        "_reported_bids",
        "_touched_asks",
        "_touched_bids",
    )

    def __init__(self) -> None:
        self._bids: dict[int, _Level] = {}
        self._asks: dict[int, _Level] = {}
        self._bid_heap: list[int] = []  # negated prices
        self._ask_heap: list[int] = []
        self._touched_bids: set[int] = set()
        self._touched_asks: set[int] = set()
        self._reported_bids: dict[int, int] = {}
        self._reported_asks: dict[int, int] = {}

    # --- queries -------------------------------------------------------------------------

    def best_bid(self) -> int | None:
        heap = self._bid_heap
        levels = self._bids
        while heap:
            price = -heap[0]
            if price in levels:
                return price
            heappop(heap)
        return None

    def best_ask(self) -> int | None:
        heap = self._ask_heap
        levels = self._asks
        while heap:
            price = heap[0]
            if price in levels:
                return price
            heappop(heap)
        return None

    def depth(self, limit: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """L2 levels, bids descending and asks ascending."""
        bids = sorted(self._bids, reverse=True)[:limit]
        asks = sorted(self._asks)[:limit]
        return [(p, self._bids[p].total) for p in bids], [(p, self._asks[p].total) for p in asks]

    def side_levels(self, bids: bool) -> list[tuple[int, int]]:
        """One side's L2 levels, best first (the smart router walks one side only)."""
        levels = self._bids if bids else self._asks
        return [(p, levels[p].total) for p in sorted(levels, reverse=bids)]

    def orders(self) -> list[Order]:
        """Every resting order, each level in time priority (for snapshots and checks)."""
        result: list[Order] = []
        for levels in (self._bids, self._asks):
            for price in sorted(levels):
                result.extend(o for o in levels[price].orders if o.in_book)
        return result

    def would_cross(self, side: Side, price: int) -> bool:
        if side is BUY:
            best = self.best_ask()
            return best is not None and price >= best
        best = self.best_bid()
        return best is not None and price <= best

    def fillable(
        self, side: Side, limit: int | None, quantity: int, account_id: str, stp: SelfTradePrevention
    ) -> tuple[int, int | None]:
        """How much an incoming order would fill, and its worst price, without changing anything."""
        if side is BUY:
            levels = self._asks
            prices = sorted(p for p in levels if limit is None or p <= limit)
        else:
            levels = self._bids
            prices = sorted((p for p in levels if limit is None or p >= limit), reverse=True)
        need = quantity
        worst: int | None = None
        for price in prices:
            for maker in levels[price].orders:
                if not maker.in_book:
                    continue
                if maker.account_id == account_id:
                    if stp is STP_CANCEL_OLDEST:
                        continue
                    return quantity - need, worst
                take = maker.remaining if maker.remaining < need else need
                need -= take
                worst = price
                if need == 0:
                    return quantity, worst
        return quantity - need, worst

    # --- changes -------------------------------------------------------------------------

    def add(self, order: Order) -> None:
        """Rest `order` at the tail of its price level."""
        price = order.price
        assert price is not None
        if order.side is BUY:
            levels = self._bids
            level = levels.get(price)
            if level is None:
                level = levels[price] = _Level()
                heap = self._bid_heap
                heappush(heap, -price)
                if len(heap) > 2 * len(levels) + 64:
                    self._bid_heap = [-p for p in levels]
                    heapify(self._bid_heap)
            self._touched_bids.add(price)
        else:
            levels = self._asks
            level = levels.get(price)
            if level is None:
                level = levels[price] = _Level()
                heap = self._ask_heap
                heappush(heap, price)
                if len(heap) > 2 * len(levels) + 64:
                    self._ask_heap = list(levels)
                    heapify(self._ask_heap)
            self._touched_asks.add(price)
        level.orders.append(order)
        level.total += order.remaining
        level.count += 1
        order.in_book = True

    def remove(self, order: Order) -> None:
        """Take `order` out of the book in O(1); its queue entry is dropped lazily."""
        price = order.price
        assert price is not None
        if order.side is BUY:
            levels = self._bids
            self._touched_bids.add(price)
        else:
            levels = self._asks
            self._touched_asks.add(price)
        level = levels[price]
        order.in_book = False
        level.total -= order.remaining
        level.count -= 1
        if level.count == 0:
            del levels[price]

    def reduce(self, order: Order, new_remaining: int) -> None:
        """Lower a resting order's remaining quantity in place; it keeps its priority."""
        price = order.price
        assert price is not None
        if order.side is BUY:
            level = self._bids[price]
            self._touched_bids.add(price)
        else:
            level = self._asks[price]
            self._touched_asks.add(price)
        level.total -= order.remaining - new_remaining
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
        """Match an incoming order against the opposite side at the resting prices.

        Appends one fill per (maker, quantity, price) to `fills` and the makers removed by
        self-trade prevention to `stp_cancelled`; makers' `remaining` is updated and filled makers
        leave the book. Returns the taker's remaining quantity and whether self-trade prevention
        cancelled the taker's rest.
        """
        if side is BUY:
            levels = self._asks
            heap = self._ask_heap
            touched = self._touched_asks
            sign = 1
        else:
            levels = self._bids
            heap = self._bid_heap
            touched = self._touched_bids
            sign = -1
        remaining = quantity
        while remaining and heap:
            price = sign * heap[0]
            level = levels.get(price)
            if level is None:
                heappop(heap)
                continue
            if limit is not None and (price > limit if sign == 1 else price < limit):
                break
            touched.add(price)
            queue = level.orders
            while remaining:
                maker = queue[0]
                if not maker.in_book:
                    queue.popleft()
                    continue
                if maker.account_id == account_id:
                    if stp is STP_CANCEL_NEWEST:
                        return remaining, True
                    queue.popleft()
                    maker.in_book = False
                    level.total -= maker.remaining
                    level.count -= 1
                    stp_cancelled.append(maker)
                    if stp is STP_CANCEL_BOTH:
                        if level.count == 0:
                            del levels[price]
                            heappop(heap)
                        return remaining, True
                    if level.count == 0:
                        break
                    continue
                available = maker.remaining
                if available <= remaining:
                    remaining -= available
                    maker.remaining = 0
                    maker.in_book = False
                    queue.popleft()
                    level.total -= available
                    level.count -= 1
                    fills.append((maker, available, price))
                    if level.count == 0:
                        break
                else:
                    maker.remaining = available - remaining
                    level.total -= remaining
                    fills.append((maker, remaining, price))
                    remaining = 0
            if level.count == 0:
                del levels[price]
                heappop(heap)
        return remaining, False

    def take_changes(self) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        """The levels whose total differs from the last call, with their totals now (0 = gone)."""
        return (
            _net_changes(self._touched_bids, self._bids, self._reported_bids, True),
            _net_changes(self._touched_asks, self._asks, self._reported_asks, False),
        )

    def has_changes(self) -> bool:
        return bool(self._touched_bids or self._touched_asks)


def _net_changes(
    touched: set[int], levels: dict[int, _Level], reported: dict[int, int], descending: bool
) -> tuple[tuple[int, int], ...]:
    if not touched:
        return ()
    changes = []
    # `Any`, not `int`: compiled, an `int` local is unboxed from the set and boxed again (a new int
    # object above 256) at each of the five uses below; an `Any` stays the object it was.
    price: Any
    total: Any
    for price in sorted(touched, reverse=descending):
        level = levels.get(price)
        total = level.total if level is not None else 0
        if reported.get(price, 0) != total:
            changes.append((price, total))
            if total:
                reported[price] = total
            else:
                del reported[price]
    touched.clear()
    return tuple(changes)
