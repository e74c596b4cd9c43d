"""Stops: move trailing stops with their trigger price, and fire the stops it has reached."""

from __future__ import annotations

from typing import Any, Final

from sortedcontainers import SortedKeyList

from tradehall.domain.enums import Side, StopTrigger
from tradehall.domain.events import OrderTriggered
from tradehall.engine.checks import trailing_stop_price, trigger_price
from tradehall.engine.constants import BUY, MARKET_OPEN, OPEN, PENDING_TRIGGER, SELL, TRAILING_STOP_ORDER
from tradehall.engine.contingent import Contingent
from tradehall.engine.execution import Execution
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.state import EngineState, by_order_id
from tradehall.engine.stop_book import TRIGGER_RANK as RANK
from tradehall.engine.stop_book import StopBook, TrailGroup, TrailKey, Watermarks

TRIGGER_SOURCES: Final = ((StopTrigger.LAST, 0), (StopTrigger.MARK, 1), (StopTrigger.BID_ASK, 2))
"""Each trigger source with its group in the stop lists (`stop_book.TRIGGER_RANK`)."""


class Stops:
    def __init__(self, state: EngineState, execution: Execution, contingent: Contingent) -> None:
        self._state = state
        self._execution = execution
        self._contingent = contingent
        self._contingent_pending = state.contingent_pending
        self._orders = state.orders

    def trigger(self, market: Market) -> None:
        """Move the trailing stops with the prices of now, then fire the stops their trigger source
        has reached (inclusive: >= for buys, <= for sells), in order-id order, in the same command as
        the change that moved the price; again while the fired stops move a price further. Only an
        open market fires stops. Contingent orders that filled or ended are settled first (their exits
        placed, grown or ended)."""
        book = market.stops
        pending = self._contingent_pending
        while True:
            if pending:
                self._contingent.settle()
            if not book.size or market.status is not MARKET_OPEN:
                return
            last_only = book.on_last == book.size
            if last_only and book.quiet and book.quiet_last == market.last_price:
                return  # every stop watches the last price, which has not moved since a scan found nothing
            if book.trailing:
                self.follow(market, book)
            triggered: list[Order] = []
            if book.buy:
                for stop in _reached(
                    market, book.buy, BUY, RANK[book.buy[0].trigger], RANK[book.buy[-1].trigger]
                ):
                    triggered.append(stop)
            if book.sell:
                for stop in _reached(
                    market, book.sell, SELL, RANK[book.sell[0].trigger], RANK[book.sell[-1].trigger]
                ):
                    triggered.append(stop)
            for trailing, side in ((book.trailing_buy, BUY), (book.trailing_sell, SELL)):
                groups = trailing.groups
                if groups:
                    for group in _reached(market, groups, side, groups[0].rank, groups[-1].rank):
                        triggered.extend(group.members.values())
            if not triggered:
                if last_only:
                    book.quiet, book.quiet_last = True, market.last_price
                return
            triggered.sort(key=by_order_id)
            orders = self._orders
            for order in triggered:
                if pending:  # an earlier stop's fills may have shrunk or ended this one's pair
                    self._contingent.settle()
                # An earlier stop's fills may also have ended this one (a reduce-only stop whose position
                # is gone is cancelled and leaves the stop book): fire only what still waits.
                if order.status is not PENDING_TRIGGER or orders.get(order.order_id) is not order:
                    continue
                book.remove(order)
                self.fire(order, market)

    def follow(self, market: Market, book: StopBook) -> None:
        """Trailing stops: activate the waiting ones the price has reached, then raise each sell's high
        (lower each buy's low) that the price has passed, re-keying a stop only when its stop moves.
        Each step takes one contiguous run of a sorted list, so the cost grows with the stops that
        change, not with the stops that wait."""
        by_rank = book.trailing_by_rank
        for trigger, rank in TRIGGER_SOURCES:
            if not by_rank[rank]:
                continue
            for side in (BUY, SELL):
                price = trigger_price(market, trigger, side)
                if price is None:
                    continue
                activate: tuple[tuple[int, ...], tuple[int, ...]]
                move: tuple[tuple[int, ...], tuple[int, ...]]
                if side is BUY:  # a buy activates at or below its activation price; lows above move
                    waiting, trailing = book.waiting_buy, book.trailing_buy
                    activate, move = ((rank, price), (rank + 1,)), ((rank, price + 1), (rank + 1,))
                else:  # a sell activates at or above its activation price; highs below move
                    waiting, trailing = book.waiting_sell, book.trailing_sell
                    activate, move = ((rank,), (rank, price + 1)), ((rank,), (rank, price))
                if trailing:
                    taken = trailing.take(*move)
                    if taken:
                        _move(market, trailing, rank, price, taken)
                if waiting:
                    activated = _take(waiting, activate)
                    if activated:
                        for order in activated:
                            order.hwm = price
                            order.stop_price = trailing_stop_price(market, order, price)
                            trailing.add(order)

    def fire(self, order: Order, market: Market) -> None:
        now = self._state.now
        if order.oco_with is not None:
            self._contingent.on_trigger(order, market)
        order.status = OPEN
        order.updated_ts = now
        trailing = order.type is TRAILING_STOP_ORDER
        self._state.events.append(
            OrderTriggered(
                order_id=order.order_id,
                account_id=order.account_id,
                market=order.market,
                ts=now,
                stop_price=order.stop_price if trailing else None,
                hwm=order.hwm,
            )
        )
        self._execution.rearm(order, market, stated_reason=True)


