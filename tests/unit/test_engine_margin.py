"""Perp margin: liquidation at the mark, the insurance fund, funding, leverage; pre-trade risk limits."""

from __future__ import annotations

from decimal import Decimal as D

from tests.engine_support import balance, engine_with, expect_no_rejection, of_type, one, perp_spec, place
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.engine import Engine, EngineConfig
from tradehall.engine.ledger import SYSTEM_INSURANCE


def long_one_btc(deposit: str = "1100", **spec: object) -> Engine:
    engine = engine_with(perp_spec(**spec), accounts={"a": {"USD": deposit}, "b": {"USD": "1000000"}})
    expect_no_rejection(place(engine, "b", "BTC-PERP", "short", "1", "10000"))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "long", "1", "10000"))
    return engine


def mark(engine: Engine, price: str) -> list[ev.AnyEvent]:
    return expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-PERP", price=D(price))))


def test_position_survives_a_mark_above_maintenance() -> None:
    engine = long_one_btc()
    assert balance(engine, "a") == (110_000 - 500, 100_000)
    assert not of_type(mark(engine, "9400"), ev.PositionLiquidated)  # equity 495.00 >= maintenance 470.00


def test_equity_below_maintenance_liquidates_at_the_mark() -> None:
    engine = long_one_btc()
    events = mark(engine, "9370")  # equity 465.00 < maintenance 468.50
    liquidated = one(events, ev.PositionLiquidated)
    assert (liquidated.quantity, liquidated.price, liquidated.equity, liquidated.maintenance) == (
        1_000,
        18_740,
        46_500,
        46_850,
    )
    assert liquidated.insurance_paid == 0
    assert balance(engine, "a") == (46_500, 0)
    assert engine.markets["BTC-PERP"].positions["a"].quantity == 0
    assert engine.markets["BTC-PERP"].positions[SYSTEM_INSURANCE].quantity == 1_000  # the fund takes it over
    # the book is empty: the whole position is taken over at the mark, which is no trade
    assert not of_type(events, ev.OrderFilled) and not of_type(events, ev.TradeExecuted)
    taken = one(events, ev.PositionTakenOver)
    assert (taken.quantity, taken.price, taken.pnl, taken.reason) == (1_000, 18_740, -63_000, "liquidation")
    assert all(total == 0 for total in engine.ledger.totals().values())


def test_a_gap_beyond_the_balance_is_paid_by_the_insurance_fund_and_the_account_stays_at_zero() -> None:
    engine = long_one_btc()
    liquidated = one(mark(engine, "8000"), ev.PositionLiquidated)
    assert liquidated.insurance_paid == 200_000 - 109_500
    assert balance(engine, "a") == (0, 0)
    assert balance(engine, SYSTEM_INSURANCE)[0] == -90_500
    assert all(total == 0 for total in engine.ledger.totals().values())


def test_funding_moves_rate_times_notional_from_longs_to_shorts() -> None:
    engine = long_one_btc(deposit="5000")
    mark(engine, "10000")
    events = expect_no_rejection(engine.apply(c.ApplyFunding(market="BTC-PERP", rate=D("0.0001"))))
    assert one(events, ev.FundingPaid).payments == (("a", 100), ("b", -100))
    assert balance(engine, "a")[0] == 500_000 - 500 - 100
    assert balance(engine, "b")[0] == 100_000_000 + 100


def test_funding_is_paid_at_each_configured_interval() -> None:
    hour = 3_600 * 10**9
    engine = long_one_btc(deposit="5000", funding_interval_seconds=3_600, funding_rate=D("-0.0002"))
    mark(engine, "10000")
    engine.apply(c.AdvanceTime(ts=hour // 2))  # schedules the next payment at the hour
    assert not of_type(engine.apply(c.AdvanceTime(ts=hour - 1)), ev.FundingPaid)
    events = engine.apply(c.AdvanceTime(ts=hour))
    assert one(events, ev.FundingPaid).payments == (("a", -200), ("b", 200))  # negative: shorts pay longs


def test_leverage_sets_the_initial_margin_up_to_the_market_maximum() -> None:
    engine = engine_with(perp_spec(), accounts={"a": {"USD": "3000"}, "b": {"USD": "1000000"}})
    events = expect_no_rejection(
        engine.apply(c.SetLeverage(account_id="a", market="BTC-PERP", leverage=D("5")))
    )
    assert one(events, ev.LeverageChanged).initial_margin_ppm == 200_000
    place(engine, "b", "BTC-PERP", "short", "1", "10000")
    place(engine, "a", "BTC-PERP", "long", "1", "10000")
    assert balance(engine, "a")[1] == 200_000  # 20 % of 10,000.00
    rejected = engine.apply(c.SetLeverage(account_id="a", market="BTC-PERP", leverage=D("20")))
    assert one(rejected, ev.CommandRejected).code == "risk_limit_exceeded"
    expect_no_rejection(engine.apply(c.SetLeverage(account_id="a", market="BTC-PERP", leverage=D("10"))))
    assert balance(engine, "a")[1] == 100_000  # the position's margin follows at once


def test_price_band_refuses_fat_fingers_around_the_mark() -> None:
    engine = engine_with(perp_spec(price_band=D("0.05")), accounts={"a": {"USD": "100000"}})
    mark(engine, "10000")
    assert (
        one(place(engine, "a", "BTC-PERP", "long", "1", "10600"), ev.OrderRejected).code
        == "risk_limit_exceeded"
    )
    expect_no_rejection(place(engine, "a", "BTC-PERP", "long", "1", "10400"))


def test_order_notional_and_position_limits() -> None:
    engine = engine_with(
        perp_spec(max_order_notional=D("50000"), max_position=D("2")),
        accounts={"a": {"USD": "1000000"}, "b": {"USD": "1000000"}},
    )
    assert (
        one(place(engine, "a", "BTC-PERP", "long", "6", "10000"), ev.OrderRejected).code
        == "risk_limit_exceeded"
    )
    place(engine, "b", "BTC-PERP", "short", "2", "10000")
    expect_no_rejection(place(engine, "a", "BTC-PERP", "long", "2", "10000"))
    assert (
        one(place(engine, "a", "BTC-PERP", "long", "1", "9000"), ev.OrderRejected).code
        == "position_limit_exceeded"
    )
    expect_no_rejection(place(engine, "a", "BTC-PERP", "short", "1", "11000"))  # reducing is always allowed


def test_max_open_orders_per_account() -> None:
    engine = Engine(EngineConfig(max_open_orders=2))
    engine.apply(c.CreateMarket(spec=perp_spec()))
    engine.apply(c.OpenAccount(account_id="a", owner="a"))
    engine.apply(c.Deposit(account_id="a", amount=D("100000")))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "long", "0.1", "9000"))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "long", "0.1", "9001"))
    assert (
        one(place(engine, "a", "BTC-PERP", "long", "0.1", "9002"), ev.OrderRejected).code
        == "risk_limit_exceeded"
    )
