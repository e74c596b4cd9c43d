"""Engine benchmark: the order book alone and `Engine.apply` with ledger and events.

    .venv/bin/python bench/engine_bench.py [--quick] [--json] [--ops N] [--gc default|freeze|off]

Two seeded workloads, each run at two levels (book, engine):
- `book_mixed_70_25_5`: 70 % limit adds near the mid, 25 % cancels, 5 % crossing orders;
- `exchange_core_mix`: exchange-core's 9 % GTC, 3 % IOC, 6 % cancel, 82 % amend/move.
At the engine level only: `protected_30pct` (the `book_mixed_70_25_5` operations where 30 % of the
placements carry protection: buys are brackets with a take-profit and a stop-loss 60 ticks away, sells are
trailing stops with a 60-tick trail; measured beside the plain workload, with their cost ratio),
`quote_marks` (quotes against many assessment accounts) and
`mixed_markets` (marks, placements and cancels on 10 markets while the state holds 10 or 1,000
markets with 20 resting orders each: the per-command cost must not grow with the number of markets;
`_spread1000` sends the same commands round-robin over all 1,000, which adds the cost of cold caches).
Each level is run twice: once untimed for throughput, once timing every operation for latency.
The garbage collector stays on by default (`--gc default`); `freeze` moves the set-up state to the
permanent generation and raises the gen-0 threshold, as the service does at start.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tradehall.domain import commands as c
from tradehall.domain.enums import MarketKind, OrderSide, OrderType, SelfTradePrevention, Side, TimeInForce
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine
from tradehall.engine.book import Fill, OrderBook
from tradehall.engine.orders import Order

BENCH = "engine"
MID = 1_000_000  # ticks of 0.01: 10,000.00
TICK = Decimal("0.01")
LOT = Decimal("0.0001")
ACCOUNTS = 1000
results: list[dict[str, Any]] = []

Op = tuple[int, int, int, int, int]
"""(kind, pick, side (0 buy, 1 sell), price ticks or move delta, quantity lots); kinds below.

Cancels and moves name no order: `pick` chooses one of the orders live at that moment, the way
exchange-core's generator picks among its own live orders, so no operation targets a dead order."""
ADD, CANCEL, CROSS, IOC, MOVE = range(5)


def generate(workload: str, count: int, seed: int) -> list[Op]:
    rng = random.Random(seed)
    ops: list[Op] = []
    for _ in range(count):
        roll = rng.random()
        if workload == "book_mixed_70_25_5":
            kind = ADD if roll < 0.70 else CANCEL if roll < 0.95 else CROSS
        else:
            kind = ADD if roll < 0.09 else IOC if roll < 0.12 else CANCEL if roll < 0.18 else MOVE
        side = rng.randrange(2)
        quantity = rng.randint(1, 20)
        pick = rng.randrange(1 << 30)
        if kind == ADD:
            price = MID - rng.randint(1, 50) if side == 0 else MID + rng.randint(1, 50)
        elif kind in (CROSS, IOC):
            price = MID + rng.randint(0, 30) if side == 0 else MID - rng.randint(0, 30)
            quantity *= 3
        elif kind == MOVE:
            price = rng.randint(-5, 5) or 1
        else:
            price = 0
        ops.append((kind, pick, side, price, quantity))
    return ops


class LiveOrders:
    """Ids that may still be live, picked at random; dead ones are dropped when picked."""

    def __init__(self, is_live: Callable[[int], bool]) -> None:
        self.ids: list[int] = []
        self.is_live = is_live

    def pick(self, pick: int) -> int | None:
        ids = self.ids
        while ids:
            index = pick % len(ids)
            order_id = ids[index]
            if self.is_live(order_id):
                return order_id
            ids[index] = ids[-1]
            ids.pop()
        return None


# --- book level ---------------------------------------------------------------------------


