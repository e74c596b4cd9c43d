"""Balances, holds, fees, positions and P&L with exact numbers (minor units: cents for USD)."""

from __future__ import annotations

from decimal import Decimal as D

from tests.engine_support import (
    balance,
    binary_spec,
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
from tradehall.domain.enums import CostBasis, Liquidity, MarketStatus, OrderSide, Outcome
from tradehall.engine import Engine
from tradehall.engine.ledger import SYSTEM_EXTERNAL, SYSTEM_FEES, SYSTEM_PERP_SETTLEMENT


def assert_conserved(engine: Engine) -> None:
    assert all(total == 0 for total in engine.ledger.totals().values()), engine.ledger.totals()


def test_spot_trade_moves_cash_asset_and_fees_exactly() -> None:
    engine = engine_with(spot_spec(), accounts={"a": {"USD": "100000"}, "b": {"BTC": "2"}})
    place(engine, "b", "BTC-USD", "sell", "0.5", "64000")
    assert balance(engine, "b", "BTC") == (200_000_000, 50_000_000)
    events = place(engine, "a", "BTC-USD", "buy", "0.7", "64001")
    fills = {f.liquidity: f for f in of_type(events, ev.OrderFilled)}
    assert fills[Liquidity.MAKER].fee == 3_200  # 0.1 % of 32,000.00
    assert fills[Liquidity.TAKER].fee == 6_400  # 0.2 % of 32,000.00
    assert balance(engine, "a", "BTC") == (50_000_000, 0)
    # 0.2 BTC rest at 64,001: 12,800.20 plus at most 0.2 % fee (25.61) held
    assert balance(engine, "a", "USD") == (10_000_000 - 3_200_000 - 6_400, 1_280_020 + 2_561)
    assert balance(engine, "b", "USD") == (3_200_000 - 3_200, 0)
    assert balance(engine, "b", "BTC") == (150_000_000, 0)
    assert balance(engine, SYSTEM_FEES) == (9_600, 0)
    assert balance(engine, SYSTEM_EXTERNAL) == (-10_000_000, 0)
    assert_conserved(engine)


def test_cancel_releases_the_hold_exactly() -> None:
    engine = engine_with(spot_spec(), accounts={"a": {"USD": "1000"}})
    oid = order_id(place(engine, "a", "BTC-USD", "buy", "0.01", "50000"))
    assert balance(engine, "a") == (100_000, 50_000 + 100)  # 500.00 + 0.2 % fee bound
    events = engine.apply(c.CancelOrder(order_id=oid))
    assert one(events, ev.BalanceChanged).held == 0
    assert balance(engine, "a") == (100_000, 0)


def test_order_beyond_available_balance_is_refused_and_changes_nothing() -> None:
    engine = engine_with(spot_spec(), accounts={"a": {"USD": "1000"}})
    place(engine, "a", "BTC-USD", "buy", "0.01", "50000")
    before = engine.state_hash()
    events = place(engine, "a", "BTC-USD", "buy", "0.01", "50000")
    assert one(events, ev.OrderRejected).code == "insufficient_balance"
    events = place(engine, "a", "BTC-USD", "sell", "0.01", "50000")  # holds no BTC
    assert one(events, ev.OrderRejected).code == "insufficient_balance"
    assert engine.state_hash() == before


def test_fees_are_rounded_up_once_per_order_not_per_fill() -> None:
    engine = engine_with(
        spot_spec(maker_fee=D("0"), taker_fee=D("0.001")), accounts={"a": {"BTC": "1"}, "b": {"USD": "1000"}}
    )
    for _ in range(3):
        place(engine, "a", "BTC-USD", "sell", "0.0001", "100")  # 0.01 USD notional each
    events = place(engine, "b", "BTC-USD", "buy", "0.0003", "100")
    taker_fees = [f.fee for f in of_type(events, ev.OrderFilled) if f.liquidity is Liquidity.TAKER]
    # 0.1 % of 1 cent per fill: the exact fee accrues over the order and is rounded up once, not thrice
    assert taker_fees == [1, 0, 0]
    assert balance(engine, "b") == (100_000 - 3 - 1, 0)


def test_withdraw_checks_available_and_posts_double_entry() -> None:
    engine = engine_with(spot_spec(), accounts={"a": {"USD": "100"}})
    place(engine, "a", "BTC-USD", "buy", "0.001", "50000")  # holds 50.00 + 0.10
    events = engine.apply(c.Withdraw(account_id="a", amount=D("50")))
    assert one(events, ev.CommandRejected).code == "insufficient_balance"
    expect_no_rejection(engine.apply(c.Withdraw(account_id="a", amount=D("49.90"))))
    assert balance(engine, "a") == (5_010, 5_010)
    assert_conserved(engine)


def test_average_fifo_and_lifo_realise_different_pnl() -> None:
    realised = {}
    for method in CostBasis:
        engine = engine_with(
            spot_spec(maker_fee=D("0"), taker_fee=D("0")), accounts={"m": {"USD": "100000", "BTC": "10"}}
        )
        engine.apply(c.OpenAccount(account_id="t", owner="t", cost_basis=method))
        engine.apply(c.Deposit(account_id="t", amount=D("10000")))
        for price in ("100", "110"):
            place(engine, "m", "BTC-USD", "sell", "1", price)
            place(engine, "t", "BTC-USD", "buy", "1", price)
        place(engine, "m", "BTC-USD", "buy", "1", "120")
        events = place(engine, "t", "BTC-USD", "sell", "1", "120")
        realised[method] = [f.realized_pnl for f in of_type(events, ev.OrderFilled) if f.account_id == "t"]
        position = engine.markets["BTC-USD"].positions["t"]
        assert position.quantity == 10_000
    assert realised == {CostBasis.AVERAGE: [1_500], CostBasis.FIFO: [2_000], CostBasis.LIFO: [1_000]}


def perp_engine() -> Engine:
    return engine_with(
        perp_spec(), accounts={"a": {"USD": "10000"}, "b": {"USD": "10000"}, "c": {"USD": "100000"}}
    )


def test_perp_open_holds_initial_margin_and_charges_the_taker_fee() -> None:
    engine = perp_engine()
    place(engine, "b", "BTC-PERP", "short", "1", "60000")
    # margin 10 % of 60,000.00, +1 cent of rounding slack, plus the 0.05 % fee bound
    assert balance(engine, "b") == (1_000_000, 600_001 + 3_000)
    events = place(engine, "a", "BTC-PERP", "long", "1", "60000")
    assert [f.fee for f in of_type(events, ev.OrderFilled)] == [0, 3_000]
    assert balance(engine, "a") == (1_000_000 - 3_000, 600_000)
    assert balance(engine, "b") == (1_000_000, 600_000)
    positions = {p.account_id: (p.quantity, p.cost, p.margin) for p in of_type(events, ev.PositionChanged)}
    assert positions == {"a": (1_000, 120_000_000, 600_000), "b": (-1_000, -120_000_000, 600_000)}


def test_perp_reduce_realises_pnl_and_releases_margin_then_flip_opens_the_other_side() -> None:
    engine = perp_engine()
    place(engine, "b", "BTC-PERP", "short", "1", "60000")
    place(engine, "a", "BTC-PERP", "long", "1", "60000")
    place(engine, "c", "BTC-PERP", "long", "1.5", "61000")
    events = place(engine, "a", "BTC-PERP", "sell", "0.5", "61000")
    taker = next(f for f in of_type(events, ev.OrderFilled) if f.account_id == "a")
    assert (taker.realized_pnl, taker.fee) == (50_000, 1_525)  # +500.00 gross, 0.05 % of 30,500.00
    assert balance(engine, "a") == (1_000_000 - 3_000 + 50_000 - 1_525, 300_000)
    assert balance(engine, SYSTEM_PERP_SETTLEMENT) == (-50_000, 0)
    events = place(engine, "a", "BTC-PERP", "sell", "1", "61000")  # closes 0.5 long, opens 0.5 short
    taker = next(f for f in of_type(events, ev.OrderFilled) if f.account_id == "a")
    assert taker.realized_pnl == 50_000
    position = engine.markets["BTC-PERP"].positions["a"]
    assert (position.quantity, position.cost, position.margin) == (-500, -61_000_000, 305_000)
    assert_conserved(engine)


def test_reduce_only_order_that_would_increase_the_position_is_refused() -> None:
    engine = perp_engine()
    before = engine.state_hash()
    events = place(engine, "a", "BTC-PERP", "sell", "1", "60000", reduce_only=True)
    assert one(events, ev.OrderRejected).code == "invalid_order"
    assert engine.state_hash() == before
    place(engine, "b", "BTC-PERP", "short", "1", "60000")
    place(engine, "a", "BTC-PERP", "long", "1", "60000")
    held = balance(engine, "a")[1]
    events = expect_no_rejection(place(engine, "a", "BTC-PERP", "sell", "1", "70000", reduce_only=True))
    assert balance(engine, "a")[1] == held + 3_500  # only the fee bound: the position covers it
    events = place(engine, "a", "BTC-PERP", "sell", "0.001", "70000", reduce_only=True)
    assert one(events, ev.OrderRejected).code == "invalid_order"  # the whole position is reserved


def binary_engine() -> Engine:
    return engine_with(
        binary_spec(), accounts={"a": {"USD": "100"}, "b": {"USD": "100"}, "c": {"USD": "100"}}
    )


def test_kalshi_quadratic_taker_fee_for_ten_contracts_at_fifty_cents() -> None:
    engine = binary_engine()
    place(engine, "a", "FED-CUT", "yes", "10", "0.50")
    events = place(engine, "b", "FED-CUT", "no", "10", "0.50")
    fees = {f.liquidity: f.fee for f in of_type(events, ev.OrderFilled)}
    assert fees == {Liquidity.TAKER: 18, Liquidity.MAKER: 5}  # ceil(17.5), ceil(4.375) cents


def test_yes_and_no_buyers_mint_a_pair_and_lock_one_dollar_each() -> None:
    engine = binary_engine()
    place(engine, "a", "FED-CUT", "yes", "10", "0.40")
    events = place(engine, "b", "FED-CUT", "no", "10", "0.60")  # a YES sell at 0.40
    trade = one(events, ev.TradeExecuted)
    assert (trade.price, trade.quantity) == (40, 10)
    assert balance(engine, "a") == (10_000 - 400 - 5, 0)  # maker fee ceil(0.0175*10*.4*.6) = 5 cents
    assert balance(engine, "b") == (10_000 - 600 - 17, 0)  # taker fee ceil(0.07*10*.24) = 17 cents
    assert balance(engine, "system:collateral:FED-CUT") == (1_000, 0)
    positions = engine.markets["FED-CUT"].positions
    assert (positions["a"].quantity, positions["b"].quantity) == (10, -10)
    assert_conserved(engine)


def test_no_order_price_is_shown_in_yes_terms_and_rejects_yes_no_on_other_kinds() -> None:
    engine = binary_engine()
    accepted = one(place(engine, "b", "FED-CUT", "no", "5", "0.30"), ev.OrderAccepted)
    assert (accepted.requested_side, accepted.price) == (OrderSide.NO, 70)
    engine2 = engine_with(spot_spec(), perp_spec(), accounts={"a": {"USD": "1000"}})
    for market, side in (("BTC-USD", "yes"), ("BTC-USD", "long"), ("BTC-PERP", "no")):
        assert (
            one(place(engine2, "a", market, side, "0.001", "100"), ev.OrderRejected).code == "invalid_order"
        )


def test_selling_held_yes_contracts_needs_no_cash_and_closes_the_position() -> None:
    engine = binary_engine()
    place(engine, "a", "FED-CUT", "yes", "10", "0.40")
    place(engine, "b", "FED-CUT", "no", "10", "0.60")
    place(engine, "c", "FED-CUT", "yes", "10", "0.70")
    total_before = balance(engine, "a")[0]
    events = expect_no_rejection(place(engine, "a", "FED-CUT", "sell", "10", "0.70"))
    fill = next(f for f in of_type(events, ev.OrderFilled) if f.account_id == "a")
    assert fill.realized_pnl == 300  # bought at 0.40, sold at 0.70
    assert balance(engine, "a")[0] == total_before + 700 - fill.fee
    assert engine.markets["FED-CUT"].positions["a"].quantity == 0
    assert balance(engine, "system:collateral:FED-CUT") == (1_000, 0)  # open interest still 10 (c vs b)


def test_settlement_pays_one_dollar_per_winning_contract() -> None:
    engine = binary_engine()
    place(engine, "a", "FED-CUT", "yes", "10", "0.40")
    place(engine, "b", "FED-CUT", "no", "10", "0.60")
    a_before, b_before = balance(engine, "a")[0], balance(engine, "b")[0]
    events = engine.apply(c.SettleMarket(market="FED-CUT", outcome=Outcome.YES))
    assert one(events, ev.MarketSettled).payouts == (("a", 1_000), ("b", 0))
    assert balance(engine, "a")[0] == a_before + 1_000
    assert balance(engine, "b")[0] == b_before
    assert balance(engine, "system:collateral:FED-CUT") == (0, 0)
    realised = {p.account_id: p.realized_pnl for p in of_type(events, ev.PositionChanged)}
    assert realised == {"a": 600, "b": -600}
    assert engine.markets["FED-CUT"].status is MarketStatus.SETTLED
    assert one(place(engine, "a", "FED-CUT", "yes", "1", "0.5"), ev.OrderRejected).code == "market_closed"
    assert (
        one(engine.apply(c.SettleMarket(market="FED-CUT", outcome=Outcome.NO)), ev.CommandRejected).code
        == "conflict"
    )
    assert_conserved(engine)


def test_void_pays_half_a_dollar_per_contract_and_cancels_open_orders() -> None:
    engine = binary_engine()
    place(engine, "a", "FED-CUT", "yes", "10", "0.40")
    place(engine, "b", "FED-CUT", "no", "10", "0.60")
    resting = order_id(place(engine, "c", "FED-CUT", "yes", "5", "0.20"))
    assert balance(engine, "c")[1] > 0
    a_before, b_before = balance(engine, "a")[0], balance(engine, "b")[0]
    events = engine.apply(c.VoidMarket(market="FED-CUT"))
    assert one(events, ev.MarketVoided).refunds == (("a", 500), ("b", 500))
    assert [e.order_id for e in of_type(events, ev.OrderCancelled)] == [resting]
    assert balance(engine, "a")[0] == a_before + 500
    assert balance(engine, "b")[0] == b_before + 500
    assert balance(engine, "c") == (10_000, 0)
    assert balance(engine, "system:collateral:FED-CUT") == (0, 0)
    assert engine.markets["FED-CUT"].status is MarketStatus.CANCELLED
    assert_conserved(engine)
