"""Smart order routing: what one routing decision costs with 5 venues x 20 levels.

    .venv/bin/python bench/routing_bench.py [--quick] [--json]

One instrument, BTC-USD, listed on 5 spot markets (3 book venues with 20 resting ask levels each and
2 quote venues quoting 20 levels), each with its own taker fee, tick and lot. Figures:

- `decision_5x20`: `Router.decide` for a smart limit buy that walks about half the merged depth: every
  check, the venues' executable levels and the fee-adjusted walk (target <= 50 us, interpreted).
- `route_order_5x20`: the whole `RouteOrder` command through `Engine.apply` (the decision, the children
  through intake, their fills and the parent's event) on a copy of the state restored before each sample.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
from decimal import Decimal

from tradehall.domain import commands as c
from tradehall.domain.enums import MarketKind, OrderSide, Venue
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine

BENCH = "routing"
LEVELS = 20
BOOKS = (
    ("BTC-USD", "0.00100", "0.01", "0.0001"),
    ("BTC-USD.OKX", "0.00098", "0.1", "0.00001"),
    ("BTC-USD.BYBIT", "0.00102", "0.01", "0.001"),
)
QUOTES = (("BTC-USD.COINBASE", "0.00096", "0.01", "0.0001"), ("BTC-USD.KRAKEN", "0.00104", "0.1", "0.0001"))
results: list[dict[str, object]] = []


def emit(workload: str, metric: str, value: float, unit: str) -> None:
    results.append(
        {"bench": BENCH, "workload": workload, "metric": metric, "value": round(value, 3), "unit": unit}
    )


def build() -> Engine:
    engine = Engine()
    for accounts in ("m", "t"):
        engine.apply(c.OpenAccount(account_id=accounts, owner=accounts))
        engine.apply(c.Deposit(account_id=accounts, amount=Decimal("100000000")))
        engine.apply(c.Deposit(account_id=accounts, amount=Decimal("1000"), currency="BTC"))
    for index, (symbol, fee, tick, lot) in enumerate(BOOKS + QUOTES):
        spec = MarketSpec(
            symbol=symbol,
            instrument="BTC-USD",
            kind=MarketKind.SPOT,
            base="BTC",
            quote="USD",
            tick_size=Decimal(tick),
            lot_size=Decimal(lot),
            taker_fee=Decimal(fee),
            venue=Venue.QUOTE if index >= len(BOOKS) else Venue.BOOK,
            slippage=Decimal("0.00002"),
        )
        events = engine.apply(c.CreateMarket(spec=spec))
        assert type(events[0]).__name__ == "MarketCreated", events
        base = Decimal(60_000) + Decimal(index) * Decimal("1.2")
        if index < len(BOOKS):
            for level in range(LEVELS):
                engine.apply(
                    c.PlaceOrder(
                        account_id="m",
                        market=symbol,
                        side=OrderSide.SELL,
                        quantity=Decimal("0.05"),
                        price=base + Decimal(level),
                    )
                )
        else:
            asks = tuple((base + Decimal(level), Decimal("0.05")) for level in range(LEVELS))
            engine.apply(c.Quote(market=symbol, bids=((base - 1, Decimal(1)),), asks=asks))
    return engine


def order() -> c.RouteOrder:
    # 5 venues x 20 levels of 0.05: 2.5 BTC walks about half the merged depth
    return c.RouteOrder(
        account_id="t",
        instrument="BTC-USD",
        side=OrderSide.BUY,
        quantity=Decimal("2.5"),
        price=Decimal("60100"),
    )


def percentile(samples: list[int], q: float) -> float:
    return samples[min(len(samples) - 1, int(len(samples) * q))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples (under 10 s)")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    args = parser.parse_args()
    samples_n = 2_000 if args.quick else 20_000
    engine = build()
    command = order()
    decide = engine.router.decide
    plan = decide(command)
    assert len(plan.sends) == 5, plan.sends
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    samples = []
    for _ in range(samples_n):
        begin = clock()
        decide(command)
        samples.append(clock() - begin)
    gc.enable()
    samples.sort()
    emit("decision_5x20", "p50_us", percentile(samples, 0.5), "us")
    # CPU time of the whole loop (no per-sample clock reads): what a decision costs when the machine is
    # shared and wall-clock samples include time the process waited for a core
    cpu_begin = time.process_time_ns()
    for _ in range(samples_n):
        decide(command)
    emit("decision_5x20", "cpu_mean_us", (time.process_time_ns() - cpu_begin) / samples_n / 1000, "us")
    emit("decision_5x20", "p99_us", percentile(samples, 0.99), "us")
    snapshot = engine.snapshot()
    whole = []
    for _ in range(samples_n // 20):
        copy = Engine.restore(snapshot)
        gc.collect()
        begin = clock()
        events = copy.apply(command)
        whole.append(clock() - begin)
        assert type(events[-1]).__name__ != "OrderRejected", events
    whole.sort()
    emit("route_order_5x20", "p50_us", percentile(whole, 0.5), "us")
    emit("route_order_5x20", "p99_us", percentile(whole, 0.99), "us")
    if args.json:
        for row in results:
            print(json.dumps(row))
        return
    cpu = platform.processor() or platform.machine()
    print(f"routing benchmark; {os.cpu_count()} cpus, {cpu}, Python {platform.python_version()}")
    print("python bench/routing_bench.py" + (" --quick" if args.quick else ""))
    print(f"{'workload':22} {'metric':8} {'value':>10}")
    for row in results:
        print(f"{row['workload']!s:22} {row['metric']!s:8} {row['value']!s:>10} {row['unit']}")


if __name__ == "__main__":
    main()
