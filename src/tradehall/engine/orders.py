"""The engine's mutable order, owned by exactly one book or stop list.

A plain class with typed attributes: in the compiled build (`make compile`) it is a native class, so
the book, holds, postings and intake read and write its fields as C struct members instead of looking
each one up by name as they would on a msgspec Struct. Snapshots keep orders as `OrderRecord` Structs
(`order_record.py`): `record_of` and `order_of` convert at that boundary, and views copy out of it
(`views._order_view`), so nothing outside the engine holds an `Order`.

Interpreted (no native modules), `Order` is bound to `order_record.StructOrder` instead: a msgspec
Struct with the same fields, defaults and `copy`, whose constructor runs in C (this class's Python
`__init__` would cost the interpreted engine about 5 % per placement). `PlainOrder` is this class in
both builds; `tests/unit/test_engine_orders.py` holds the two equal field by field, and the
compiled-vs-interpreted differential test runs one against the other.
"""

from __future__ import annotations

from types import FunctionType

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
from tradehall.engine.order_record import OrderRecord, StructOrder


class Order:
    """An order the engine knows (resting in a book or waiting for its trigger).

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
    The fields, their order and defaults are `OrderRecord`'s (a test holds them equal).
    """

    __slots__ = (
        "account_id",
        "activation_price",
        "cancel_reason",
        "client_order_id",
        "covered",
        "created_ts",
        "expire_at",
        "fee_accrued",
        "fee_exempt",
        "fees_paid",
        "filled",
        "fills_notional",
        "hold",
        "hold_currency",
        "hwm",
        "in_book",
        "legs",
        "legs_quantity",
        "market",
        "oco_with",
        "order_class",
        "order_id",
        "origin",
        "parent_order_id",
        "post_only",
        "price",
        "priority",
        "quantity",
        "reduce_only",
        "remaining",
        "requested_side",
        "side",
        "status",
        "stop_loss",
        "stop_loss_limit",
        "stop_price",
        "take_profit",
        "time_in_force",
        "trail_ppm",
        "trail_price",
        "trigger",
        "type",
        "updated_ts",
    )

    def __init__(
        self,
        order_id: int,
        account_id: str,
        market: str,
        side: Side,
        requested_side: OrderSide,
        type: OrderType,
        time_in_force: TimeInForce,
        price: int | None,
        stop_price: int | None,
        quantity: int,
        remaining: int,
        expire_at: int | None = None,
        post_only: bool = False,
        reduce_only: bool = False,
        client_order_id: str | None = None,
        created_ts: int = 0,
        filled: int = 0,
        fills_notional: int = 0,
        fees_paid: int = 0,
        status: OrderStatus = OrderStatus.OPEN,
        in_book: bool = False,
        priority: int = 0,
        covered: int = 0,
        hold: int = 0,
        fee_accrued: int = 0,
        hold_currency: str = "",
        stop_loss: int | None = None,
        fee_exempt: bool = False,
        trigger: StopTrigger | None = None,
        updated_ts: int = 0,
        cancel_reason: CancelReason | None = None,
        origin: FillOrigin | None = None,
        trail_ppm: int | None = None,
        trail_price: int | None = None,
        activation_price: int | None = None,
        hwm: int | None = None,
        order_class: OrderClass = OrderClass.SIMPLE,
        parent_order_id: int | None = None,
        take_profit: int | None = None,
        stop_loss_limit: int | None = None,
        legs: tuple[int, ...] = (),
        legs_quantity: int = 0,
        oco_with: int | None = None,
    ) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.market = market
        self.side = side
        self.requested_side = requested_side
        self.type = type
        self.time_in_force = time_in_force
        self.price = price
        self.stop_price = stop_price
        self.quantity = quantity
        self.remaining = remaining
        self.expire_at = expire_at
        self.post_only = post_only
        self.reduce_only = reduce_only
        self.client_order_id = client_order_id
        self.created_ts = created_ts
        self.filled = filled
        self.fills_notional = fills_notional
        self.fees_paid = fees_paid
        self.status = status
        self.in_book = in_book
        self.priority = priority
        self.covered = covered
        self.hold = hold
        self.fee_accrued = fee_accrued
        self.hold_currency = hold_currency
        self.stop_loss = stop_loss
        self.fee_exempt = fee_exempt
        self.trigger = trigger
        self.updated_ts = updated_ts
        self.cancel_reason = cancel_reason
        self.origin = origin
        self.trail_ppm = trail_ppm
        self.trail_price = trail_price
        self.activation_price = activation_price
        self.hwm = hwm
        self.order_class = order_class
        self.parent_order_id = parent_order_id
        self.take_profit = take_profit
        self.stop_loss_limit = stop_loss_limit
        self.legs = legs
        self.legs_quantity = legs_quantity
        self.oco_with = oco_with

    def copy(self) -> Order:
        """A field-for-field copy (an amend's trial order, a contingent leg grown into a new object)."""
        return Order(
            order_id=self.order_id,
            account_id=self.account_id,
            market=self.market,
            side=self.side,
            requested_side=self.requested_side,
            type=self.type,
            time_in_force=self.time_in_force,
            price=self.price,
            stop_price=self.stop_price,
            quantity=self.quantity,
            remaining=self.remaining,
            expire_at=self.expire_at,
            post_only=self.post_only,
            reduce_only=self.reduce_only,
            client_order_id=self.client_order_id,
            created_ts=self.created_ts,
            filled=self.filled,
            fills_notional=self.fills_notional,
            fees_paid=self.fees_paid,
            status=self.status,
            in_book=self.in_book,
            priority=self.priority,
            covered=self.covered,
            hold=self.hold,
            fee_accrued=self.fee_accrued,
            hold_currency=self.hold_currency,
            stop_loss=self.stop_loss,
            fee_exempt=self.fee_exempt,
            trigger=self.trigger,
            updated_ts=self.updated_ts,
            cancel_reason=self.cancel_reason,
            origin=self.origin,
            trail_ppm=self.trail_ppm,
            trail_price=self.trail_price,
            activation_price=self.activation_price,
            hwm=self.hwm,
            order_class=self.order_class,
            parent_order_id=self.parent_order_id,
            take_profit=self.take_profit,
            stop_loss_limit=self.stop_loss_limit,
            legs=self.legs,
            legs_quantity=self.legs_quantity,
            oco_with=self.oco_with,
        )

    def __repr__(self) -> str:
        return (
            f"Order(order_id={self.order_id}, account_id={self.account_id!r}, market={self.market!r}, "
            f"side={self.side}, type={self.type}, price={self.price}, remaining={self.remaining}, "
            f"status={self.status})"
        )


def record_of(order: Order) -> OrderRecord:
    """The order as a snapshot writes it: its fields read by name in C (`OrderRecord`'s are the list)."""
    return msgspec.convert(order, OrderRecord, from_attributes=True)


def order_of(record: OrderRecord) -> Order:
    """The engine's order from a snapshot's record."""
    return Order(**msgspec.structs.asdict(record))


PlainOrder = Order


def _native() -> bool:
    """Whether this module runs compiled (its functions are then builtins, not Python functions)."""
    return not isinstance(_native, FunctionType)


if not _native():
    globals()["Order"] = StructOrder


def is_contingent(order: Order) -> bool:
    """A trailing stop, or part of a bracket, oto or oco (an entry or an exit): the orders a market
    halt cancels, since they would fire or place exits on whatever price the market reopens at."""
    return order.order_class is not OrderClass.SIMPLE or order.type is OrderType.TRAILING_STOP
