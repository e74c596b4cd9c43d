"""The report: metrics against empyrical on the same returns, round trips, byte-identical reruns."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from pathlib import Path

import empyrical
import numpy as np
import pytest

from tests.unit.strategies.backtest_support import T0, bars, spec
from tradehall.strategies.backtest import Backtest, BacktestSettings, FillModel, StrategyChoice
from tradehall.strategies.backtest import metrics as m
from tradehall.strategies.backtest.broker import Fill
from tradehall.strategies.backtest.render import write_report
from tradehall.strategies.backtest.report import METRIC_NAMES, build_report, round_trips

DAY = 86_400 * 10**9


def daily_equity(seed: int, days: int = 400) -> tuple[float, list[tuple[int, float]]]:
    rng = random.Random(seed)
    value = 10_000.0
    points = []
    for day in range(1, days + 1):
        value *= 1 + rng.gauss(0.0005, 0.02)
        points.append((T0 + day * DAY, value))  # each day's close at the next midnight
    return 10_000.0, points


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_daily_metrics_match_empyrical(seed: int) -> None:
    initial, equity = daily_equity(seed)
    returns = [r for _, r in m.daily_returns(initial, equity)]
    assert len(returns) == len(equity)
    assert returns[0] == pytest.approx(equity[0][1] / initial - 1, abs=0)
    series = np.array(returns)
    kw = {"period": "daily", "annualization": 365}
    assert m.sharpe(returns) == pytest.approx(empyrical.sharpe_ratio(series, **kw), rel=1e-9)
    assert m.sortino(returns) == pytest.approx(empyrical.sortino_ratio(series, **kw), rel=1e-9)
    assert m.cagr(returns) == pytest.approx(empyrical.cagr(series, **kw), rel=1e-9)
    var = -empyrical.value_at_risk(series, cutoff=0.05)
    assert -m.value_at_risk(returns) == pytest.approx(var, rel=1e-12)
    assert -m.conditional_value_at_risk(returns) == pytest.approx(
        -empyrical.conditional_value_at_risk(series, cutoff=0.05), rel=1e-12
    )
    # at daily resolution the bar drawdown is empyrical's (which starts from the first return's level,
    # so the initial balance counts as a peak in both)
    _, worst, _ = m.drawdowns(initial, equity, T0)
    assert worst == pytest.approx(-empyrical.max_drawdown(series), rel=1e-9)
    calmar = m.cagr(returns) / worst
    assert calmar == pytest.approx(empyrical.calmar_ratio(series, **kw), rel=1e-9)


def test_trade_ratios_are_empyricals_without_annualisation() -> None:
    returns = [0.01, -0.02, 0.03, 0.005, -0.01, 0.02]
    series = np.array(returns)
    assert m.sharpe(returns, 1) == pytest.approx(empyrical.sharpe_ratio(series, annualization=1), rel=1e-12)
    assert m.sortino(returns, 1) == pytest.approx(empyrical.sortino_ratio(series, annualization=1), rel=1e-12)


def test_daily_returns_use_end_of_day_equity_and_start_from_the_initial_balance() -> None:
    hour = 3600 * 10**9
    equity = [(T0 + hour, 101.0), (T0 + 23 * hour, 102.0), (T0 + DAY, 99.0),  # day 0 closes at 99
              (T0 + DAY + hour, 110.0), (T0 + 2 * DAY + 5 * hour, 121.0)]  # day 1 at 110, day 2 at 121
    assert m.daily_returns(100.0, equity) == [
        (T0, 99 / 100 - 1), (T0 + DAY, 110 / 99 - 1), (T0 + 2 * DAY, 121 / 110 - 1)
    ]


def test_drawdown_series_its_maximum_and_duration() -> None:
    s = 10**9
    equity = [(T0 + 1 * s, 100.0), (T0 + 2 * s, 120.0), (T0 + 3 * s, 90.0), (T0 + 4 * s, 108.0),
              (T0 + 5 * s, 121.0), (T0 + 6 * s, 110.0)]
    series, worst, duration = m.drawdowns(100.0, equity, T0)
    assert [round(d, 6) for _, d in series] == [0.0, 0.0, 0.25, 0.1, 0.0, round(1 - 110 / 121, 6)]
    assert worst == 0.25
    assert duration == 3 * s  # from the 120 peak at 2 s to the recovery at 5 s


def test_streaks() -> None:
    assert m.streaks([True, True, False, True, True, True, False, False]) == (3, 2)
    assert m.streaks([]) == (0, 0)


def fill(ts: int, side: str, price: str, quantity: str, fee: str = "0", pnl: str = "0") -> Fill:
    return Fill(ts, 1, None, side, Decimal(price), Decimal(quantity), Decimal(fee), Decimal(pnl), "taker")


def test_round_trips_from_fills_with_a_flip_and_partial_exits() -> None:
    fills = [
        fill(1, "buy", "100", "2", fee="0.2"),
        fill(2, "sell", "110", "1", fee="0.11", pnl="10"),
        fill(3, "sell", "120", "3", fee="0.36", pnl="20"),  # closes 1 (pnl 20), opens a short of 2
        fill(4, "buy", "115", "2", fee="0.23", pnl="10"),
        fill(5, "buy", "100", "1"),
    ]
    closed, still_open = round_trips(fills)
    long, short = closed
    assert (long.side, long.quantity, long.entry_price, long.exit_price) == ("long", 2, 100, 115)
    assert (long.pnl, long.fees) == (Decimal(30), Decimal("0.2") + Decimal("0.11") + Decimal("0.12"))
    assert (short.side, short.quantity, short.entry_price, short.exit_price) == ("short", 2, 120, 115)
    assert (short.pnl, short.fees) == (Decimal(10), Decimal("0.24") + Decimal("0.23"))
    assert short.ret == pytest.approx(float((Decimal(10) - Decimal("0.47")) / 240))
    assert still_open is not None and still_open.quantity == 1


def random_rows(n: int, seed: int) -> list[tuple[float, float, float, float]]:
    rng = random.Random(seed)
    price = 1000.0
    rows = []
    for _ in range(n):
        o = price
        price = max(10.0, price + rng.randint(-8, 8) * 0.5)
        high = max(o, price) + rng.randint(0, 6) * 0.5
        rows.append((o, high, min(o, price) - rng.randint(0, 6) * 0.5, price))
    return rows


def full_run(tmp: Path) -> dict[str, bytes]:
    backtest = Backtest(
        [StrategyChoice("sma_crossover", parameters={"fast": 5, "slow": 20})],
        spec(),
        BacktestSettings.parse({"max_position_size": "3000", "initial_balance": "100000", "interval": "1m"}),
        FillModel.parse("latency_ms=1,slippage=0.0005,fee=0.001"),
        seed=7,
    )
    result = backtest.run_ohlcv(bars(random_rows(4000, 11)))
    files = write_report(tmp, build_report(result), result.prices)
    return {name: path.read_bytes() for name, path in files.items()}


def test_the_same_inputs_give_byte_identical_reports(tmp_path: Path) -> None:
    first = full_run(tmp_path / "a")
    second = full_run(tmp_path / "b")
    assert sorted(first) == ["drawdown.png", "equity.png", "report.html", "report.json", "trades.png"]
    assert first == second
    assert b"http://" not in first["report.html"] and b"https://" not in first["report.html"]
    assert b"<script" not in first["report.html"]


def test_the_report_has_every_contract_metric_and_consistent_trades(tmp_path: Path) -> None:
    import orjson

    report = orjson.loads(full_run(tmp_path)["report.json"])
    metrics = report["metrics"]
    assert set(metrics) == {*METRIC_NAMES, "annualization"}
    assert metrics["annualization"] == 365
    trades = report["trades"]
    assert metrics["trades"] == len(trades) > 20
    nets = [Decimal(t["pnl"]) - Decimal(t["fees"]) for t in trades]
    assert Decimal(metrics["win_rate"]) == pytest.approx(Decimal(sum(1 for n in nets if n > 0)) / len(nets))
    assert Decimal(metrics["fees"]) >= sum(Decimal(t["fees"]) for t in trades) - Decimal("0.01") * len(trades)
    assert max(Decimal(v) for _, v in report["drawdown"]) == Decimal(metrics["max_drawdown"])
    assert report["equity"][0][1] == "100000.00"
    final = Decimal(report["equity"][-1][1])
    # the series is rounded to cents; the metric is not
    assert Decimal(metrics["total_return"]) == pytest.approx(final / 100000 - 1, abs=Decimal("1e-7"))
    assert report["run"]["seed"] == 7 and report["run"]["fill_model"]["latency_ms"] == 1
    assert not math.isnan(float(metrics["sharpe"]))


def test_trade_prices_and_quantities_are_plain_decimals() -> None:
    from tradehall.strategies.backtest.report import performance

    fills = [fill(1, "buy", "100", "10"), fill(2, "sell", "106", "3", pnl="18"),
             fill(3, "sell", "106.5", "7", pnl="45.5")]
    closed, _ = round_trips(fills)
    cents = Decimal("0.01")
    (trade,) = performance(Decimal(1000), T0, [(T0 + 1, 1063.5)], [("X", t) for t in closed], Decimal(0),
                           math.nan, cents)["trades"]
    assert (trade["quantity"], trade["entry_price"], trade["exit_price"]) == ("10", "100", "106.35")
    thirds = [fill(1, "buy", "100", "3"), fill(2, "sell", "101", "1", pnl="1"),
              fill(3, "sell", "102", "2", pnl="4")]
    (trade,) = performance(Decimal(1000), T0, [(T0 + 1, 1005.0)], [("X", t) for t in round_trips(thirds)[0]],
                           Decimal(0), math.nan, cents)["trades"]
    assert trade["exit_price"] == "101.6666666667"
