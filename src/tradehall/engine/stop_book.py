"""The stop book of one market: the stops waiting for their trigger, and trailing stops' watermarks.

Stops wait in one sorted list per side, grouped by trigger source (`TRIGGER_RANK`), then by stop
price: the stops a source's price has reached are one contiguous run of its group (found by
bisection). An active trailing stop is in the side's `Watermarks` instead: buckets of the trailing
stops that share a watermark, sorted by (source, watermark), each split into `TrailGroup`s by trail.
A group's members share one stop price, so the group (not each stop) sits in a sorted list by
(source, stop price), scanned like the stop list. The stops a new price moves (a sell's high below
the price, a buy's low above it) are the buckets of one contiguous key range; their groups re-key
once each (or merge into the group of the same trail at the new watermark), so a new high costs a
bisection plus one re-key per distinct trail and two attribute writes per stop it moves.
A trailing stop that waits for its activation price (or for a first price of its
source) is in a third list per side keyed by the activation price, found the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from sortedcontainers import SortedDict, SortedKeyList

from tradehall.domain.enums import OrderSide, StopTrigger
from tradehall.engine.constants import BUY, TRAILING_STOP_ORDER, TRIGGER_LAST
from tradehall.engine.orders import Order

TRIGGER_RANK: Final[dict[StopTrigger | None, int]] = {
    StopTrigger.LAST: 0,
    StopTrigger.MARK: 1,
    StopTrigger.BID_ASK: 2,
}
"""The group of each trigger source in the sorted lists."""

ANY_PRICE_BUY: Final = 1 << 62
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


TrailKey = tuple[int | None, int | None, OrderSide]
"""What a trailing stop's stop depends on besides its side and watermark: (trail_price, trail_ppm,
requested side), so the stops of one side, source, watermark and key share one stop price."""


def trail_key(order: Order) -> TrailKey:
    return order.trail_price, order.trail_ppm, order.requested_side


class TrailGroup:
    """The active trailing stops of one side that share source, watermark and trail, so one stop
    price: a new watermark re-keys the group once in the side's sorted group list, not each stop."""

    __slots__ = ("members", "rank", "seq", "stop_price")

    def __init__(self, rank: int, stop_price: int, seq: int) -> None:
        self.rank = rank
        self.stop_price = stop_price
        self.seq = seq
        self.members: dict[int, Order] = {}


def _group_key(group: TrailGroup) -> tuple[int, int, int]:
    return group.rank, group.stop_price, group.seq


class Watermarks:
    """The active trailing stops of one side in buckets by (source rank, watermark), each bucket a dict
    of `TrailGroup`s by trail key; `groups` has every group by (source, stop price, seq), which is how
    the trigger scan finds reached ones. The order of a bucket's dicts is never relied upon (fired
    stops are sorted by id), so a restored book need not rebuild it in the same order."""

    __slots__ = ("buckets", "groups", "seq", "size")

    def __init__(self) -> None:
        self.buckets: SortedDict = SortedDict()
        self.groups: SortedKeyList = SortedKeyList(key=_group_key)
        self.seq = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[Order]:
        for bucket in self.buckets.values():
            for group in bucket.values():
                yield from group.members.values()

    def new_group(self, rank: int, stop_price: int) -> TrailGroup:
        self.seq += 1
        return TrailGroup(rank, stop_price, self.seq)

    def add(self, order: Order) -> None:
        assert order.stop_price is not None
        rank = TRIGGER_RANK[order.trigger]
        key = (rank, order.hwm)
        bucket: dict[TrailKey, TrailGroup] | None = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = {}
        trail = trail_key(order)
        group = bucket.get(trail)
        if group is None:
            group = bucket[trail] = self.new_group(rank, order.stop_price)
            self.groups.add(group)
        group.members[order.order_id] = order
        self.size += 1

    def remove(self, order: Order) -> None:
        key = (TRIGGER_RANK[order.trigger], order.hwm)
        bucket: dict[TrailKey, TrailGroup] = self.buckets[key]
        trail = trail_key(order)
        group = bucket[trail]
        del group.members[order.order_id]
        if not group.members:
            self.groups.remove(group)
            del bucket[trail]
            if not bucket:
                del self.buckets[key]
        self.size -= 1

    def take(self, low: tuple[int, ...], high: tuple[int, ...]) -> list[dict[TrailKey, TrailGroup]]:
        """Remove the buckets whose keys lie in [low, high) and return them (their groups stay in
        `groups` until re-keyed)."""
        buckets = self.buckets
        start, stop = buckets.bisect_left(low), buckets.bisect_left(high)
        if start >= stop:
            return []
        return [buckets.pop(key) for key in buckets.keys()[start:stop]]


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
            return
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
            return
        (self.buy if buy else self.sell).remove(order)

    def orders(self) -> list[Order]:
        """Every stop here (in no particular order)."""
        return [
            *self.buy,
            *self.sell,
            *self.trailing_buy,
            *self.trailing_sell,
            *self.waiting_buy,
            *self.waiting_sell,
        ]
