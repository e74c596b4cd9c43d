"""A reduce-only order whose cover another fill of the same account used up ends `reduce_only`.

Found by `test_invariants_hold_after_every_command` (hypothesis 6.170.27, pinned here): a short perp
position fully reserved by a bracket's take-profit, then a plain buy of the same account fills and
closes one lot. `Holds.move_cover` took that lot's cover from the take-profit during the match, so it
was left covering 26 of its 27 lots: a reduce-only order that could open a position. After the match
it now ends `reduce_only` (and its stop-loss with it, as any end of an exit but the owner's cancel).
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from tests.engine_support import expect_no_rejection, of_type
from tests.engine_support.streams import check_invariants, setup_commands
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import CancelReason, SelfTradePrevention
from tradehall.engine import Engine


def perp(account: str, side: str, quantity: str, price: str | None, **fields: Any) -> c.PlaceOrder:
    return c.PlaceOrder(
        account_id=account, market="BTC-PERP", side=side, quantity=D(quantity),  # type: ignore[arg-type]
        price=None if price is None else D(price), **fields,
    )  # fmt: skip


def stream_engine() -> Engine:
    engine = Engine()
    for command in setup_commands(SelfTradePrevention.CANCEL_NEWEST):
        engine.apply(command)
    return engine


def test_a_bracket_exit_that_lost_its_cover_to_a_plain_fill_ends_reduce_only() -> None:
    engine = stream_engine()
    expect_no_rejection(engine.apply(perp("a", "buy", "0.029", "10000")))
    events = expect_no_rejection(
        engine.apply(
            perp("b", "sell", "0.027", None, type="market", order_class="bracket", take_profit=D("9999"),
                 stop_loss=D("10000.5"), stop_loss_limit=D("10000.5"))
        )
    )  # fmt: skip
    take, stop = (e.order_id for e in of_type(events, ev.OrderAccepted) if e.parent_order_id is not None)
    position = engine.markets["BTC-PERP"].positions["b"]
    assert (position.quantity, position.reserved_buy, engine.orders[take].covered) == (-27, 27, 27)
    plain = expect_no_rejection(engine.apply(perp("b", "buy", "0.001", "10000")))[0].order_id  # type: ignore[attr-defined]
    assert engine.orders[plain].covered == 0  # the take-profit reserves the whole position
    check_invariants(engine)
    events = expect_no_rejection(engine.apply(perp("c", "sell", "0.003", "10000")))
    assert [(e.order_id, e.quantity) for e in of_type(events, ev.OrderFilled) if e.account_id == "b"] == [
        (plain, 1)
    ]
    assert [(e.order_id, e.reason) for e in of_type(events, ev.OrderCancelled)] == [
        (take, CancelReason.REDUCE_ONLY),
        (stop, CancelReason.REDUCE_ONLY),
    ]
    assert (position.quantity, position.reserved_buy) == (-26, 0)
    assert not any(o.account_id == "b" for o in engine.orders.values())
    check_invariants(engine)


def test_a_plain_reduce_only_order_that_lost_its_cover_during_a_match_ends_reduce_only() -> None:
    engine = stream_engine()
    expect_no_rejection(engine.apply(perp("a", "buy", "0.01", "10000")))
    expect_no_rejection(engine.apply(perp("b", "sell", "0.01", "10000")))  # b short 0.01
    closing = expect_no_rejection(engine.apply(perp("b", "buy", "0.01", "9990", reduce_only=True)))
    reduce_only = closing[0].order_id  # type: ignore[attr-defined]
    plain = expect_no_rejection(engine.apply(perp("b", "buy", "0.004", "10000")))[0].order_id  # type: ignore[attr-defined]
    events = expect_no_rejection(engine.apply(perp("c", "sell", "0.004", "10000")))
    assert [(e.order_id, e.quantity) for e in of_type(events, ev.OrderFilled) if e.account_id == "b"] == [
        (plain, 4)
    ]
    assert [(e.order_id, e.reason) for e in of_type(events, ev.OrderCancelled)] == [
        (reduce_only, CancelReason.REDUCE_ONLY)
    ]
    check_invariants(engine)
