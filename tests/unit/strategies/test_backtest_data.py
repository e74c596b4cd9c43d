"""Backtest data: CSV and Parquet OHLCV (both time forms), refusals naming the row, recordings, the CLI
and the parameter grid."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tradehall.cli.main import app
from tradehall.domain.errors import Code, TradehallError
from tradehall.marketdata.models import Quote, TradeTick
from tradehall.marketdata.recorder import Recorder
from tradehall.strategies.backtest import (
    Backtest,
    BacktestSettings,
    FillModel,
    StrategyChoice,
    load_ohlcv,
    load_recording,
    spec_for_data,
)
from tradehall.strategies.backtest.job import BacktestRequest, execute, run_grid

CSV = "t,open,high,low,close,volume\n"


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(CSV + "".join(row + "\n" for row in rows))
    return path


def test_csv_with_rfc3339_and_epoch_milliseconds_read_the_same(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a.csv", ["2024-01-01T00:00:00Z,100,101,99,100.5,3",
                                       "2024-01-01T00:01:00+00:00,100.5,102,100,101.25,4.5"])
    b = write_csv(tmp_path / "b.csv", ["1704067200000,100,101,99,100.5,3",
                                       "1704067260000,100.5,102,100,101.25,4.5"])
    first, second = load_ohlcv(a), load_ohlcv(b)
    assert first == second
    assert first.ts == [1704067200 * 10**9, 1704067260 * 10**9]
    assert first.close == [100.5, 101.25]
    assert first.interval_ns() == 60 * 10**9


def test_parquet_reads_like_csv(tmp_path: Path) -> None:
    table = pa.table({"t": [1704067200000, 1704067260000], "open": [100.0, 100.5], "high": [101.0, 102.0],
                      "low": [99.0, 100.0], "close": [100.5, 101.25], "volume": [3.0, 4.5]})
    pq.write_table(table, tmp_path / "bars.parquet")
    csv = write_csv(tmp_path / "b.csv", ["1704067200000,100,101,99,100.5,3",
                                         "1704067260000,100.5,102,100,101.25,4.5"])
    assert load_ohlcv(tmp_path / "bars.parquet") == load_ohlcv(csv)


@pytest.mark.parametrize(
    ("rows", "detail"),
    [
        (["2024-01-01T00:00:00,1,1,1,1,1"], "row 2: t '2024-01-01T00:00:00' has no time zone"),
        (["yesterday,1,1,1,1,1"], "row 2: t 'yesterday' is neither RFC 3339 nor epoch milliseconds"),
        (["1000,1,2,0.5,1,1", "1000,1,2,0.5,1,1"], "row 3: t is not after the previous row's (oldest first)"),
        (["1000,1,2,0.5,3,1"], "row 2: open and close must lie within [low, high]"),
        (["1000,1,2,0.5,1,-1"], "row 2: volume is negative"),
        (["1000,0,0,0,0,1"], "row 2: prices must be positive"),
        ([], "the data has no bars"),
    ],
)
def test_bad_rows_are_refused_with_their_row(tmp_path: Path, rows: list[str], detail: str) -> None:
    with pytest.raises(TradehallError) as caught:
        load_ohlcv(write_csv(tmp_path / "bad.csv", rows))
    assert caught.value.code is Code.INVALID_REQUEST
    assert caught.value.detail == detail


def test_missing_columns_and_unknown_formats_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("time,price\n1,2\n")
    with pytest.raises(TradehallError, match=r"lacks the column\(s\)"):
        load_ohlcv(tmp_path / "x.csv")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(TradehallError, match="data files are"):
        load_ohlcv(tmp_path / "x.txt")
    with pytest.raises(TradehallError, match="no data file"):
        load_ohlcv(tmp_path / "missing.csv")


def test_a_recording_runs_with_bars_built_per_interval(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "rec")
    minute = 60 * 10**9
    start = 1_704_067_200 * 10**9
    prices = [100, 100, 100, 101, 102, 103, 102, 101, 100, 99, 98, 99, 100, 101, 102, 103, 104]
    for i, price in enumerate(prices):
        at = start + i * minute + 5 * 10**9
        recorder(Quote(source="s", instrument="BTC-USD", bid=Decimal(price) - Decimal("0.5"),
                       ask=Decimal(price) + Decimal("0.5"), bid_size=Decimal(5), ask_size=Decimal(5),
                       receive_ts=at))
        recorder(TradeTick(source="s", instrument="BTC-USD", price=Decimal(price), size=Decimal("0.1"),
                           receive_ts=at + 10**9))
    recorder.close()
    events = load_recording(tmp_path / "rec")
    assert len(events) == 2 * len(prices)
    backtest = Backtest(
        [StrategyChoice("sma_crossover", parameters={"fast": 2, "slow": 3})],
        spec_for_data("BTC-USD", None, Decimal("0.5"), Decimal("0.001")),
        BacktestSettings.parse({"interval": "1m", "order_quantity": 1, "initial_balance": 10000}),
        FillModel.parse("latency_ms=0,slippage=0"),
    )
    result = backtest.run_events(events)
    assert result.bars == len(prices)
    # bars are the quotes' mids (the prices); crosses down on bar 7 (closing 101), up on bar 12 (closing
    # 100): spot longs only, so the first fill is the buy at bar 12's close, at the ask quoted then
    assert [(f.side, f.price) for f in result.fills][:1] == [("buy", Decimal("100.5"))]
    assert result.rejections == []


def test_the_cli_runs_a_backtest_and_writes_the_report(tmp_path: Path) -> None:
    rows = []
    price = 100.0
    for i in range(300):
        o = price
        price = 100 + (i % 40 - 20) * 0.5 if i % 80 < 40 else 100 - (i % 40 - 20) * 0.5
        rows.append(f"{1704067200000 + i * 60000},{o},{max(o, price) + 0.5},{min(o, price) - 0.5},{price},10")
    data = write_csv(tmp_path / "btc-usd.csv", rows)
    result = CliRunner().invoke(app, ["backtest", "--strategy", "sma_crossover", "-p", "fast=3",
                                      "-p", "slow=8", "--data", str(data), "--setting", "order_quantity=1",
                                      "--report", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert metrics == report["metrics"]
    assert report["run"]["market"] == "BTC-USD"
    assert metrics["trades"] > 0
    bad = CliRunner().invoke(app, ["backtest", "--strategy", "nope", "--data", str(data)])
    assert bad.exit_code == 2
    assert "not_found" in bad.output


def test_a_grid_ranks_every_combination(tmp_path: Path) -> None:
    rows = []
    for i in range(400):
        price = 100 + (i % 50) * 0.5 if (i // 50) % 2 == 0 else 125 - (i % 50) * 0.5
        rows.append(f"{1704067200000 + i * 60000},{price},{price + 0.5},{price - 0.5},{price},10")
    data = write_csv(tmp_path / "btc-usd.csv", rows)
    request = BacktestRequest(
        strategies=(StrategyChoice("sma_crossover"),),
        market="BTC-USD",
        settings=BacktestSettings.parse({"order_quantity": 1}),
        data_path=data,
    )
    ranked = run_grid(request, {"fast": [2, 5], "slow": [10, 20]}, rank_by="total_return", workers=2)
    assert sorted((r["parameters"]["fast"], r["parameters"]["slow"]) for r in ranked) == [
        (2, 10), (2, 20), (5, 10), (5, 20)
    ]
    returns = [Decimal(r["metrics"]["total_return"]) for r in ranked]
    assert returns == sorted(returns, reverse=True)
    single = {
        (p["fast"], p["slow"]): execute(
            BacktestRequest(strategies=(StrategyChoice("sma_crossover", parameters=p),), market="BTC-USD",
                            settings=request.settings, data_path=data)
        )[1]["metrics"]
        for p in ({"fast": 2, "slow": 10}, {"fast": 5, "slow": 20})
    }
    for row in ranked:
        key = (row["parameters"]["fast"], row["parameters"]["slow"])
        if key in single:
            assert row["metrics"] == single[key]  # a grid's point is the same run as on its own
