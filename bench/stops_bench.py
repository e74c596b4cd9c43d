"""Trailing stops: what one price update costs with N stops waiting, and how it grows with the stops it moves.

    .venv/bin/python bench/stops_bench.py [--quick] [--json]

One spot book market; N trailing sell stops and N plain sell stops on the mark (`trigger: "mark"`), none
near its trigger. Each figure is the median (and p99) time of one `MarkPrice` command, the whole engine
path (mark-to-market, the watermark step, the trigger search):

- `idle_N`: marks that move no watermark (below every stop's high, above every stop): the cost must not
  grow with N (the watermark step bisects its lists and takes nothing).
- `rising_N`: each mark one tick higher, so every trailing stop's watermark moves (and its stop is
  re-keyed): the cost grows with N, and `us_per_moved` is what one moved stop costs.
- `partial_100_of_N`: N stops whose highs lie far above, and 100 that trail the market: each rising mark
  moves those 100 only, so the cost stays that of 100 moved stops whatever N is.
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
from tradehall.domain.enums import MarketKind, OrderSide, OrderType, StopTrigger
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine

BENCH = "stops"
TICK = Decimal("0.01")
SYMBOL = "BTC-USD"
results: list[dict[str, object]] = []


def emit(workload: str, metric: str, value: float, unit: str) -> None:
    results.append(
        {"bench": BENCH, "workload": workload, "metric": metric, "value": round(value, 3), "unit": unit}
    )


def mark(price_ticks: int) -> c.MarkPrice:
    return c.MarkPrice(market=SYMBOL, price=TICK * price_ticks)


def engine_with_stops(high: int, far: int, trailing_near: int) -> Engine:
    """`far` trailing sells accepted at a mark of `high` (trail 40 %) and as many plain sell stops at
    half of it, then the mark down to 200.00, where `trailing_near` trailing sells start (trail 30 %)."""
    engine = Engine()
    engine.apply(c.Configure(max_open_orders=10_000_000))
    engine.apply(
        c.CreateMarket(
            spec=MarketSpec(
                symbol=SYMBOL,
                kind=MarketKind.SPOT,
                base="BTC",
                quote="USD",
                tick_size=TICK,
                lot_size=Decimal("0.0001"),
            )
        )
    )
    engine.apply(c.OpenAccount(account_id="t", owner="t"))
    engine.apply(c.Deposit(account_id="t", amount=Decimal("1000"), currency="BTC"))

    def place(**fields: object) -> None:
        events = engine.apply(
            c.PlaceOrder(
                account_id="t",
                market=SYMBOL,
                side=OrderSide.SELL,
                quantity=Decimal("0.0001"),
                price=None,
                trigger=StopTrigger.MARK,
                **fields,  # type: ignore[arg-type]
            )
        )
        assert type(events[0]).__name__ == "OrderAccepted", events

    engine.apply(mark(high))
    for _ in range(far):
        place(type=OrderType.TRAILING_STOP, trail_percent=Decimal("40"))
        place(type=OrderType.STOP, stop_price=TICK * (high // 2))
    engine.apply(mark(20_000))
    for _ in range(trailing_near):
        place(type=OrderType.TRAILING_STOP, trail_percent=Decimal("30"))
    return engine


def timed(engine: Engine, commands: list[c.MarkPrice]) -> list[int]:
    apply = engine.apply
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    samples = []
    for command in commands:
        begin = clock()
        events = apply(command)
        samples.append(clock() - begin)
        assert len(events) == 1, events  # the mark only: nothing fired
    gc.enable()
    samples.sort()
    return samples


def median_us(samples: list[int]) -> float:
    return samples[len(samples) // 2] / 1000


def p99_us(samples: list[int]) -> float:
    return samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="up to 10,000 stops (under 30 s)")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    args = parser.parse_args()
    sizes = (0, 1_000, 10_000) if args.quick else (0, 1_000, 10_000, 100_000)
    updates = 2_000
    for size in sizes:
        engine = engine_with_stops(high=30_000, far=0, trailing_near=size)
        # idle: the mark swings between 199.00 and 199.50, under every high (200.00), above every stop
        idle = timed(engine, [mark(19_900 + 50 * (i % 2)) for i in range(updates)])
        emit(f"idle_{size}", "p50_us", median_us(idle), "us")
        emit(f"idle_{size}", "p99_us", p99_us(idle), "us")
        # rising: one tick higher each time, every trailing stop moves
        steps = max(20, min(500, 200_000 // max(size, 1)))  # about 200,000 moves at most
        rising = timed(engine, [mark(20_001 + i) for i in range(steps)])
        emit(f"rising_{size}", "p50_us", median_us(rising), "us")
        if size:
            emit(f"rising_{size}", "us_per_moved", (median_us(rising) - median_us(idle)) / size, "us")
    for size in sizes:
        engine = engine_with_stops(high=30_000, far=size, trailing_near=100)
        partial = timed(engine, [mark(20_001 + i) for i in range(updates)])
        emit(f"partial_100_of_{size}", "p50_us", median_us(partial), "us")
        emit(f"partial_100_of_{size}", "p99_us", p99_us(partial), "us")
    command = "python bench/stops_bench.py" + (" --quick" if args.quick else "")
    if args.json:
        for row in results:
            print(json.dumps(row))
        return
    cpu = platform.processor() or platform.machine()
    machine = f"{os.cpu_count()} cpus, {cpu}, Python {platform.python_version()}"
    print(f"stops benchmark: one MarkPrice per sample; {machine}\n{command}")
    print(f"{'workload':28} {'metric':14} {'value':>12}")
    for row in results:
        print(f"{row['workload']:28} {row['metric']:14} {row['value']:>12,.3f} {row['unit']}")


if __name__ == "__main__":
    main()
