"""The stop book of one market: the stops waiting for their trigger, and trailing stops' watermarks.

Stops wait in one sorted list per side, grouped by trigger source (`TRIGGER_RANK`), then by stop
price: the stops a source's price has reached are one contiguous run of its group (found by
bisection). A trailing stop is in that list too, under its current stop price, and also in a
second list per side keyed by its watermark: the trailing stops a new price moves (a sell's high
below the price, a buy's low above it) are one contiguous run of that list, so a price update costs
in proportion to the stops it moves, and a stop is re-keyed in the stop list only when its stop
price changes. A trailing stop that waits for its activation price (or for a first price of its
source) is in a third list per side keyed by the activation price, found the same way.
"""

from __future__ import annotations

from sortedcontainers import SortedKeyList

from tradehall.domain.enums import StopTrigger
from tradehall.engine.constants import BUY, TRAILING_STOP_ORDER
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


def _watermark_key(order: Order) -> tuple[int, int, int]:
    assert order.hwm is not None
    return TRIGGER_RANK[order.trigger], order.hwm, order.order_id


def _sell_activation_key(order: Order) -> tuple[int, int, int]:
    activation = order.activation_price
    return TRIGGER_RANK[order.trigger], 0 if activation is None else activation, order.order_id


def _buy_activation_key(order: Order) -> tuple[int, int, int]:
    activation = order.activation_price
    return TRIGGER_RANK[order.trigger], ANY_PRICE_BUY if activation is None else activation, order.order_id


class StopBook:
    """`buy`/`sell`: stops by (source, stop price, id); `trailing_*`: active trailing stops by
    (source, watermark, id); `waiting_*`: trailing stops not yet active, by (source, activation
    price, id): a sell activates when the price reaches its activation price from below, a buy from
    above (without one, at the first price). `size` counts every order here; `trailing` the
    trailing stops among them (a market without any skips the watermark step)."""

    __slots__ = (
        "buy",
        "sell",
        "size",
        "trailing",
        "trailing_buy",
        "trailing_sell",
        "waiting_buy",
        "waiting_sell",
    )

    def __init__(self) -> None:
        self.buy: SortedKeyList = SortedKeyList(key=_stop_key)
        self.sell: SortedKeyList = SortedKeyList(key=_stop_key)
        self.trailing_buy: SortedKeyList = SortedKeyList(key=_watermark_key)
        self.trailing_sell: SortedKeyList = SortedKeyList(key=_watermark_key)
        self.waiting_buy: SortedKeyList = SortedKeyList(key=_buy_activation_key)
        self.waiting_sell: SortedKeyList = SortedKeyList(key=_sell_activation_key)
        self.size = 0
        self.trailing = 0

    def add(self, order: Order) -> None:
        """Put a pending stop where it waits (by its kind and, for a trailing stop, its watermark)."""
        self.size += 1
        buy = order.side is BUY
        if order.type is TRAILING_STOP_ORDER:
            self.trailing += 1
            if order.hwm is None:
                (self.waiting_buy if buy else self.waiting_sell).add(order)
                return
            (self.trailing_buy if buy else self.trailing_sell).add(order)
        (self.buy if buy else self.sell).add(order)

    def remove(self, order: Order) -> None:
        """Take a pending stop out (before its keys change, or when it fires or ends)."""
        self.size -= 1
        buy = order.side is BUY
        if order.type is TRAILING_STOP_ORDER:
            self.trailing -= 1
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
