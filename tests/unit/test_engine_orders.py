"""The engine's `Order` (a plain class, native when compiled), its interpreted twin and its snapshot record.

`orders.PlainOrder` (the class the compiled build makes native), `order_record.StructOrder` (what
`Order` is bound to when interpreted) and `order_record.OrderRecord` (what a snapshot writes) must
agree field by field: the same names, the same defaults, and a snapshot's bytes must not depend on
which of the two the engine ran with.
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
from tradehall.engine import orders
from tradehall.engine.order_record import OrderRecord, StructOrder
from tradehall.engine.orders import Order, PlainOrder, order_of, record_of

REQUIRED = {
    "order_id": 7,
    "account_id": "a",
    "market": "BTC-USD",
    "side": Side.SELL,
    "requested_side": OrderSide.SELL,
    "type": OrderType.LIMIT,
    "time_in_force": TimeInForce.GTC,
    "price": 10_100,
    "stop_price": None,
    "quantity": 5,
    "remaining": 5,
}
# every field away from its default
EVERYTHING = {
    **REQUIRED,
    "expire_at": 99,
    "post_only": True,
    "reduce_only": True,
    "client_order_id": "c-1",
    "created_ts": 3,
    "filled": 2,
    "fills_notional": 20_200,
    "fees_paid": 4,
    "status": OrderStatus.PARTIALLY_FILLED,
    "in_book": True,
    "priority": 11,
    "covered": 1,
    "hold": 300,
    "fee_accrued": 123,
    "hold_currency": "USD",
    "stop_loss": 9_000,
    "fee_exempt": True,
    "trigger": StopTrigger.MARK,
    "updated_ts": 4,
    "cancel_reason": CancelReason.USER,
    "origin": FillOrigin.LIQUIDATION,
    "trail_ppm": 10_000,
    "trail_price": 5,
    "activation_price": 10_200,
    "hwm": 10_300,
    "order_class": OrderClass.BRACKET,
    "parent_order_id": 2,
    "take_profit": 11_000,
    "stop_loss_limit": 8_900,
    "legs": (8, 9),
    "legs_quantity": 2,
    "oco_with": 8,
}


def test_each_build_binds_its_own_order_class() -> None:
    """Compiled, the engine works on the native class; interpreted, on the Struct twin."""
    compiled = not str(orders.__file__).endswith(".py")
    assert Order is (PlainOrder if compiled else StructOrder)


def test_the_plain_class_the_twin_and_the_record_have_the_same_fields() -> None:
    slots = getattr(PlainOrder, "__slots__", None)  # the compiled class keeps its fields in C instead
    if slots is not None:
        assert sorted(slots) == sorted(OrderRecord.__struct_fields__)
    assert StructOrder.__struct_fields__ == OrderRecord.__struct_fields__
    assert sorted(EVERYTHING) == sorted(OrderRecord.__struct_fields__)


def test_defaults_agree_so_a_snapshot_does_not_depend_on_the_build() -> None:
    plain = msgspec.msgpack.encode(record_of(PlainOrder(**REQUIRED)))  # type: ignore[arg-type]
    assert plain == msgspec.msgpack.encode(OrderRecord(**REQUIRED))  # type: ignore[arg-type]
    assert plain == msgspec.msgpack.encode(StructOrder(**REQUIRED))  # type: ignore[arg-type]


def test_every_field_survives_the_snapshot_round_trip_and_copy() -> None:
    record = OrderRecord(**EVERYTHING)  # type: ignore[arg-type]
    decoded = msgspec.convert(msgspec.msgpack.decode(msgspec.msgpack.encode(record)), OrderRecord)
    order = order_of(decoded)
    assert isinstance(order, Order)
    assert record_of(order) == record
    assert record_of(order.copy()) == record
    plain = PlainOrder(**EVERYTHING)  # type: ignore[arg-type]
    assert record_of(plain.copy()) == record


def test_a_copy_is_a_new_object_that_changes_alone() -> None:
    for cls in (PlainOrder, StructOrder):
        order = cls(**REQUIRED)  # type: ignore[arg-type]
        copy = order.copy()
        copy.price = 10_200
        copy.remaining = 3
        assert copy is not order
        assert (order.price, order.remaining) == (10_100, 5)