def make_book_runner(ops: list[Op]) -> tuple[Callable[[Op], None], OrderBook]:
    """The book alone. Every placement's `Order` is built before the clock starts (as the engine level
    builds its commands first): what is timed is the book's match, add, remove and L2 delta, plus
    this driver's own bookkeeping of the live orders. A move re-places a copy of the order at its new
    price (the book drops the old entry lazily, so it must be a new object)."""
    book = OrderBook()
    live: dict[int, Order] = {}
    tracked = LiveOrders(live.__contains__)
    sides = (Side.BUY, Side.SELL)
    stp = SelfTradePrevention.CANCEL_NEWEST
    placements: list[Order] = []
    for kind, _, side, price, quantity in ops:
        if kind in (ADD, CROSS, IOC):
            order_id = len(placements) + 1
            placements.append(
                Order(
                    order_id=order_id,
                    account_id=f"acct-{order_id % ACCOUNTS}",
                    market="BTC-USD",
                    side=sides[side],
                    requested_side=OrderSide.BUY,
                    type=OrderType.LIMIT,
                    time_in_force=TimeInForce.GTC,
                    price=price,
                    stop_price=None,
                    quantity=quantity,
                    remaining=quantity,
                )
            )
    placement = iter(placements)
    match, add, remove, take_changes = book.match, book.add, book.remove, book.take_changes

    def take(order: Order, ioc: bool) -> None:
        fills: list[Fill] = []
        cancelled: list[Order] = []
        assert order.price is not None
        price, side, account_id = order.price, order.side, order.account_id
        remaining, _ = match(side, price, order.remaining, account_id, stp, fills, cancelled)
        for maker, _, _ in fills:
            if maker.remaining == 0:
                del live[maker.order_id]
        for maker in cancelled:
            del live[maker.order_id]
        order.remaining = remaining
        if remaining and not ioc:
            add(order)
            live[order.order_id] = order
            tracked.ids.append(order.order_id)
        take_changes()

    def run(op: Op) -> None:
        kind = op[0]
        if kind != CANCEL and kind != MOVE:
            take(next(placement), kind == IOC)
            return
        target = tracked.pick(op[1])
        if target is None:
            return
        old = live.pop(target)
        remove(old)
        if kind == MOVE:
            assert old.price is not None
            moved = old.copy()
            moved.price = old.price + op[3]
            take(moved, False)
        else:
            take_changes()

    return run, book


# --- engine level -------------------------------------------------------------------------


PROTECTED_SHARE = 3  # of every 10 placements
PROTECTION_TICKS = 60


def protection(number: int, side: int, price: int, only: str = "both") -> dict[str, Any]:
    """The protected placements' extra fields: a buy becomes a bracket, a sell a trailing stop (`only`:
    "bracket" or "trailing" keeps just that kind)."""
    if number % 10 >= PROTECTED_SHARE or only == ("trailing" if side == 0 else "bracket"):
        return {}
    if side == 0:
        return {
            "order_class": "bracket",
            "take_profit": TICK * (price + PROTECTION_TICKS),
            "stop_loss": TICK * (price - PROTECTION_TICKS),
        }
    return {"type": OrderType.TRAILING_STOP, "price": None, "trail_price": TICK * PROTECTION_TICKS}


def make_engine_runner(
    ops: list[Op], protected: bool = False, only: str = "both"
) -> tuple[Callable[[Op], None], Engine, list[c.Command]]:
    engine = Engine()
    engine.apply(
        c.CreateMarket(
            spec=MarketSpec(
                symbol="BTC-USD",
                kind=MarketKind.SPOT,
                base="BTC",
                quote="USD",
                tick_size=TICK,
                lot_size=LOT,
                maker_fee=Decimal("0.0001"),
                taker_fee=Decimal("0.0002"),
            )
        )
    )
    for index in range(ACCOUNTS):
        account = f"acct-{index}"
        engine.apply(c.OpenAccount(account_id=account, owner=account))
        engine.apply(c.Deposit(account_id=account, amount=Decimal("100000000")))
        engine.apply(c.Deposit(account_id=account, amount=Decimal("10000"), currency="BTC"))
    sides = (OrderSide.BUY, OrderSide.SELL)
    placements: list[c.Command] = []
    for number, (kind, _, side, price, quantity) in enumerate(ops):
        if kind in (ADD, CROSS, IOC):
            fields: dict[str, Any] = {
                "account_id": f"acct-{number % ACCOUNTS}",
                "market": "BTC-USD",
                "side": sides[side],
                "quantity": LOT * quantity,
                "price": TICK * price,
                "time_in_force": TimeInForce.IOC if kind == IOC else TimeInForce.GTC,
            }
            if protected and kind != IOC:
                fields.update(protection(number, side, price, only))
            placements.append(c.PlaceOrder(**fields))
    placement = iter(placements)
    apply = engine.apply
    orders = engine.orders
    tracked = LiveOrders(orders.__contains__)

    def run(op: Op) -> None:
        kind = op[0]
        if kind in (ADD, CROSS, IOC):
            order_id = engine.next_order_id
            apply(next(placement))
            if order_id in orders:
                tracked.ids.append(order_id)
            return
        target = tracked.pick(op[1])
        if target is None:
            return
        if kind == CANCEL:
            apply(c.CancelOrder(order_id=target))
        else:
            current = orders[target].price
            assert current is not None
            apply(c.AmendOrder(order_id=target, price=TICK * (current + op[3])))

    return run, engine, placements


