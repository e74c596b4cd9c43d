"""Why orders end: one reason per end state and refusal, price protection, updated_ts, client ids."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from tests.engine_support import (
    engine_with,
    expect_no_rejection,
    of_type,
    one,
    order_id,
    perp_spec,
    place,
    spot_spec,
)
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import (
    AccountKind,
    CancelReason,
    FillOrigin,
    MarketStatus,
    OrderStatus,
    TimeInForce,
    Venue,
)
from tradehall.domain.errors import Code
from tradehall.domain.tiers import TierSpec
from tradehall.engine import Engine, EngineConfig

RICH = {"USD": "10000000", "BTC": "100"}
DAY_NS = 86_400 * 10**9
T0 = 1_900_000_000 * 10**9  # a fixed instant: the engine reads time only from commands


def book(**spec: object) -> Engine:
    return engine_with(spot_spec(maker_fee=D("0"), taker_fee=D("0"), **spec), accounts={"a": RICH, "b": RICH})


def market_order(
    engine: Engine, account: str, side: str, quantity: str, **fields: object
) -> list[ev.AnyEvent]:
    return place(engine, account, "BTC-USD", side, quantity, None, type="market", **fields)


# --- each end state and its reason -------------------------------------------------------------


def _user(engine: Engine) -> list[ev.AnyEvent]:
    resting = order_id(place(engine, "b", "BTC-USD", "buy", "0.1", "90"))
    return engine.apply(c.CancelOrder(order_id=resting))


def _ioc(engine: Engine) -> list[ev.AnyEvent]:
    place(engine, "a", "BTC-USD", "sell", "0.1", "100")
    return place(engine, "b", "BTC-USD", "buy", "0.3", "100", time_in_force=TimeInForce.IOC)


def _fok(engine: Engine) -> list[ev.AnyEvent]:
    place(engine, "a", "BTC-USD", "sell", "0.1", "100")
    return place(engine, "b", "BTC-USD", "buy", "0.3", "100", time_in_force=TimeInForce.FOK)


def _market_remainder(engine: Engine) -> list[ev.AnyEvent]:
    place(engine, "a", "BTC-USD", "sell", "0.1", "100")
    return market_order(engine, "b", "buy", "0.3")  # the book runs out inside the band


def _price_protection(engine: Engine) -> list[ev.AnyEvent]:
    place(engine, "a", "BTC-USD", "sell", "0.1", "100")
    place(engine, "a", "BTC-USD", "sell", "0.1", "105")  # exactly the band: 100 x 1.05
    place(engine, "a", "BTC-USD", "sell", "0.5", "105.01")  # beyond it
    return market_order(engine, "b", "buy", "0.5")


def _self_trade(engine: Engine) -> list[ev.AnyEvent]:
    place(engine, "a", "BTC-USD", "sell", "0.1", "100")
    return place(engine, "a", "BTC-USD", "buy", "0.1", "100")  # cancel_newest: the taker goes


def _amended_to_filled(engine: Engine) -> list[ev.AnyEvent]:
    resting = order_id(place(engine, "b", "BTC-USD", "buy", "0.3", "100"))
    place(engine, "a", "BTC-USD", "sell", "0.1", "100")
    return engine.apply(c.AmendOrder(order_id=resting, quantity=D("0.1")))


def _market_closed(engine: Engine) -> list[ev.AnyEvent]:
    place(engine, "b", "BTC-USD", "buy", "0.1", "90")
    return engine.apply(c.SetMarketStatus(market="BTC-USD", status=MarketStatus.CLOSED))


def _market_halted(engine: Engine) -> list[ev.AnyEvent]:
    place(engine, "b", "BTC-USD", "buy", "0.1", "90")  # a plain order waits through the halt
    bracket = {"order_class": "bracket", "take_profit": D("95"), "stop_loss": D("85")}
    expect_no_rejection(place(engine, "b", "BTC-USD", "buy", "0.1", "89", **bracket))
    return engine.apply(c.SetMarketStatus(market="BTC-USD", status=MarketStatus.HALTED))


# scenario, reason, filled lots of the order that ended
END_TABLE: list[tuple[Callable[[Engine], list[ev.AnyEvent]], CancelReason, int]] = [
    (_user, CancelReason.USER, 0),
    (_ioc, CancelReason.IOC_REMAINDER, 1000),
    (_fok, CancelReason.FOK_UNFILLED, 0),
    (_market_remainder, CancelReason.MARKET_REMAINDER, 1000),
    (_price_protection, CancelReason.PRICE_PROTECTION, 2000),
    (_self_trade, CancelReason.SELF_TRADE, 0),
    (_amended_to_filled, CancelReason.AMENDED_TO_FILLED, 1000),
    (_market_closed, CancelReason.MARKET_CLOSED, 0),
    (_market_halted, CancelReason.MARKET_HALTED, 0),
]


@pytest.mark.parametrize(("scenario", "reason", "filled"), END_TABLE, ids=[r.value for _, r, _ in END_TABLE])
def test_every_order_ending_unfilled_carries_its_reason(
    scenario: Callable[[Engine], list[ev.AnyEvent]], reason: CancelReason, filled: int
) -> None:
    engine = book()
    kept: dict[int, object] = {}
    original = engine.lifecycle.close  # the Order objects leave the engine when they end: keep them to look

    def spy(order, account, market, why):  # type: ignore[no-untyped-def]
        kept[order.order_id] = order
        original(order, account, market, why)

    engine.lifecycle.close = spy  # type: ignore[method-assign]
    events = expect_no_rejection(scenario(engine))
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.reason, cancelled.filled_quantity) == (reason, filled)
    order = kept[cancelled.order_id]
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, reason)  # type: ignore[attr-defined]


def test_an_expired_order_carries_expired() -> None:
    engine = book()
    engine.apply(c.AdvanceTime(ts=T0))
    events = place(engine, "b", "BTC-USD", "buy", "0.1", "90", time_in_force=TimeInForce.DAY)
    order = engine.orders[order_id(events)]
    expired = one(engine.apply(c.AdvanceTime(ts=T0 + DAY_NS)), ev.OrderExpired)
    assert expired.order_id == order.order_id
    assert (order.status, order.cancel_reason, order.updated_ts) == (
        OrderStatus.EXPIRED,
        CancelReason.EXPIRED,
        T0 + DAY_NS,
    )


# --- refusals and their reject_reason ------------------------------------------------------------


def _post_only(engine: Engine) -> list[ev.AnyEvent]:
    place(engine, "a", "BTC-USD", "sell", "0.1", "100")
    return place(engine, "b", "BTC-USD", "buy", "0.1", "100", post_only=True)


def _closed(engine: Engine) -> list[ev.AnyEvent]:
    engine.apply(c.SetMarketStatus(market="BTC-USD", status=MarketStatus.CLOSED))
    return place(engine, "b", "BTC-USD", "buy", "0.1", "90")


def _unfunded(engine: Engine) -> list[ev.AnyEvent]:
    return place(engine, "b", "BTC-USD", "buy", "1000", "100000")


REFUSAL_TABLE: list[tuple[Callable[[Engine], list[ev.AnyEvent]], Code, CancelReason | None]] = [
    (_post_only, Code.INVALID_ORDER, CancelReason.POST_ONLY),
    (_closed, Code.MARKET_CLOSED, CancelReason.MARKET_CLOSED),
    (_unfunded, Code.INSUFFICIENT_BALANCE, None),  # no end reason: the code says it
]


@pytest.mark.parametrize(
    ("scenario", "code", "reason"), REFUSAL_TABLE, ids=["post_only", "closed", "unfunded"]
)
def test_refusals_carry_a_reject_reason_where_one_names_them(
    scenario: Callable[[Engine], list[ev.AnyEvent]], code: Code, reason: CancelReason | None
) -> None:
    rejected = one(scenario(book()), ev.OrderRejected)
    assert (rejected.code, rejected.reject_reason) == (code, reason)


def test_a_reduce_only_order_that_would_grow_the_position_is_refused_with_reduce_only() -> None:
    engine = engine_with(perp_spec(), accounts={"a": {"USD": "100000"}})
    rejected = one(place(engine, "a", "BTC-PERP", "buy", "0.1", "100", reduce_only=True), ev.OrderRejected)
    assert (rejected.code, rejected.reject_reason) == (Code.INVALID_ORDER, CancelReason.REDUCE_ONLY)


# --- price protection ----------------------------------------------------------------------------


def test_the_issue_half_btc_market_buy_stops_at_the_band_instead_of_sweeping_the_book() -> None:
    engine = book(tick_size=D("0.01"))
    for price, quantity in (("64000", "0.1"), ("64100", "0.1"), ("67200", "0.1"), ("70000", "0.5")):
        place(engine, "a", "BTC-USD", "sell", quantity, price)
    events = expect_no_rejection(market_order(engine, "b", "buy", "0.5"))  # band: 64000 x 1.05 = 67200
    taker = [(f.price, f.quantity) for f in of_type(events, ev.OrderFilled) if f.account_id == "b"]
    assert taker == [(6_400_000, 1000), (6_410_000, 1000), (6_720_000, 1000)]
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.reason, cancelled.filled_quantity) == (CancelReason.PRICE_PROTECTION, 3000)
    assert engine.markets["BTC-USD"].book.depth()[1] == [(7_000_000, 5000)]


def test_a_market_sell_stops_at_the_band_below_the_best_bid_rounded_toward_it() -> None:
    engine = book(price_protection=D("0.1"))
    place(engine, "a", "BTC-USD", "buy", "0.1", "100.05")
    place(engine, "a", "BTC-USD", "buy", "0.1", "90.05")  # band: 100.05 x 0.9 = 90.045 -> 90.05
    place(engine, "a", "BTC-USD", "buy", "0.1", "90.04")
    events = expect_no_rejection(market_order(engine, "b", "sell", "0.3"))
    taker = [(f.price, f.quantity) for f in of_type(events, ev.OrderFilled) if f.account_id == "b"]
    assert taker == [(10_005, 1000), (9_005, 1000)]
    assert one(events, ev.OrderCancelled).reason is CancelReason.PRICE_PROTECTION


def test_without_price_protection_a_market_order_sweeps_the_book() -> None:
    engine = book(price_protection=None)
    place(engine, "a", "BTC-USD", "sell", "0.1", "100")
    place(engine, "a", "BTC-USD", "sell", "0.1", "200")
    events = expect_no_rejection(market_order(engine, "b", "buy", "0.2"))
    assert [f.price for f in of_type(events, ev.OrderFilled) if f.account_id == "b"] == [10_000, 20_000]
    assert not of_type(events, ev.OrderCancelled)


def test_a_quote_venue_market_order_takes_no_level_beyond_the_band() -> None:
    spec = spot_spec(venue=Venue.QUOTE, maker_fee=D("0"), taker_fee=D("0"), slippage=D("0"))
    engine = engine_with(spec, accounts={"a": RICH})
    quote = c.Quote(market="BTC-USD", asks=((D("64000"), D("0.1")), (D("70000"), D("1"))), bid=D("63990"))
    expect_no_rejection(engine.apply(quote))
    events = expect_no_rejection(market_order(engine, "a", "buy", "0.5"))
    assert [(f.price, f.quantity) for f in of_type(events, ev.OrderFilled)] == [(6_400_000, 1000)]
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.reason, cancelled.filled_quantity) == (CancelReason.PRICE_PROTECTION, 1000)


def test_a_price_protection_outside_zero_to_one_is_refused() -> None:
    engine = Engine()
    rejected = one(engine.apply(c.CreateMarket(spec=spot_spec(price_protection=D("1")))), ev.CommandRejected)
    assert rejected.code is Code.INVALID_REQUEST


# --- updated_ts ----------------------------------------------------------------------------------


def test_updated_ts_moves_on_every_fill_amend_and_cancel() -> None:
    engine = book()
    engine.apply(c.AdvanceTime(ts=T0))
    order = engine.orders[order_id(place(engine, "b", "BTC-USD", "buy", "0.3", "100"))]
    assert (order.created_ts, order.updated_ts) == (T0, T0)
    engine.apply(
        c.PlaceOrder(
            account_id="a", market="BTC-USD", side="sell", quantity=D("0.1"), price=D("100"), ts=T0 + 1
        )
    )  # type: ignore[arg-type]
    assert order.updated_ts == T0 + 1
    expect_no_rejection(engine.apply(c.AmendOrder(order_id=order.order_id, quantity=D("0.2"), ts=T0 + 2)))
    assert order.updated_ts == T0 + 2
    expect_no_rejection(engine.apply(c.CancelOrder(order_id=order.order_id, ts=T0 + 3)))
    assert (order.updated_ts, order.cancel_reason, order.created_ts) == (T0 + 3, CancelReason.USER, T0)


# --- client_order_id ------------------------------------------------------------------------------


def test_a_repeated_client_order_id_must_repeat_the_parameters_also_after_a_restart() -> None:
    engine = book()
    first = order_id(place(engine, "b", "BTC-USD", "buy", "0.1", "90", client_order_id="k-1"))
    assert place(engine, "b", "BTC-USD", "buy", "0.10", "90.0", client_order_id="k-1") == []
    restored = Engine.restore(engine.snapshot())
    for target in (engine, restored):
        for changed in ({"quantity": "0.2"}, {"price": "91"}, {"time_in_force": TimeInForce.IOC}):
            fields: dict[str, object] = {"quantity": "0.1", "price": "90", **changed}
            quantity, price = str(fields.pop("quantity")), str(fields.pop("price"))
            events = place(target, "b", "BTC-USD", "buy", quantity, price, client_order_id="k-1", **fields)
            rejected = one(events, ev.OrderRejected)
            assert rejected.code is Code.CONFLICT
            assert rejected.reason == (
                "client_order_id 'k-1' belongs to order 1, placed with different parameters"
            )
        assert target.order_id_for("b", "k-1") == first


def test_a_refused_order_leaves_its_client_order_id_free() -> None:
    engine = book()
    one(place(engine, "b", "BTC-USD", "buy", "1000", "100000", client_order_id="k-2"), ev.OrderRejected)
    expect_no_rejection(place(engine, "b", "BTC-USD", "buy", "0.1", "90", client_order_id="k-2"))


# --- fills of engine close-outs ---------------------------------------------------------------------


def test_a_liquidation_cancels_with_liquidation_and_marks_the_closing_fill() -> None:
    engine = engine_with(perp_spec(), accounts={"a": {"USD": "1100"}, "b": {"USD": "1000000"}})
    expect_no_rejection(place(engine, "b", "BTC-PERP", "short", "1", "10000"))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "long", "1", "10000"))
    resting = order_id(expect_no_rejection(place(engine, "a", "BTC-PERP", "buy", "0.001", "9000")))
    expect_no_rejection(place(engine, "b", "BTC-PERP", "buy", "1", "9360"))  # the book absorbs it
    events = expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-PERP", price=D("9370"))))
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.order_id, cancelled.reason) == (resting, CancelReason.LIQUIDATION)
    fills = {f.account_id: f for f in of_type(events, ev.OrderFilled)}
    assert (fills["a"].price, fills["a"].quantity, fills["a"].origin) == (
        18_720,
        1000,
        FillOrigin.LIQUIDATION,
    )
    assert fills["b"].origin is None  # the other side traded an ordinary order


PRAGUE = ZoneInfo("Europe/Prague")


def test_an_ended_assessment_cancels_with_assessment_ended_and_refuses_new_orders() -> None:
    tier = TierSpec(name="t", starting_balance=D("10000"), min_trading_days=0)
    engine = Engine(EngineConfig(tiers={"t": tier}))
    spec = perp_spec(
        venue=Venue.QUOTE,
        tick_size=D("1"),
        lot_size=D("0.01"),
        maker_fee=D("0"),
        taker_fee=D("0"),
        slippage=D("0"),
        max_leverage=D("100"),
        quote_max_age_ms=10**12,
    )
    start = int(datetime(2026, 1, 5, 12, tzinfo=PRAGUE).timestamp()) * 10**9
    expect_no_rejection(engine.apply(c.AdvanceTime(ts=start)))
    expect_no_rejection(engine.apply(c.CreateMarket(spec=spec)))
    expect_no_rejection(
        engine.apply(c.OpenAccount(account_id="p", owner="p", kind=AccountKind.ASSESSMENT, tier="t"))
    )
    expect_no_rejection(engine.apply(c.Quote(market="BTC-PERP", bid=D("10000"), ask=D("10000"), ts=start)))
    expect_no_rejection(place(engine, "p", "BTC-PERP", "buy", "1", None, type="market"))
    resting = order_id(expect_no_rejection(place(engine, "p", "BTC-PERP", "buy", "0.1", "5000")))
    events = expect_no_rejection(
        engine.apply(c.Quote(market="BTC-PERP", bid=D("9490"), ask=D("9490"), ts=start))
    )
    assert one(events, ev.AssessmentFailed)
    cancelled = next(e for e in of_type(events, ev.OrderCancelled) if e.order_id == resting)
    assert cancelled.reason is CancelReason.ASSESSMENT_ENDED
    closing = one(events, ev.OrderFilled)
    assert (closing.account_id, closing.origin) == ("p", FillOrigin.ASSESSMENT_CLOSE)
    rejected = one(place(engine, "p", "BTC-PERP", "buy", "0.1", "5000"), ev.OrderRejected)
    assert (rejected.code, rejected.reject_reason) == (Code.ACCOUNT_NOT_ACTIVE, CancelReason.ASSESSMENT_ENDED)