def _take(orders: SortedKeyList, bounds: tuple[tuple[int, ...], tuple[int, ...]]) -> list[Order]:
    """Remove and return the run of `orders` whose keys lie in [low, high)."""
    start, stop = orders.bisect_key_left(bounds[0]), orders.bisect_key_left(bounds[1])
    if start >= stop:
        return []
    run: list[Order] = orders[start:stop]
    del orders[start:stop]
    return run


def _reached(market: Market, stops: SortedKeyList, side: Side, low_rank: int, high_rank: int) -> list[Any]:
    """The entries of `stops` (sorted by (source rank, stop price, ...), the first of rank `low_rank`,
    the last of `high_rank`) that their source's price has reached: one contiguous run per source."""
    reached: list[Any] = []
    for trigger, rank in TRIGGER_SOURCES[low_rank : high_rank + 1]:
        price = trigger_price(market, trigger, side)
        if price is None:
            continue
        if side is BUY:
            if low_rank == high_rank and stops[0].stop_price > price:
                continue  # one group, and even its lowest stop is above the price
            low, high = stops.bisect_key_left((rank,)), stops.bisect_key_left((rank, price + 1))
        else:
            if low_rank == high_rank and stops[-1].stop_price < price:
                continue  # one group, and even its highest stop is below the price
            low, high = stops.bisect_key_left((rank, price)), stops.bisect_key_left((rank + 1,))
        if low < high:
            reached.extend(stops[low:high])
    return reached


def _move(
    market: Market, trailing: Watermarks, rank: int, price: int, taken: list[dict[TrailKey, TrailGroup]]
) -> None:
    """Give the stops of the taken buckets the new watermark `price`: each group takes the stop its
    trail gives and is re-keyed once in the group list, or merges into the group of the same trail
    already at that watermark (whose stop it shares)."""
    groups = trailing.groups
    key = (rank, price)
    target: dict[TrailKey, TrailGroup] | None = trailing.buckets.get(key)
    if target is None:
        target = trailing.buckets[key] = {}
    for bucket in taken:
        for trail, group in bucket.items():
            members = group.members
            into = target.get(trail)
            if into is None:
                new_stop = trailing_stop_price(market, next(iter(members.values())), price)
                if new_stop != group.stop_price:
                    groups.remove(group)
                    group.stop_price = new_stop
                    groups.add(group)
                for order in members.values():
                    order.hwm = price
                    order.stop_price = new_stop
                target[trail] = group
            else:
                groups.remove(group)
                stop = into.stop_price
                for order in members.values():
                    order.hwm = price
                    order.stop_price = stop
                into.members.update(members)
