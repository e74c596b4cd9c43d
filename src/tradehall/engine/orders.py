"""The engine's mutable order, owned by exactly one book or stop list."""

from __future__ import annotations

import msgspec

from tradehall.domain.enums import (
    CancelReason,
    FillOrigin,
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    Side,
    StopTrigger,
    TimeInForce,
)


class Order(msgspec.Struct, kw_only=True, gc=False):
    """An order the engine knows (resting in a book or waiting for its trigger).

    A mutable msgspec Struct rather than a `__slots__` class: construction and attribute access run
    in C (an order is created per command on the hot path), and `gc=False` keeps the collector from
    tracking it (orders hold no reference cycles).

    Holds: `hold` minor units of `hold_currency` are held for this order: at least the most its
    remaining lots can cost (cash, margin and fees, computed once at acceptance), reduced by what each
    fill actually consumes and released on close. `covered` lots are backed by the account's position
    (closing trades need no cash). `fee_accrued` is the exact fee numerator so far: each fill pays
    the increase of its ceiling, so an order's fees are rounded up once, not once per fill.

    `trigger` is a stop's trigger source (None for other orders); `updated_ts` moves on every
    acceptance, amend, trigger, fill and close; `cancel_reason` is set when it ends unfilled;
    `origin` marks the fills of an order the engine placed to close a position.

    A trailing stop keeps its trail (`trail_ppm`: trail_percent in parts per million of the price, or
    `trail_price` in ticks), its optional `activation_price` and its watermark `hwm` (the highest
    trigger price since activation for a sell, the lowest for a buy; None while it waits for its
    activation or a first price); `stop_price` is the stop the watermark gives (None while waiting).
    Contingent orders (`engine/contingent.py`): an entry (`bracket`, `oto`) keeps its exits' prices
    in book ticks (`take_profit`, `stop_loss`, `stop_loss_limit`), the ids of the exits it placed
    (`legs`) and how many of its filled lots it has handed to them (`legs_quantity`); an exit names
    its entry (`parent_order_id`) and, while both wait, its one-cancels-other sibling (`oco_with`).
    """

    order_id: int
    account_id: str
    market: str
    side: Side
    requested_side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    price: int | None
    stop_price: int | None
    quantity: int
    remaining: int
    expire_at: int | None = None
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: str | None = None
    created_ts: int = 0
    filled: int = 0
    fills_notional: int = 0
    fees_paid: int = 0
    status: OrderStatus = OrderStatus.OPEN
    in_book: bool = False
    priority: int = 0
    covered: int = 0
    hold: int = 0
    fee_accrued: int = 0
    hold_currency: str = ""
    stop_loss: int | None = None
    fee_exempt: bool = False
    trigger: StopTrigger | None = None
    updated_ts: int = 0
    cancel_reason: CancelReason | None = None
    origin: FillOrigin | None = None
    trail_ppm: int | None = None
    trail_price: int | None = None
    activation_price: int | None = None
    hwm: int | None = None
    order_class: OrderClass = OrderClass.SIMPLE
    parent_order_id: int | None = None
    take_profit: int | None = None
    stop_loss_limit: int | None = None
    legs: tuple[int, ...] = ()
    legs_quantity: int = 0
    oco_with: int | None = None


def is_contingent(order: Order) -> bool:
    """A trailing stop, or part of a bracket, oto or oco (an entry or an exit): the orders a market
    halt cancels, since they would fire or place exits on whatever price the market reopens at."""
    return order.order_class is not OrderClass.SIMPLE or order.type is OrderType.TRAILING_STOP
