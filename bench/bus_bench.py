"""Event bus throughput and consumer lag, end to end, per backend.

Journal records from the real engine (`tests/fixtures/bus_records.py`: markets, accounts and deep maker
books, then crossing taker orders of `events_per_order()` events each) → `BusPublisher` → broker → a
consumer in another
process (a real consumer is another process; it also gets the second core).

- throughput: all records are in the journal source at t0; events/s = events / (t0 → the consumer has
  the last one); "publisher" = events / (t0 → the broker confirmed the last one). Consumers acknowledge
  in batches of 500. On a shared 2-core machine the broker, the publisher and the consumer compete for
  the same cores, so end to end is close to 1 / (1/publish rate + 1/consume rate).
- lag:        the journal grows at a fixed rate (default 10,000 events/s) with each record stamped with
              the wall clock when it became "durable"; lag = consumer receipt time - that stamp.

Backends: inproc (publisher and consumer in one process), redis (127.0.0.1:6379), nats (127.0.0.1:4222)
and kafka (a noida-db test broker started here, or --kafka-bootstrap). Every run uses a fresh prefix
and deletes its streams/topics afterwards.

Run: `python bench/bus_bench.py [--quick] [--json] [--backend redis --backend nats ...]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for `tests.integration`, `tests.fixtures`

from tests.fixtures.bus_records import BusMarkets, messages

from tradehall.bus.inproc import InProcessBus
from tradehall.bus.kafka import KafkaBus
from tradehall.bus.nats import NatsJetStreamBus
from tradehall.bus.position import MemoryPositionStore
from tradehall.bus.protocol import Delivery, EventBus, StartPosition
from tradehall.bus.publisher import BusPublisher
from tradehall.bus.redis_streams import RedisStreamsBus
from tradehall.bus.source import MemoryJournalSource
from tradehall.journal.records import JournalRecord

BENCH = "bus"
MARKETS = ("BTC-PERP", "ETH-PERP", "SOL-PERP", "XRP-PERP")


def make_bus(backend: str, prefix: str, kafka_bootstrap: str) -> EventBus:
    if backend == "redis":
        return RedisStreamsBus(prefix=prefix, block_ms=50, discover_interval=0.05, batch=1000)
    if backend == "nats":
        return NatsJetStreamBus(prefix=prefix, batch=500)
    if backend == "kafka":
        return KafkaBus(kafka_bootstrap, prefix=prefix, partitions=3, batch=2000)
    raise ValueError(backend)


def records(orders: int) -> tuple[list[JournalRecord], list[JournalRecord]]:
    """The setup records (markets, accounts, maker books) and `orders` crossing orders, from the engine."""
    journal = BusMarkets(MARKETS)
    return journal.setup(), journal.orders(orders)


def events_per_order() -> int:
    """How many events the engine emits for one crossing order (all the same shape)."""
    journal = BusMarkets(MARKETS[:1])
    journal.setup()
    return len(journal.crossing_order(MARKETS[0]).events)


def stamped(record: JournalRecord) -> JournalRecord:
    """The record as if it became durable now: the envelope's `ts` is the publisher's input time."""
    return JournalRecord(seq=record.seq, ts=time.time_ns(), command=record.command, events=record.events)


async def consume(bus: EventBus, expected: int, ready: Any = None) -> dict[str, Any]:
    """Read `expected` messages of every topic; returns the receipt time of the last and the lags."""
    lags: list[int] = []
    pending: list[Delivery] = []
    got = 0
    subscription = bus.subscribe(">", f"bench-{uuid.uuid4().hex[:8]}", StartPosition.EARLIEST)
    iterator = subscription.__aiter__()
    first = asyncio.ensure_future(iterator.__anext__())
    await asyncio.sleep(0.3)  # let the consumer join its group before the clock starts
    if ready is not None:
        ready.set()
    delivery = await first
    while True:
        now = time.time_ns()
        lags.append(now - delivery.envelope.ts)
        pending.append(delivery)
        got += 1
        if len(pending) >= 500 or got >= expected:
            await bus.ack(*pending)
            pending.clear()
        if got >= expected:
            break
        delivery = await iterator.__anext__()
    end = time.time_ns()
    await subscription.aclose()  # type: ignore[attr-defined]
    return {"end_ns": end, "lags": lags}


def logs_to_stderr() -> None:
    """Keep stdout for the table and the JSON lines."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def consumer_process(backend: str, prefix: str, kafka: str, expected: int, ready: Any, results: Any) -> None:
    logs_to_stderr()

    async def run() -> dict[str, Any]:
        bus = make_bus(backend, prefix, kafka)
        await bus.start()
        try:
            return await consume(bus, expected, ready)
        finally:
            await bus.close()

    results.put(asyncio.run(run()))


def percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])


async def feed_at_rate(source: MemoryJournalSource, pending: list[JournalRecord], rate_events: int) -> None:
    """Append records so that `rate_events` events/s become durable, in 5 ms steps."""
    records_per_second = rate_events / events_per_order()
    start = time.perf_counter()
    index = 0
    while index < len(pending):
        due = int((time.perf_counter() - start) * records_per_second) + 1
        while index < min(due, len(pending)):
            source.append(stamped(pending[index]))
            index += 1
        await asyncio.sleep(0.005)


