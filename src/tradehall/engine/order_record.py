"""An order as snapshots keep it: a msgspec Struct with the fields of the engine's `orders.Order`.

The engine works on `orders.Order`, a plain class (a native class in the compiled build, where a
Struct's fields would be read through generic attribute lookups); a snapshot writes each order as this
Struct and a restore converts it back (`orders.record_of`, `orders.order_of`), so the snapshot's bytes
are what they were when `Order` itself was this Struct. A module of its own because it defines a
msgspec Struct, which the compiled build leaves interpreted (Makefile `COMPILED_SKIP`).
"""

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


class OrderRecord(msgspec.Struct, kw_only=True, gc=False):
    """An order the engine knows (resting in a book or waiting for its trigger), as a snapshot holds it.

    The field order is the snapshot's byte order: add a field at the end, with a default. What each
    field means: `orders.Order`.
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



class StructOrder(OrderRecord, kw_only=True, gc=False):
    """`orders.Order` in the interpreted build (see `orders.py`): this Struct's constructor and copy run
    in C, where the plain class's `__init__` of 43 fields would be Python bytecode on every placement."""

    def copy(self) -> StructOrder:
        return msgspec.structs.replace(self)