# --- measurement --------------------------------------------------------------------------


def percentile(sorted_ns: list[int], fraction: float) -> float:
    index = min(len(sorted_ns) - 1, int(fraction * len(sorted_ns)))
    return sorted_ns[index] / 1000


def measure(level: str, workload: str, ops: list[Op], gc_mode: str) -> None:
    for timed in (False, True):
        if level == "book":
            run, _ = make_book_runner(ops)
        else:
            run, _, _ = make_engine_runner(ops)
        gc.collect()
        if gc_mode == "freeze":
            gc.freeze()
            gc.set_threshold(50_000, 50, 100)
        elif gc_mode == "off":
            gc.disable()
        if not timed:
            start, cpu = time.perf_counter(), time.process_time()
            for op in ops:
                run(op)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            emit(workload, level, "ops_per_s", len(ops) / elapsed, "ops/s")
            # the process's own CPU time: on a shared machine it says more than the wall clock
            emit(workload, level, "ops_per_cpu_s", len(ops) / cpu, "ops/s")
        else:
            clock = time.perf_counter_ns
            samples = [0] * len(ops)
            for index, op in enumerate(ops):
                begin = clock()
                run(op)
                samples[index] = clock() - begin
            samples.sort()
            emit(workload, level, "p50_us", percentile(samples, 0.50), "us")
            emit(workload, level, "p99_us", percentile(samples, 0.99), "us")
            emit(workload, level, "p999_us", percentile(samples, 0.999), "us")
        gc.enable()
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)


