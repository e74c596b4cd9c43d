"""Backtests on the engine's quote venue: when and where orders fill inside and across bars."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from tests.unit.strategies.backtest_support import MINUTE, T0, bars, registry, spec
from tradehall.strategies.backtest import Backtest, BacktestSettings, FillModel, StrategyChoice
from tradehall.strategies.backtest.runner import BacktestResult

FLAT = (100.0, 100.0, 100.0, 100.0)


def run(rows: list[tuple[float, float, float, float]], plan: str, *, fill: str = "latency_ms=1,slippage=0",
        eager: bool = False, settings: dict[str, str] | None = None, **params: object) -> BacktestResult:
    backtest = Backtest(
        [StrategyChoice("script", parameters={"plan": plan, **params})],
        spec(),
        BacktestSettings.parse({"order_quantity": "1", "initial_balance": "100000", **(settings or {})}),
        FillModel.parse(fill),
        registry=registry(),
        eager=eager,
    )
    return backtest.run_ohlcv(bars(rows))


def fills(result: BacktestResult) -> list[tuple[str, Decimal, int]]:
    # times in fifths of a bar, rounded up: a level the path passes is quoted just before the next point
    return [(f.side, f.price, -(-(f.ts - T0) * 5 // MINUTE)) for f in result.fills]


def test_an_order_decided_at_a_close_fills_at_the_next_bars_open() -> None:
    rows = [FLAT, (101.0, 103.0, 100.5, 102.0), (104.0, 105.0, 103.0, 104.5), (99.0, 99.5, 97.0, 98.0)]
    result = run(rows, "0:buy,2:sell")
    # decided at the end of bar 0 (close 100), filled at bar 1's open (101) at fifth 6 (bar 1, first fifth)
    assert fills(result) == [("buy", Decimal("101.0"), 6), ("sell", Decimal("99.0"), 16)]
    assert result.rejections == []


def test_without_latency_an_order_fills_at_the_close_it_was_decided_on() -> None:
    rows = [FLAT, (101.0, 103.0, 100.5, 102.0), (104.0, 105.0, 103.0, 104.5)]
    result = run(rows, "0:buy,1:sell", fill="latency_ms=0,slippage=0")
    assert fills(result) == [("buy", Decimal("100.0"), 5), ("sell", Decimal("102.0"), 10)]


def test_slippage_and_fees_are_the_venues() -> None:
    rows = [FLAT, FLAT, FLAT]
    result = run(rows, "0:buy,1:sell", fill="latency_ms=1,slippage=0.01,fee=0.001")
    assert [(f.side, f.price, f.fee) for f in result.fills] == [
        ("buy", Decimal("101.0"), Decimal("0.11")),  # 100 + 1 %, fee 0.101 rounded up
        ("sell", Decimal("99.0"), Decimal("0.10")),  # 100 - 1 %, fee 0.099 rounded up
    ]
    assert result.fees == Decimal("0.21")


def test_a_stop_inside_a_bar_fills_where_the_path_crosses_it() -> None:
    # bar 2: open 100, high 101 (nearer), then low 90: the path passes 95 on its way down
    rows = [FLAT, FLAT, (100.0, 101.0, 90.0, 99.0), FLAT]
    result = run(rows, "0:buy", stop=95.0)
    assert fills(result) == [("buy", Decimal("100.0"), 6), ("sell", Decimal("95.0"), 13)]


def test_a_gap_through_a_stop_fills_at_the_price_after_the_gap() -> None:
    rows = [FLAT, FLAT, (92.0, 93.0, 91.0, 92.5), FLAT]
    result = run(rows, "0:buy", stop=95.0)
    assert fills(result) == [("buy", Decimal("100.0"), 6), ("sell", Decimal("92.0"), 11)]


def test_the_extreme_nearer_the_open_comes_first() -> None:
    # low nearer (4 against 10): 100 -> 96 passes the limit at 97 before the path's second point
    assert fills(run([FLAT, (100.0, 110.0, 96.0, 105.0), FLAT], "", limit=97.0)) == [
        ("buy", Decimal("97.0"), 7)
    ]
    # high nearer (3 against 10): 100 -> 103 -> 90 passes 97 before the third point
    assert fills(run([FLAT, (100.0, 103.0, 90.0, 95.0), FLAT], "", limit=97.0)) == [
        ("buy", Decimal("97.0"), 8)
    ]


def test_a_resting_limit_fills_at_its_price_when_the_path_reaches_it() -> None:
    rows = [FLAT, (100.0, 100.5, 96.0, 99.0), FLAT]
    result = run(rows, "", limit=97.0)
    # placed at bar 0's close, it rests; bar 1 goes 100 -> 100.5 -> 96 and fills it at 97 on the way
    assert fills(result) == [("buy", Decimal("97.0"), 8)]
    assert [o.client_order_id for o in result.orders] == ["limit-buy"]


def test_the_entry_carries_the_settings_bracket_and_its_stop_fills_on_the_path() -> None:
    rows = [FLAT, FLAT, (100.0, 104.0, 99.0, 103.0), (103.0, 103.5, 96.0, 97.0), FLAT]
    result = run(rows, "0:buy", settings={"stop_loss_percent": "3", "take_profit_percent": "5"})
    assert fills(result) == [("buy", Decimal("100.0"), 6), ("sell", Decimal("97.0"), 18)]
    assert [(o.type, o.status, o.reason, o.parent_order_id) for o in result.orders] == [
        ("market", "filled", "", None),
        ("limit", "cancelled", "oco", 1),  # the take-profit at 105, cancelled by its sibling
        ("stop", "filled", "", 1),
    ]
    assert result.warnings == []


def test_the_take_profit_of_the_bracket_fills_at_its_limit() -> None:
    rows = [FLAT, FLAT, (100.0, 106.0, 99.5, 104.0), FLAT]
    result = run(rows, "0:buy", settings={"stop_loss_percent": "3", "take_profit_percent": "5"})
    # low nearer (0.5): 100 -> 99.5 -> 106 passes 105 before the third point
    assert fills(result) == [("buy", Decimal("100.0"), 6), ("sell", Decimal("105.0"), 13)]


def test_a_trailing_stop_exit_follows_the_high_and_fills_where_the_path_meets_it() -> None:
    rows = [FLAT, FLAT, (100.0, 104.0, 99.0, 103.0), (103.0, 103.5, 96.0, 97.0), FLAT]
    result = run(rows, "0:buy", settings={"trailing_stop_percent": "2"})
    # the high 104 moves the stop to 104 x 0.98 = 101.92, on the 0.5 tick 102
    assert fills(result) == [("buy", Decimal("100.0"), 6), ("sell", Decimal("102.0"), 18)]
    assert [(o.type, o.status) for o in result.orders] == [("market", "filled"), ("trailing_stop", "filled")]


def test_a_spot_trailing_stop_beside_a_bracket_is_unfunded_and_said_so() -> None:
    rows = [FLAT, FLAT, (100.0, 104.0, 99.0, 103.0), (103.0, 103.5, 96.0, 97.0), FLAT]
    settings = {"trailing_stop_percent": "2", "stop_loss_percent": "3", "take_profit_percent": "5"}
    result = run(rows, "0:buy", settings=settings)
    assert fills(result) == [("buy", Decimal("100.0"), 6), ("sell", Decimal("97.0"), 18)]
    assert result.warnings == [
        "a trailing stop was unfunded: on a spot market a bracket's take-profit holds the base, so use the "
        "trailing stop or the bracket, not both"
    ]


def test_the_strategy_sees_a_bar_only_at_its_close() -> None:
    seen: list[int] = []
    rows = [FLAT, (101.0, 103.0, 100.5, 102.0)]
    backtest = Backtest([StrategyChoice("script", parameters={"plan": ""})], spec(), registry=registry())
    strategy = backtest.trader.members[0].strategy
    original = strategy.on_bar

    def spy(market, bar):  # type: ignore[no-untyped-def]
        seen.append(backtest.broker.engine.now)
        assert backtest.trader.now == bar.end
        return original(market, bar)

    strategy.on_bar = spy  # type: ignore[method-assign]
    backtest.run_ohlcv(bars(rows))
    assert len(seen) == 2


def random_rows(n: int, seed: int) -> list[tuple[float, float, float, float]]:
    rng = random.Random(seed)
    price = 1000.0
    rows = []
    for _ in range(n):
        o = price
        price = max(10.0, price + rng.randint(-8, 8) * 0.5)
        h = max(o, price) + rng.randint(0, 6) * 0.5
        lo = min(o, price) - rng.randint(0, 6) * 0.5
        rows.append((o, h, lo, price))
    return rows


def test_quotes_skipped_when_nothing_can_react_change_no_fill() -> None:
    rows = random_rows(3000, 5)

    def once(eager: bool) -> BacktestResult:
        backtest = Backtest(
            [StrategyChoice("sma_crossover", parameters={"fast": 5, "slow": 20})],
            spec(),
            BacktestSettings.parse({"order_quantity": "2", "initial_balance": "100000"}),
            FillModel.parse("latency_ms=1,slippage=0.001,fee=0.001"),
            eager=eager,
        )
        return backtest.run_ohlcv(bars(rows))

    lazy, eager = once(False), once(True)
    assert len(lazy.fills) > 50
    assert lazy.fills == eager.fills
    assert lazy.equity == eager.equity


def test_a_perp_short_is_valued_as_the_engine_values_it() -> None:
    from tradehall.domain.enums import MarketKind, Venue
    from tradehall.domain.market import MarketSpec
    from tradehall.engine import views

    perp = MarketSpec(symbol="BTC-PERP", kind=MarketKind.PERP, base="BTC", quote="USD",
                      tick_size=Decimal("0.5"), lot_size=Decimal("0.001"), venue=Venue.QUOTE,
                      max_leverage=Decimal(10),
                      initial_margin=Decimal("0.1"), maintenance_margin=Decimal("0.05"),
                      taker_fee=Decimal("0.001"))
    rows = [FLAT, (100.0, 101.0, 99.0, 100.5), (100.5, 102.0, 100.0, 101.5), (101.5, 101.5, 97.0, 98.0),
            (98.0, 99.0, 96.0, 97.0), (97.0, 97.0, 95.0, 95.5), (95.5, 96.0, 94.0, 94.5)]
    backtest = Backtest(
        [StrategyChoice("script", parameters={"plan": "0:sell"})],
        perp,
        BacktestSettings.parse({"order_quantity": "2", "allow_short": True, "initial_balance": "1000"}),
        FillModel.parse("latency_ms=1,slippage=0"),
        registry=registry(),
    )
    result = backtest.run_ohlcv(bars(rows))
    assert [(f.side, f.price, f.fee) for f in result.fills] == [("sell", Decimal("100.0"), Decimal("0.20"))]
    valuation = views.account_valuation(backtest.broker.engine, "backtest")
    # short 2 from 100, marked at the last close 94.5: 1000 - 0.20 fee + 11.00
    assert result.equity[-1][1] == pytest.approx(1010.8)
    assert valuation.equity == 101080
    assert result.exposure_bars == 6


def test_a_spread_is_quoted_around_every_bar_price() -> None:
    result = run([FLAT, FLAT, FLAT], "0:buy,1:sell", fill="latency_ms=1,slippage=0,spread=0.02")
    assert [(f.side, f.price) for f in result.fills] == [("buy", Decimal("101.0")), ("sell", Decimal("99.0"))]


def test_depth_limits_what_a_price_of_the_bar_offers() -> None:
    # volume 10 a bar, 2.5 a price; depth 0.2 quotes 0.5 at each: a market buy of 1 takes 0.5 at the open
    # and its remainder is cancelled, as on the paper venue
    result = run([FLAT, FLAT, FLAT], "0:buy", fill="latency_ms=1,slippage=0,depth=0.2")
    assert [(f.side, f.price, f.quantity) for f in result.fills] == [
        ("buy", Decimal("100.0"), Decimal("0.500"))
    ]
    assert [(o.status, o.reason) for o in result.orders] == [("cancelled", "market_remainder")]
