"""Projector benchmark: fills/s projected into SQLite and PostgreSQL, and lag at a paced order rate.

    .venv/bin/python bench/projector_bench.py [--quick] [--json] [--pg ADMIN_DSN] [--no-pg]

Workload: real-engine journal records from `tests/fixtures/journals.py` (one perp market, 100 accounts):
each record is one order through a real `Engine` that either rests or takes the best resting order
in full (about half and half in steady state); a trade is two fill rows (maker and taker) plus the
order, balance and position events the engine emits. "fills/s"
counts fill ROWS (both sides) committed per second, records pre-built (generation is not timed).
The lag workload feeds records at a fixed orders/s through `Projector.run` and measures, per record,
the time from its emission to the commit of its batch. PostgreSQL runs use a fresh database
th_bench_<uuid> created and dropped by the benchmark (user postgres on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

# The record generator is the tests' (one source of engine-made journals for tests and benchmarks).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.journals import EngineMarket, differences

from tradehall.journal.records import JournalRecord
from tradehall.store import Projector, ProjectorConfig, create_store_engine, upgrade

BENCH = "projector"
results: list[dict[str, Any]] = []


def emit(workload: str, metric: str, value: float, unit: str) -> None:
    results.append(
        {"bench": BENCH, "workload": workload, "metric": metric, "value": round(value, 1), "unit": unit}
    )


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="th-bench-") as directory:
        yield f"sqlite:///{Path(directory) / 'bench.db'}"


@contextmanager
def postgresql_url(admin_dsn: str) -> Iterator[str]:
    import psycopg

    name = f"th_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        info = admin.info
        host, port, user = info.host, info.port, info.user
    try:
        yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build(steps: int, seed: int = 1) -> tuple[EngineMarket, list[JournalRecord], list[JournalRecord]]:
    market = EngineMarket(accounts=100, seed=seed)
    setup = market.setup()
    return market, setup, market.steps(steps)


async def throughput(url: str, steps: int, batch: int) -> tuple[float, float, float, list[str]]:
    """(fill rows/s, records/s, fill rows per CPU second of this process, differences)."""
    upgrade(url)
    engine = create_store_engine(url)
    market, setup, records = build(steps)
    projector = Projector(engine, ProjectorConfig(max_batch_records=batch))
    await projector.apply(setup)
    fills_before = sum(1 for r in setup for ev in r.events if type(ev).__name__ == "OrderFilled")

    async def source() -> AsyncIterator[JournalRecord]:
        for record in records:
            yield record

    started, cpu_started = time.perf_counter(), time.process_time()
    await projector.run(source())
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    found = differences(engine, market)
    projector.close()
    engine.dispose()
    fills = market.fills - fills_before
    return fills / elapsed, len(records) / elapsed, fills / cpu, found


class _TimedProjector(Projector):
    """Notes when each record's batch is committed (the write stage of `run`)."""

    emitted: dict[int, float]
    latencies: list[float]
    max_lag_records: int
    _pending: list[JournalRecord]

    async def _prepare(self, records: Sequence[JournalRecord]) -> Any:
        prepared = await super()._prepare(records)
        self._pending = list(records)
        return prepared

    async def _write(self, prepared: Any) -> int:
        done = self._pending
        seq = await super()._write(prepared)
        now = time.perf_counter()
        self.latencies.extend(now - self.emitted[r.seq] for r in done if r.seq in self.emitted)
        return seq


async def paced_lag(url: str, rate: int, seconds: float) -> dict[str, float]:
    upgrade(url)
    engine = create_store_engine(url)
    market, setup, records = build(int(rate * seconds), seed=2)
    projector = _TimedProjector(engine, ProjectorConfig(max_batch_records=5000))
    projector.emitted = {}
    projector.latencies = []
    projector.max_lag_records = 0
    await projector.apply(setup)

    async def paced() -> AsyncIterator[JournalRecord]:
        start = time.perf_counter()
        sent = 0
        while sent < len(records):
            due = min(len(records), int((time.perf_counter() - start) * rate) + 1)
            while sent < due:
                record = records[sent]
                projector.emitted[record.seq] = time.perf_counter()
                projector.observe_engine_seq(record.seq)
                sent += 1
                yield record
            projector.max_lag_records = max(projector.max_lag_records, projector.lag)
            await asyncio.sleep(0.001)

    started = time.perf_counter()
    await projector.run(paced())
    elapsed = time.perf_counter() - started
    found = differences(engine, market)
    projector.close()
    engine.dispose()
    if found:
        raise AssertionError(f"read models differ after the lag run: {found[:3]}")
    ordered = sorted(projector.latencies)
    return {
        "achieved_orders_per_s": len(records) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "max_ms": ordered[-1] * 1000,
        "max_lag_records": float(projector.max_lag_records),
    }


async def run(args: argparse.Namespace) -> None:
    steps = 20_000 if args.quick else 100_000
    lag_seconds = 4.0 if args.quick else 15.0
    targets: list[tuple[str, Any]] = [("sqlite", sqlite_url)]
    if not args.no_pg:
        targets.append(("postgresql", lambda: postgresql_url(args.pg)))
    for name, make in targets:
        try:
            context = make()
            url = context.__enter__()
        except Exception as error:  # the PostgreSQL server may simply not be there
            print(f"skipping {name}: {error}")
            continue
        try:
            fills_per_s, records_per_s, fills_per_cpu_s, found = await throughput(url, steps, batch=2000)
            if found:
                raise AssertionError(f"{name}: read models differ: {found[:3]}")
            emit(f"fills_{name}", "ops_per_s", fills_per_s, "fills/s")
            emit(f"records_{name}", "ops_per_s", records_per_s, "records/s")
            # The projector's own CPU (both of its threads, not the database server): a figure that
            # varies less than wall-clock rates on a shared machine.
            emit(f"fills_{name}", "ops_per_cpu_s", fills_per_cpu_s, "fills/cpu-s")
        finally:
            context.__exit__(None, None, None)
        with make() as url:
            lag = await paced_lag(url, rate=5000, seconds=lag_seconds)
        workload = f"lag_5000_orders_per_s_{name}"
        emit(workload, "ops_per_s", lag["achieved_orders_per_s"], "orders/s")
        emit(workload, "p50_ms", lag["p50_ms"], "ms")
        emit(workload, "p99_ms", lag["p99_ms"], "ms")
        emit(workload, "max_ms", lag["max_ms"], "ms")
        emit(workload, "max_lag_records", lag["max_lag_records"], "records")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs, under 30 s")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    parser.add_argument(
        "--pg",
        default="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        help="libpq DSN of a PostgreSQL admin connection (creates and drops a database)",
    )
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(run(args))
    if args.json:
        for item in results:
            print(json.dumps(item))
        return
    mode = "quick" if args.quick else "full"
    print(
        f"projector benchmark ({mode}), {platform.processor() or platform.machine()}, nproc={os.cpu_count()}"
    )
    print(f"{'workload':<40} {'metric':<16} {'value':>12}  unit")
    for item in results:
        print(f"{item['workload']:<40} {item['metric']:<16} {item['value']:>12,.1f}  {item['unit']}")


if __name__ == "__main__":
    main()