async def run_case(backend: str, kafka: str, orders: int, rate: int | None) -> dict[str, float]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    setup, orders_records = records(orders)
    all_records = setup + orders_records
    expected = messages(all_records)
    publisher_bus = InProcessBus() if backend == "inproc" else make_bus(backend, prefix, kafka)
    await publisher_bus.start()
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    process = None
    local_consumer: asyncio.Task[dict[str, Any]] | None = None
    try:
        if backend == "inproc":
            local_consumer = asyncio.ensure_future(consume(publisher_bus, expected))
            await asyncio.sleep(0.35)
        else:
            ready = context.Event()
            process = context.Process(
                target=consumer_process, args=(backend, prefix, kafka, expected, ready, results)
            )
            process.start()
            while not ready.is_set():
                await asyncio.sleep(0.02)
        if rate is None:
            source = MemoryJournalSource(all_records)
            t0 = time.time_ns()
        else:
            source = MemoryJournalSource(setup)
            t0 = time.time_ns()
        publisher = BusPublisher(publisher_bus, source, MemoryPositionStore(), batch_max=1000)
        await publisher.start()
        if rate is not None:
            await feed_at_rate(source, orders_records, rate)
        await publisher.wait_published(all_records[-1].seq, timeout=120)
        published_ns = time.time_ns()
        if local_consumer is not None:
            result = await asyncio.wait_for(local_consumer, 120)
        else:
            loop = asyncio.get_running_loop()
            result = await asyncio.wait_for(loop.run_in_executor(None, results.get), 120)
        await publisher.stop()
    finally:
        if process is not None:
            process.join(10)
            if process.is_alive():
                process.kill()
        with contextlib.suppress(Exception):
            purge = getattr(publisher_bus, "purge", None)
            if purge is not None:
                await purge()
        await publisher_bus.close()
    elapsed = (result["end_ns"] - t0) / 1e9
    lags = result["lags"][messages(setup) :] if rate is not None else result["lags"]
    return {
        "events": float(expected),
        "publish_ops_per_s": expected / ((published_ns - t0) / 1e9),
        "seconds": elapsed,
        "ops_per_s": expected / elapsed,
        "p50_us": percentile(lags, 0.50) / 1000,
        "p99_us": percentile(lags, 0.99) / 1000,
        "p999_us": percentile(lags, 0.999) / 1000,
    }


@contextlib.contextmanager
def kafka_broker(bootstrap: str | None) -> Iterator[str | None]:
    if bootstrap:
        yield bootstrap
        return
    try:
        from tests.integration.kafka_broker import KafkaTestBroker, broker_binary
    except ImportError:
        yield None
        return
    binary = broker_binary()
    if binary is None:
        yield None
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tradehall-bench-kafka-") as directory:
        broker = KafkaTestBroker(binary, Path(directory))
        broker.start()
        try:
            yield broker.bootstrap
        finally:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small runs: under 30 s for all backends.")
    parser.add_argument("--json", action="store_true", help="One JSON object per figure.")
    parser.add_argument("--backend", action="append", choices=["inproc", "redis", "nats", "kafka"])
    parser.add_argument("--rate", type=int, default=10_000, help="Events/s of the lag workload.")
    parser.add_argument("--kafka-bootstrap", default=None, help="Use this Kafka instead of a test broker.")
    args = parser.parse_args()
    logs_to_stderr()
    backends = args.backend or ["inproc", "redis", "nats", "kafka"]
    throughput_events = 20_000 if args.quick else 100_000
    throughput_orders = throughput_events // events_per_order()
    lag_seconds = 2 if args.quick else 6
    lag_orders = args.rate * lag_seconds // events_per_order()

    rows: list[tuple[str, str, dict[str, float]]] = []
    with kafka_broker(args.kafka_bootstrap) as kafka:
        for backend in backends:
            if backend == "kafka" and kafka is None:
                print(
                    "kafka: no broker (pip install noida-db or pass --kafka-bootstrap); skipped",
                    file=sys.stderr,
                )
                continue
            bootstrap = kafka or ""
            rows.append(
                (backend, "throughput", asyncio.run(run_case(backend, bootstrap, throughput_orders, None)))
            )
            rows.append(
                (
                    backend,
                    f"lag_at_{args.rate}_per_s",
                    asyncio.run(run_case(backend, bootstrap, lag_orders, args.rate)),
                )
            )

    if args.json:
        for backend, workload, figures in rows:
            if workload == "throughput":
                publisher = {
                    "bench": BENCH,
                    "workload": f"{backend}_throughput_publisher_only",
                    "metric": "ops_per_s",
                    "value": round(figures["publish_ops_per_s"], 1),
                    "unit": "events/s",
                }
                print(json.dumps(publisher))
            metrics = (
                ["ops_per_s"] if workload == "throughput" else ["ops_per_s", "p50_us", "p99_us", "p999_us"]
            )
            for metric in metrics:
                unit = "events/s" if metric == "ops_per_s" else "us"
                print(
                    json.dumps(
                        {
                            "bench": BENCH,
                            "workload": f"{backend}_{workload}",
                            "metric": metric,
                            "value": round(figures[metric], 1),
                            "unit": unit,
                        }
                    )
                )
        return
    widths = (-8, -20, 8, 10, 10, 10, 10)
    header = ("backend", "workload", "events", "events/s", "lag p50", "lag p99", "lag p99.9")
    print(
        " ".join(f"{name:<{-w}}" if w < 0 else f"{name:>{w}}" for name, w in zip(header, widths, strict=True))
    )
    for backend, workload, figures in rows:
        line = f"{backend:<8} {workload:<20} {int(figures['events']):>8} {figures['ops_per_s']:>10,.0f}"
        line += f" (publisher {figures['publish_ops_per_s']:,.0f}/s)"
        if workload != "throughput":  # a throughput run's records are not stamped: no lag to show
            line += "".join(f" {figures[key] / 1000:>8.1f}ms" for key in ("p50_us", "p99_us", "p999_us"))
        print(line)


if __name__ == "__main__":
    main()