def measure_protected(count: int, gc_mode: str) -> None:
    """The plain `book_mixed_70_25_5` engine workload beside the same operations with 30 % of the
    placements protected: brackets only, trailing stops only, and both (buys bracketed, sells trailing).
    Each variant runs three times, alternating; a figure is the median run, and `cost_ratio` is a
    variant's median time per operation over the plain one's (CPU time of this process, so that other
    load on a shared machine disturbs the ratio less)."""
    ops = generate("book_mixed_70_25_5", count, seed=42)
    variants = {
        "plain_mixed_70_25_5": "",
        "brackets_30pct_mixed_70_25_5": "bracket",
        "trailing_30pct_mixed_70_25_5": "trailing",
        "protected_30pct_mixed_70_25_5": "both",
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(3):
        for name, kind in variants.items():
            run, _, _ = make_engine_runner(ops, protected=bool(kind), only=kind)
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            for op in ops:
                run(op)
            runs[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    plain_cpu = sorted(cpu for cpu, _ in runs["plain_mixed_70_25_5"])[1]
    for name, timings in runs.items():
        cpu = sorted(c for c, _ in timings)[1]
        wall = sorted(w for _, w in timings)[1]
        emit(name, "engine", "ops_per_s", len(ops) / wall, "ops/s")
        emit(name, "engine", "cpu_us_per_op", cpu / len(ops) * 1e6, "us")
        if name != "plain_mixed_70_25_5":
            emit(name, "engine", "cost_ratio", cpu / plain_cpu, "x plain")
    run, engine, _ = make_engine_runner(ops, protected=True, only="both")
    for op in ops:
        run(op)
    exits = sum(1 for o in engine.orders.values() if o.parent_order_id is not None)
    trailing = sum(1 for o in engine.orders.values() if o.type is OrderType.TRAILING_STOP)
    emit("protected_30pct_mixed_70_25_5", "engine", "exits_working_at_end", exits, "orders")
    emit("protected_30pct_mixed_70_25_5", "engine", "trailing_working_at_end", trailing, "orders")


def make_quote_marks(count: int, accounts: int) -> tuple[Engine, list[c.Command], list[c.Command]]:
    """The engine of issue 5's workload with its `accounts` positions open, its `count` quotes and its
    market orders (one per 100 quotes); shared with the instruction-count harness."""
    from tradehall.domain.enums import AccountKind, Venue

    markets = [f"PERP-{index}" for index in range(10)]
    engine = Engine()
    for symbol in markets:
        engine.apply(
            c.CreateMarket(
                spec=MarketSpec(
                    symbol=symbol,
                    kind=MarketKind.PERP,
                    base="BTC",
                    quote="USD",
                    tick_size=Decimal("0.1"),
                    lot_size=Decimal("0.001"),
                    venue=Venue.QUOTE,
                    max_leverage=Decimal("20"),
                    taker_fee=Decimal("0.0005"),
                    quote_max_age_ms=10**12,
                )
            )
        )
        engine.apply(c.Quote(market=symbol, bid=Decimal("999.9"), ask=Decimal("1000.1")))
    rng = random.Random(7)
    for index in range(accounts):
        account = f"eval-{index}"
        engine.apply(
            c.OpenAccount(
                account_id=account, owner=account, kind=AccountKind.ASSESSMENT, tier="ftmo-2step-10k"
            )
        )
        side = OrderSide.BUY if index % 2 else OrderSide.SELL
        events = engine.apply(
            c.PlaceOrder(
                account_id=account,
                market=markets[index % 10],
                side=side,
                quantity=Decimal(rng.randint(1, 50)) / 10,
                type=OrderType.MARKET,
            )
        )
        assert not any(type(e).__name__ == "OrderRejected" for e in events), events
    mids = [10_000] * 10
    quotes: list[c.Command] = []
    orders: list[c.Command] = []
    for index in range(count):
        market = index % 10
        mids[market] = max(9_000, min(11_000, mids[market] + rng.choice((-2, -1, 1, 2))))
        quotes.append(
            c.Quote(
                market=markets[market], bid=Decimal(mids[market] - 1) / 10, ask=Decimal(mids[market] + 1) / 10
            )
        )
        if index % 100 == 0:
            orders.append(
                c.PlaceOrder(
                    account_id=f"eval-{rng.randrange(accounts)}",
                    market=markets[market],
                    side=OrderSide.BUY,
                    quantity=Decimal("0.01"),
                    type=OrderType.MARKET,
                )
            )
    return engine, quotes, orders


def measure_quote_marks(count: int, accounts: int, gc_mode: str) -> None:
    """Issue 5's workload: a stream of quotes on 10 perp quote-venue markets while `accounts` assessment
    accounts hold positions there (each quote must touch only the accounts whose mark interval it leaves),
    with a market order every 100 quotes for the order latency."""
    engine, quotes, orders = make_quote_marks(count, accounts)
    gc.collect()
    if gc_mode == "freeze":
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
    elif gc_mode == "off":
        gc.disable()
    apply = engine.apply
    clock = time.perf_counter_ns
    order_samples: list[int] = []
    start, cpu = time.perf_counter(), time.process_time()
    for index, quote in enumerate(quotes):
        apply(quote)
        if index % 100 == 0:
            begin = clock()
            apply(orders[index // 100])
            order_samples.append(clock() - begin)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    gc.enable()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    failed = sum(
        1 for a in engine.accounts.values() if a.assessment is not None and a.status.value != "active"
    )
    workload = f"quote_marks_{accounts}_accounts"
    emit(workload, "engine", "quotes_per_s", (len(quotes) + len(orders)) / elapsed, "quotes/s")
    emit(workload, "engine", "quotes_per_cpu_s", (len(quotes) + len(orders)) / cpu, "quotes/s")
    order_samples.sort()
    emit(workload, "engine", "order_p50_us", percentile(order_samples, 0.5), "us")
    emit(workload, "engine", "order_p99_us", percentile(order_samples, 0.99), "us")
    emit(workload, "engine", "accounts_ended", failed, "accounts")


def measure_mixed_markets(count: int, market_count: int, touched: int, gc_mode: str) -> None:
    """Half marks, a quarter placements, a quarter cancels, round-robin over the first `touched` of
    `market_count` spot book markets each holding 20 resting orders: a command touches one market, so
    its cost should be the same with 10 markets as with 1,000 (no per-command sweep of every market
    or order)."""
    engine = Engine()
    markets = [f"SPOT-{index:04d}" for index in range(market_count)]
    traders = [f"acct-{index}" for index in range(100)]
    for account in traders:
        engine.apply(c.OpenAccount(account_id=account, owner=account))
        engine.apply(c.Deposit(account_id=account, amount=Decimal("1000000000")))
        engine.apply(c.Deposit(account_id=account, amount=Decimal("1000000"), currency="BTC"))
    rng = random.Random(11)

    def placement(symbol: str) -> c.PlaceOrder:
        side = rng.randrange(2)
        offset = rng.randint(1, 50)
        return c.PlaceOrder(
            account_id=traders[rng.randrange(len(traders))],
            market=symbol,
            side=(OrderSide.BUY, OrderSide.SELL)[side],
            quantity=LOT * rng.randint(1, 20),
            price=TICK * (MID - offset if side == 0 else MID + offset),
        )

    live: dict[str, list[int]] = {symbol: [] for symbol in markets}
    for symbol in markets:
        engine.apply(
            c.CreateMarket(
                spec=MarketSpec(
                    symbol=symbol,
                    kind=MarketKind.SPOT,
                    base="BTC",
                    quote="USD",
                    tick_size=TICK,
                    lot_size=LOT,
                    maker_fee=Decimal("0.0001"),
                    taker_fee=Decimal("0.0002"),
                )
            )
        )
        for _ in range(20):
            live[symbol].append(engine.next_order_id)
            engine.apply(placement(symbol))
    plan: list[tuple[int, str, c.Command | None]] = []
    for index in range(count):
        symbol = markets[index % touched]
        roll = rng.random()
        if roll < 0.5:
            mark = c.MarkPrice(market=symbol, price=TICK * (MID + rng.randint(-20, 20)))
            plan.append((0, symbol, mark))
        elif roll < 0.75:
            plan.append((1, symbol, placement(symbol)))
        else:
            plan.append((2, symbol, None))
    apply = engine.apply
    orders = engine.orders
    gc.collect()
    if gc_mode == "freeze":
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
    elif gc_mode == "off":
        gc.disable()
    clock = time.perf_counter_ns
    samples: list[int] = []
    for kind, symbol, command in plan:
        if kind == 2:
            ids = live[symbol]
            while ids and ids[-1] not in orders:
                ids.pop()
            if not ids:
                continue
            command = c.CancelOrder(order_id=ids.pop())
        elif kind == 1:
            live[symbol].append(engine.next_order_id)
        assert command is not None
        begin = clock()
        apply(command)
        samples.append(clock() - begin)
    gc.enable()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    workload = f"mixed_markets_{market_count}" + (
        "" if touched == min(10, market_count) else f"_spread{touched}"
    )
    emit(workload, "engine", "commands_per_s", len(samples) * 1e9 / sum(samples), "commands/s")
    samples.sort()
    emit(workload, "engine", "p50_us", percentile(samples, 0.5), "us")
    emit(workload, "engine", "p99_us", percentile(samples, 0.99), "us")


def emit(workload: str, level: str, metric: str, value: float, unit: str) -> None:
    results.append(
        {
            "bench": BENCH,
            "workload": f"{workload}:{level}",
            "metric": metric,
            "value": round(value, 3),
            "unit": unit,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100,000 operations per workload (under 30 s)")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    parser.add_argument("--ops", type=int, default=None)
    parser.add_argument("--gc", choices=("default", "freeze", "off"), default="default")
    parser.add_argument("--levels", default="book,engine")
    parser.add_argument(
        "--workloads", default="book_mixed_70_25_5,exchange_core_mix,quote_marks,mixed_markets"
    )
    parser.add_argument("--markets", default="10,1000", help="market counts for mixed_markets")
    parser.add_argument("--accounts", type=int, default=10_000, help="assessment accounts for quote_marks")
    args = parser.parse_args()
    count = args.ops or (100_000 if args.quick else 1_000_000)
    for workload in args.workloads.split(","):
        if workload == "quote_marks":
            measure_quote_marks(count // 2, args.accounts, args.gc)
            continue
        if workload == "protected_30pct":
            measure_protected(count, args.gc)
            continue
        if workload == "mixed_markets":
            for market_count in map(int, args.markets.split(",")):
                measure_mixed_markets(count // 2, market_count, min(10, market_count), args.gc)
                if market_count > 10:
                    measure_mixed_markets(count // 2, market_count, market_count, args.gc)
            continue
        ops = generate(workload, count, seed=42)
        for level in args.levels.split(","):
            measure(level, workload, ops, args.gc)
    command = "python bench/engine_bench.py " + " ".join(
        a
        for a in (
            "--quick" if args.quick else "",
            f"--gc {args.gc}",
            f"--ops {count}",
            f"--workloads {args.workloads}",
            f"--accounts {args.accounts}",
            f"--markets {args.markets}" if "mixed_markets" in args.workloads else "",
        )
        if a
    )
    if args.json:
        for row in results:
            print(json.dumps(row))
        return
    cpu = platform.processor() or platform.machine()
    machine = f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"
    print(f"engine benchmark: {count:,} operations per workload, gc={args.gc}; {machine}")
    print(f"command: {command}")
    print(f"{'workload:level':40} {'metric':10} {'value':>14}")
    for row in results:
        print(f"{row['workload']:40} {row['metric']:10} {row['value']:>14,.2f} {row['unit']}")


if __name__ == "__main__":
    main()
