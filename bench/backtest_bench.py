"""Backtest benchmark: an SMA 10/50 crossover on one-minute bars in tradehall and in backtrader.

    .venv/bin/python bench/backtest_bench.py [--quick] [--json] [--bars N] [--skip-backtrader]

Both run the same strategy on the same bars with the same fill rule: an order decided at a bar's close
fills at the next bar's open (tradehall: the quote venue with 1 ms latency, no slippage; backtrader: its
default market order), no fees, a fixed size of 1, long only (buy on a cross up when flat, close on a
cross down). The bars are a random walk on a 0.25 grid (sums of such prices are exact in binary floating
point, so both sides' averages agree to the bit). The benchmark asserts that the two trade lists
(entry and exit bar, entry and exit price) are identical and prints bars/s for both: tradehall's is the
whole backtest (building the engine and the strategy, replaying every bar, the equity series; not the
report files), backtrader's the whole `cerebro.run()` on a pandas feed. `bars_per_s` is wall-clock;
`cpu_bars_per_s` counts this process's CPU time only (on a shared, loaded machine the two differ). The
JSON figures say whether the compiled (mypyc) engine was loaded (`make compile`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from decimal import Decimal
from typing import Any

from tradehall.strategies.backtest import (
    Backtest,
    BacktestSettings,
    FillModel,
    Ohlcv,
    StrategyChoice,
    spec_for_data,
)

BENCH = "backtest"
MINUTE_NS = 60 * 10**9
START_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
results: list[dict[str, Any]] = []

Trade = tuple[int, float, int, float]
"""(entry bar, entry price, exit bar, exit price)"""


def emit(workload: str, metric: str, value: float | bool, unit: str) -> None:
    rounded = value if isinstance(value, bool) else round(value, 1)
    results.append({"bench": BENCH, "workload": workload, "metric": metric, "value": rounded, "unit": unit})


def random_walk(count: int, seed: int = 7) -> Ohlcv:
    rng = random.Random(seed)
    data = Ohlcv([], [], [], [], [], [])
    price = 20_000.0
    for i in range(count):
        open_ = price
        price = max(100.0, price + rng.randint(-12, 12) * 0.25)
        data.ts.append(START_NS + i * MINUTE_NS)
        data.open.append(open_)
        data.high.append(max(open_, price) + rng.randint(0, 8) * 0.25)
        data.low.append(min(open_, price) - rng.randint(0, 8) * 0.25)
        data.close.append(price)
        data.volume.append(float(rng.randint(1, 500)))
    return data


def engine_build() -> str:
    import tradehall.engine.engine as module

    return "compiled" if not (module.__file__ or "").endswith(".py") else "interpreted"


def run_tradehall(data: Ohlcv) -> tuple[list[Trade], float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    backtest = Backtest(
        [StrategyChoice("sma_crossover", parameters={"fast": 10, "slow": 50})],
        spec_for_data("BTC-USD", None, Decimal("0.25"), Decimal("1")),
        BacktestSettings.parse({"order_quantity": 1, "initial_balance": "1000000000", "interval": "1m"}),
        FillModel.parse("slippage=0,fee=0,latency_ms=1"),
    )
    result = backtest.run_ohlcv(data)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    trades: list[Trade] = []
    entry: tuple[int, float] | None = None
    for fill in result.fills:
        bar = (fill.ts - START_NS) // MINUTE_NS
        if fill.side == "buy":
            entry = (bar, float(fill.price))
        else:
            assert entry is not None
            trades.append((entry[0], entry[1], bar, float(fill.price)))
            entry = None
    if result.rejections:
        raise SystemExit(f"tradehall refused orders: {result.rejections[:3]}")
    return trades, elapsed, cpu


def run_backtrader(data: Ohlcv) -> tuple[list[Trade], float, float]:
    import backtrader as bt
    import pandas as pd

    frame = pd.DataFrame(
        {"open": data.open, "high": data.high, "low": data.low, "close": data.close, "volume": data.volume},
        index=pd.to_datetime(data.ts, unit="ns"),
    )
    fills: list[tuple[int, str, float]] = []

    class SmaCross(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            fast = bt.ind.SMA(period=10)
            slow = bt.ind.SMA(period=50)
            self.crossover = bt.ind.CrossOver(fast, slow)

        def next(self) -> None:
            if not self.position:
                if self.crossover > 0:
                    self.buy(size=1)
            elif self.crossover < 0:
                self.close()

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                at = bt.num2date(order.executed.dt)
                bar = int((pd.Timestamp(at).value - START_NS) // MINUTE_NS)
                fills.append((bar, "buy" if order.isbuy() else "sell", order.executed.price))

    started, cpu = time.perf_counter(), time.process_time()
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(1_000_000_000.0)
    cerebro.broker.setcommission(commission=0.0)
    cerebro.run()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    trades: list[Trade] = []
    entry: tuple[int, float] | None = None
    for bar, side, price in fills:
        if side == "buy":
            entry = (bar, price)
        else:
            assert entry is not None
            trades.append((entry[0], entry[1], bar, price))
            entry = None
    return trades, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20,000 bars (under 30 s with backtrader)")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    parser.add_argument("--bars", type=int, default=None, help="bars (default 200,000; --quick 20,000)")
    parser.add_argument("--skip-backtrader", action="store_true", help="tradehall only")
    args = parser.parse_args()
    count = args.bars or (20_000 if args.quick else 200_000)
    data = random_walk(count)
    build = engine_build()
    ours, ours_seconds, ours_cpu = run_tradehall(data)
    emit("sma_10_50_tradehall", "bars_per_s", count / ours_seconds, "bars/s")
    emit("sma_10_50_tradehall", "cpu_bars_per_s", count / ours_cpu, "bars/cpu-s")
    same: bool | None = None
    if not args.skip_backtrader:
        theirs, theirs_seconds, theirs_cpu = run_backtrader(data)
        emit("sma_10_50_backtrader", "bars_per_s", count / theirs_seconds, "bars/s")
        emit("sma_10_50_backtrader", "cpu_bars_per_s", count / theirs_cpu, "bars/cpu-s")
        same = ours == theirs
        emit("sma_10_50", "same_trades", same, "bool")
        emit("sma_10_50", "speedup", theirs_seconds / ours_seconds, "x")
    command = "python bench/backtest_bench.py " + " ".join(
        a for a in ("--quick" if args.quick else "", f"--bars {count}",
                    "--skip-backtrader" if args.skip_backtrader else "") if a
    )
    if args.json:
        for row in results:
            print(json.dumps({**row, "engine": build}))
    else:
        cpu = platform.processor() or platform.machine()
        print(f"backtest benchmark: {count:,} one-minute bars, {len(ours)} round trips; engine {build}; "
              f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}")
        print(f"command: {command}")
        print(f"{'workload':24} {'metric':16} {'value':>14}")
        for row in results:
            print(f"{row['workload']:24} {row['metric']:16} {row['value']!s:>14} {row['unit']}")
    if same is False:
        first = next(i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b) \
            if any(a != b for a, b in zip(ours, theirs, strict=False)) else min(len(ours), len(theirs))
        print(f"trade lists differ at trade {first}: tradehall {ours[first:first + 2]}, "
              f"backtrader {theirs[first:first + 2]} ({len(ours)} vs {len(theirs)} trades)", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
