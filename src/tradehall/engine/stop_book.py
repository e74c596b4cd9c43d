"""The stop book of one market: the stops waiting for their trigger, and trailing stops' watermarks.

Stops wait in one sorted list per side, grouped by trigger source (`TRIGGER_RANK`), then by stop
price: the stops a source's price has reached are one contiguous run of its group (found by
bisection). A trailing stop is in that list too, under its current stop price, and also in the
side's `Watermarks`: buckets of the trailing stops that share a watermark, sorted by (source,
watermark). The stops a new price moves (a sell's high below the price, a buy's low above it) are
the buckets of one contiguous key range; they merge into the one bucket of the new watermark, so a
price update costs a bisection plus, per stop it moves, its new stop (re-keyed in the stop list only
when it changes). A trailing stop that waits for its activation price (or for a first price of its
source) is in a third list per side keyed by the activation price, found the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedDict, SortedKeyList

from tradehall.domain.enums import StopTrigger
from tradehall.engine.constants import BUY, TRAILING_STOP_ORDER, TRIGGER_LAST
from tradehall.engine.orders import Order

TRIGGER_RANK: dict[StopTrigger | None, int] = {
    StopTrigger.LAST: 0,
    StopTrigger.MARK: 1,
    StopTrigger.BID_ASK: 2,
}
"""The group of each trigger source in the sorted lists."""

ANY_PRICE_BUY = 1 << 62
"""A waiting buy without an activation price activates at the first price (at or below this)."""


def _stop_key(order: Order) -> tuple[int, int, int]:
    assert order.stop_price is not None
    return TRIGGER_RANK[order.trigger], order.stop_price, order.order_id


def _sell_activation_key(order: Order) -> tuple[int, int, int]:
    activation = order.activation_price
    return TRIGGER_RANK[order.trigger], 0 if activation is None else activation, order.order_id


def _buy_activation_key(order: Order) -> tuple[int, int, int]:
    activation = order.activation_price
    return TRIGGER_RANK[order.trigger], ANY_PRICE_BUY if activation is None else activation, order.order_id


class Watermarks:
    """The active trailing stops of one side in buckets by (source rank, watermark), each bucket a dict
    by order id. The order of a bucket's dict is never relied upon (moved stops are handled as a set,
    fired ones are sorted by id), so a restored book need not rebuild it in the same order."""

    __slots__ = ("buckets", "size")

    def __init__(self) -> None:
        self.buckets: SortedDict = SortedDict()
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[Order]:
        for bucket in self.buckets.values():
            yield from bucket.values()

    def add(self, order: Order) -> None:
        key = (TRIGGER_RANK[order.trigger], order.hwm)
        bucket: dict[int, Order] | None = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = {}
        bucket[order.order_id] = order
        self.size += 1

    def remove(self, order: Order) -> None:
        key = (TRIGGER_RANK[order.trigger], order.hwm)
        bucket: dict[int, Order] = self.buckets[key]
        del bucket[order.order_id]
        if not bucket:
            del self.buckets[key]
        self.size -= 1

    def take(self, low: tuple[int, ...], high: tuple[int, ...]) -> dict[int, Order] | None:
        """Remove the buckets whose keys lie in [low, high) and return their stops as one bucket."""
        buckets = self.buckets
        start, stop = buckets.bisect_left(low), buckets.bisect_left(high)
        if start >= stop:
            return None
        keys = buckets.keys()[start:stop]
        taken: dict[int, Order] = buckets.pop(keys[0])
        for key in keys[1:]:
            other: dict[int, Order] = buckets.pop(key)
            if len(other) > len(taken):
                taken, other = other, taken
            taken.update(other)
        return taken

    def put(self, rank: int, watermark: int, bucket: dict[int, Order]) -> None:
        """Put back stops taken out (their watermark now `watermark`), merging with its bucket."""
        key = (rank, watermark)
        existing: dict[int, Order] | None = self.buckets.get(key)
        if existing is None:
            self.buckets[key] = bucket
        elif len(existing) >= len(bucket):
            existing.update(bucket)
        else:
            bucket.update(existing)
            self.buckets[key] = bucket


class StopBook:
    """`buy`/`sell`: stops by (source, stop price, id); `trailing_*`: active trailing stops by
    (source, watermark); `waiting_*`: trailing stops not yet active, by (source, activation
    price, id): a sell activates when the price reaches its activation price from below, a buy from
    above (without one, at the first price). `size` counts every order here; `trailing` the
    trailing stops among them (a market without any skips the watermark step), `trailing_by_rank`
    per trigger source (a source without any is not looked at).

    `on_last` counts the stops that watch the last trade price. When every stop does, nothing but a new
    last price or a new stop can fire or move one: `quiet` (with `quiet_last`, the last price it was
    seen at) says a scan at that price found nothing, so `Stops.trigger` skips the next scans until the
    price moves or a stop is added (not part of the snapshot: a restored book scans once more)."""

    __slots__ = (
        "buy",
        "on_last",
        "quiet",
        "quiet_last",
        "sell",
        "size",
        "trailing",
        "trailing_buy",
        "trailing_by_rank",
        "trailing_sell",
        "waiting_buy",
        "waiting_sell",
    )

    def __init__(self) -> None:
        self.buy: SortedKeyList = SortedKeyList(key=_stop_key)
        self.sell: SortedKeyList = SortedKeyList(key=_stop_key)
        self.trailing_buy = Watermarks()
        self.trailing_sell = Watermarks()
        self.waiting_buy: SortedKeyList = SortedKeyList(key=_buy_activation_key)
        self.waiting_sell: SortedKeyList = SortedKeyList(key=_sell_activation_key)
        self.size = 0
        self.trailing = 0
        self.trailing_by_rank = [0] * len(TRIGGER_RANK)
        self.on_last = 0
        self.quiet = False
        self.quiet_last: int | None = None

    def add(self, order: Order) -> None:
        """Put a pending stop where it waits (by its kind and, for a trailing stop, its watermark)."""
        self.size += 1
        self.quiet = False
        if order.trigger is TRIGGER_LAST:
            self.on_last += 1
        buy = order.side is BUY
        if order.type is TRAILING_STOP_ORDER:
            self.trailing += 1
            self.trailing_by_rank[TRIGGER_RANK[order.trigger]] += 1
            if order.hwm is None:
                (self.waiting_buy if buy else self.waiting_sell).add(order)
                return
            (self.trailing_buy if buy else self.trailing_sell).add(order)
        (self.buy if buy else self.sell).add(order)

    def remove(self, order: Order) -> None:
        """Take a pending stop out (before its keys change, or when it fires or ends)."""
        self.size -= 1
        if order.trigger is TRIGGER_LAST:
            self.on_last -= 1
        buy = order.side is BUY
        if order.type is TRAILING_STOP_ORDER:
            self.trailing -= 1
            self.trailing_by_rank[TRIGGER_RANK[order.trigger]] -= 1
            if order.hwm is None:
                (self.waiting_buy if buy else self.waiting_sell).remove(order)
                return
            (self.trailing_buy if buy else self.trailing_sell).remove(order)
        (self.buy if buy else self.sell).remove(order)

    def orders(self) -> list[Order]:
        """Every stop here (in no particular order)."""
        return [
            *self.buy,
            *self.sell,
            *self.waiting_buy,
            *self.waiting_sell,
        ]
