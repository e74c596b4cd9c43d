"""Durability benchmark: commands/s through the engine runner + journal (fsync batch / always / none),
ack latency at a paced 20,000 commands/s, and recovery time of a 1,000,000-command journal with and
without a snapshot.

    .venv/bin/python bench/durability_bench.py [--quick] [--json] [--engine real|toy] [--dir PATH]

The workload is place/cancel on one spot market (limit orders on both sides that do not cross,
cancels of random open orders, about 55/45), so the figures are of the durable runtime with the
real book and ledger behind it; `--engine toy` swaps in the trivial engine of
tradehall.journal.testing to show the runtime's own overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import structlog

from tradehall.domain.commands import AnyCommand, CancelOrder, CreateMarket, Deposit, OpenAccount, PlaceOrder
from tradehall.domain.enums import MarketKind, OrderSide
from tradehall.domain.events import OrderAccepted
from tradehall.domain.market import MarketSpec
from tradehall.journal import EngineFactory, Journal, JournalRecord, SnapshotStore, recover
from tradehall.journal.recovery import EngineLike
from tradehall.journal.testing import ToyEngine
from tradehall.service.runner import EngineRunner, RunnerConfig

BENCH = "durability"
ACCOUNTS = ("mm-1", "mm-2", "mm-3", "mm-4")
results: list[dict[str, Any]] = []


def factory_for(name: str) -> EngineFactory[Any]:
    if name == "toy":
        return EngineFactory(ToyEngine, ToyEngine.restore)
    from tradehall.engine import Engine

    return EngineFactory(Engine, Engine.restore)


def setup_commands() -> list[AnyCommand]:
    spec = MarketSpec(symbol="BTC-USD", kind=MarketKind.SPOT, base="BTC", quote="USD",
                      tick_size=Decimal("0.01"), lot_size=Decimal("0.0001"))
    stream: list[AnyCommand] = [CreateMarket(spec=spec)]
    for account in ACCOUNTS:
        stream += [
            OpenAccount(account_id=account, owner=account),
            Deposit(account_id=account, amount=Decimal("1000000000")),
            Deposit(account_id=account, amount=Decimal("10000000"), currency="BTC"),
        ]
    return stream


class PlaceCancelFlow:
    """Keeps a few hundred resting orders: places on both sides without crossing, cancels random ones."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.open: list[int] = []
        self.n = 0

    def next(self) -> AnyCommand:
        rng = self.rng
        self.n += 1
        if self.open and (len(self.open) > 400 or rng.random() < 0.45):
            index = rng.randrange(len(self.open))
            self.open[index], self.open[-1] = self.open[-1], self.open[index]
            return CancelOrder(order_id=self.open.pop())
        buy = rng.random() < 0.5
        ticks = rng.randint(1, 200)
        price = Decimal(10_000 - ticks if buy else 10_000 + ticks) / 100
        return PlaceOrder(
            account_id=ACCOUNTS[self.n % len(ACCOUNTS)], market="BTC-USD",
            side=OrderSide.BUY if buy else OrderSide.SELL, quantity=Decimal(rng.randint(1, 100)) / 10_000,
            price=price, client_order_id=f"b{self.n}",
        )

    def observe(self, events: Any) -> None:
        for event in events:
            if isinstance(event, OrderAccepted):
                self.open.append(event.order_id)


def record(workload: str, metric: str, value: float, unit: str, note: str = "") -> None:
    results.append({"bench": BENCH, "workload": workload, "metric": metric, "value": round(value, 2),
                    "unit": unit, **({"note": note} if note else {})})


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return at(0.50), at(0.99), at(0.999)


def runner_config(directory: Path, fsync: str, **extra: Any) -> RunnerConfig:
    return RunnerConfig(journal_dir=directory / "journal", snapshot_dir=directory / "snapshots",
                        fsync=fsync, snapshot_every_commands=10**9, snapshot_every_seconds=1e9,
                        snapshot_on_stop=False, **extra)  # type: ignore[arg-type]


