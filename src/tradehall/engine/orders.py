"""The engine's mutable order: plain `__slots__` class, owned by exactly one book or stop list."""

from __future__ import annotations

from tradehall.domain.enums import OrderSide, OrderStatus, OrderType, Side, TimeInForce


class Order:
    """An order the engine knows (resting in a book or waiting for its trigger).

    Holds: `hold` minor units of `hold_currency` are held for this order: at least the most its
    remaining lots can cost (cash, margin and fees, computed once at acceptance), reduced by what each
    fill actually consumes and released on close. `covered` lots are backed by the account's position
    (closing trades need no cash). `fee_accrued` is the exact fee numerator so far: each fill pays
    the increase of its ceiling, so an order's fees are rounded up once, not once per fill.
    """

    __slots__ = (
        "account_id",
        "client_order_id",
        "covered",
        "created_ts",
        "expire_at",
        "fee_accrued",
        "fees_paid",
        "filled",
        "fills_notional",
        "hold",
        "hold_currency",
        "in_book",
        "market",
        "order_id",
        "post_only",
        "price",
        "priority",
        "quantity",
        "reduce_only",
        "remaining",
        "requested_side",
        "side",
        "status",
        "stop_price",
        "time_in_force",
        "type",
    )

    def __init__(
        self,
        *,
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
        expire_at: int | None,
        post_only: bool,
        reduce_only: bool,
        client_order_id: str | None,
        created_ts: int,
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
        self.remaining = quantity
        self.filled = 0
        self.fills_notional = 0
        self.fees_paid = 0
        self.expire_at = expire_at
        self.post_only = post_only
        self.reduce_only = reduce_only
        self.client_order_id = client_order_id
        self.created_ts = created_ts
        self.status = OrderStatus.OPEN
        self.in_book = False
        self.priority = 0
        self.covered = 0
        self.hold = 0
        self.fee_accrued = 0
        self.hold_currency = ""

    def __repr__(self) -> str:
        return (
            f"Order({self.order_id}, {self.account_id}, {self.side}, {self.price}, "
            f"{self.remaining}/{self.quantity}, {self.status})"
        )