async def throughput(directory: Path, factory: EngineFactory[Any], engine: str, fsync: str,
                     commands: int, clients: int) -> None:
    """`clients` concurrent callers, each awaiting its ack before sending the next command."""
    runner = EngineRunner(factory, runner_config(directory, fsync, max_pending=clients * 2))
    await runner.start()
    await runner.submit_many(setup_commands())
    per_client = commands // clients

    async def client(k: int) -> None:
        flow = PlaceCancelFlow(k)
        flow.n = k * 10_000_000
        for _ in range(per_client):
            flow.observe((await runner.submit(flow.next())).events)

    started = time.perf_counter()
    batches_before, fsyncs_before = runner.batches_synced, runner.journal.fsync_count
    await asyncio.gather(*(client(k) for k in range(clients)))
    seconds = time.perf_counter() - started
    total = per_client * clients
    batches = runner.batches_synced - batches_before
    fsyncs = runner.journal.fsync_count - fsyncs_before
    await runner.stop()
    workload = f"place_cancel_{engine}_fsync_{fsync}_{clients}_clients"
    record(workload, "ops_per_s", total / seconds, "ops/s")
    record(workload, "commands_per_fsync", total / max(fsyncs, 1) if fsync != "none" else total / batches,
           "commands")


async def throughput_batched(directory: Path, factory: EngineFactory[Any], engine: str, fsync: str,
                             commands: int, batch: int) -> None:
    """One caller handing the runner `batch` commands at a time (a gateway that batches)."""
    runner = EngineRunner(factory, runner_config(directory, fsync))
    await runner.start()
    await runner.submit_many(setup_commands())
    flow = PlaceCancelFlow(7)
    started = time.perf_counter()
    done = 0
    while done < commands:
        chunk = [flow.next() for _ in range(batch)]
        for result in await runner.submit_many(chunk):
            flow.observe(result.events)
        done += batch
    seconds = time.perf_counter() - started
    await runner.stop()
    record(f"place_cancel_{engine}_fsync_{fsync}_submit_many_{batch}", "ops_per_s", done / seconds, "ops/s",
           "command generation included")


async def paced_latency(directory: Path, factory: EngineFactory[Any], engine: str, rate: int,
                        seconds: float, fsync: str = "batch") -> None:
    """Open loop: `rate` commands/s arrive in 1 ms ticks whatever the acks do; latency = submit to ack."""
    runner = EngineRunner(factory, runner_config(directory, fsync))
    await runner.start()
    await runner.submit_many(setup_commands())
    flow = PlaceCancelFlow(11)
    latencies: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(command: AnyCommand) -> None:
        sent = time.perf_counter()
        result = await runner.submit(command)
        latencies.append(time.perf_counter() - sent)
        flow.observe(result.events)

    per_tick = rate // 1000
    started = time.perf_counter()
    tick = 0
    while time.perf_counter() - started < seconds:
        tick += 1
        for _ in range(per_tick):
            task = asyncio.create_task(one(flow.next()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        delay = started + tick / 1000 - time.perf_counter()
        await asyncio.sleep(max(0.0, delay))
    await asyncio.gather(*tasks)
    achieved = len(latencies) / (time.perf_counter() - started)
    await runner.stop()
    p50, p99, p999 = percentiles(latencies)
    workload = f"ack_latency_{engine}_fsync_{fsync}_at_{rate}_per_s"
    record(workload, "p50_us", p50 * 1e6, "us")
    record(workload, "p99_us", p99 * 1e6, "us")
    record(workload, "p999_us", p999 * 1e6, "us")
    record(workload, "ops_per_s", achieved, "ops/s", "achieved rate")


def fsync_latency(directory: Path, count: int) -> None:
    """The device's own fdatasync latency after a 20 kB write: the floor of every ack under `batch`."""
    samples = []
    fd = os.open(directory / "probe", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(count):
            os.write(fd, b"x" * 20_000)
            started = time.perf_counter()
            os.fdatasync(fd)
            samples.append(time.perf_counter() - started)
    finally:
        os.close(fd)
    p50, p99, _ = percentiles(samples)
    record("fdatasync_20kB", "p50_us", p50 * 1e6, "us")
    record("fdatasync_20kB", "p99_us", p99 * 1e6, "us")


def build_journal(directory: Path, factory: EngineFactory[Any], count: int, snapshot_at: int) -> str:
    """Writes `count` place/cancel records (with the engine's events) and a snapshot at `snapshot_at`."""
    engine: EngineLike = factory.create()
    journal = Journal.open(directory / "journal", fsync="none")
    flow = PlaceCancelFlow(3)
    setup = setup_commands()
    batch: list[JournalRecord] = []
    replace = msgspec.structs.replace
    store = SnapshotStore(directory / "snapshots")
    for seq in range(1, count + 1):
        command = setup[seq - 1] if seq <= len(setup) else flow.next()
        command = replace(command, ts=1_700_000_000_000_000_000 + seq)
        events = tuple(engine.apply(command))
        flow.observe(events)
        batch.append(JournalRecord(seq=seq, ts=command.ts, command=command, events=events))
        if len(batch) == 4096:
            journal.append(batch)
            batch = []
        if seq == snapshot_at:
            store.write(seq, engine.snapshot())
    journal.append(batch)
    journal.close()
    return engine.state_hash()


def recovery_times(directory: Path, factory: EngineFactory[Any], engine: str, count: int) -> None:
    snapshot_at = count - count // 10
    expected = build_journal(directory, factory, count, snapshot_at)
    size = sum(p.stat().st_size for p in (directory / "journal").glob("*.wal"))
    record(f"journal_{engine}_{count}_commands", "bytes_per_record", size / count, "bytes")
    for label, use_snapshots in (("without_snapshot", False), ("with_snapshot_at_90pct", True)):
        started = time.perf_counter()
        result = recover(directory / "journal", directory / "snapshots", factory, open_for_append=False,
                         use_snapshots=use_snapshots)
        seconds = time.perf_counter() - started
        assert result.engine.state_hash() == expected, "recovered state differs"
        record(f"recovery_{engine}_{count}_commands_{label}", "seconds", seconds, "s",
               f"replayed {result.replayed}")
        record(f"recovery_{engine}_{count}_commands_{label}", "ops_per_s", result.replayed / seconds, "ops/s")


def run_case(base: Path, name: str, body: Callable[[Path], Any]) -> None:
    directory = base / name
    directory.mkdir(parents=True)
    try:
        outcome = body(directory)
        if asyncio.iscoroutine(outcome):
            asyncio.run(outcome)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs, under 30 s")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    parser.add_argument("--engine", choices=["real", "toy"], default="real")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the journal (default: a temp dir)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    factory = factory_for(args.engine)
    engine = args.engine
    quick = args.quick
    base = Path(tempfile.mkdtemp(prefix="tradehall-durability-", dir=args.dir))
    try:
        big = 40_000 if quick else 400_000
        run_case(base, "batch-clients", lambda d: throughput(d, factory, engine, "batch", big, 1024))
        run_case(base, "batch-many", lambda d: throughput_batched(d, factory, engine, "batch", big, 1000))
        run_case(base, "none-clients", lambda d: throughput(d, factory, engine, "none", big, 1024))
        always = 500 if quick else 5_000
        run_case(base, "always", lambda d: throughput(d, factory, engine, "always", always, 64))
        pace = 1.5 if quick else 10.0
        run_case(base, "latency", lambda d: paced_latency(d, factory, engine, 20_000, pace))
        run_case(base, "latency-5k", lambda d: paced_latency(d, factory, engine, 5_000, pace))
        run_case(base, "latency-nosync", lambda d: paced_latency(d, factory, engine, 20_000, pace, "none"))
        run_case(base, "fsync", lambda d: fsync_latency(d, 200 if quick else 1000))
        journaled = 100_000 if quick else 1_000_000
        run_case(base, "recovery", lambda d: recovery_times(d, factory, engine, journaled))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        for item in results:
            print(json.dumps(item))
        return
    print(f"durability bench  engine={engine}  quick={quick}  nproc={os.cpu_count()}  {platform.processor()}")
    width = max(len(item["workload"]) for item in results)
    for item in results:
        note = f"  ({item['note']})" if "note" in item else ""
        figure = f"{item['value']:>14,.2f} {item['unit']}"
        print(f"{item['workload']:<{width}}  {item['metric']:<18} {figure}{note}")


if __name__ == "__main__":
    main()
