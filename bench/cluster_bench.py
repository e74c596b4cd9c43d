"""Cluster benchmark: a shard's command log in NATS JetStream (R=1 on this machine) next to the local
journal (fsync batch), and the takeover time after SIGKILL of the leader process.

    .venv/bin/python bench/cluster_bench.py [--quick] [--json] [--nats URL] [--rounds N]

- `place_local_journal_fsync_batch` and `place_jetstream_r1`: the same engine runner, the same order
  placement from concurrent callers awaiting their acks, its durable log swapped (the local journal
  in a temp dir, or a JetStream stream on the NATS server). The two alternate, `--rounds` times each,
  and the best round of each is reported (the machine is shared: a quiet round is the runner's own
  figure), with the CPU seconds the benchmark process spent per 1,000 commands (the NATS server's own
  CPU is not in it).
- `ack_latency_*`: open loop, commands arriving at a fixed rate, latency from submit to ack.
- `place_jetstream_r1_over_nats_request`: the whole path, a leader *process* serving `ShardClient`
  requests over NATS request/reply.
- `takeover_after_sigkill_ttl_<ttl>`: two replica processes, SIGKILL of the leader, seconds until a
  command is acknowledged again (the standby's lease wait, catch-up and epoch marker included).
Needs NATS JetStream on 127.0.0.1:4222 (or `--nats`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
import structlog

from tradehall.domain.commands import AnyCommand, PlaceOrder
from tradehall.domain.enums import OrderSide
from tradehall.engine import Engine
from tradehall.journal import EngineFactory
from tradehall.service.cluster.client import ShardClient, ShardUnavailableError
from tradehall.service.cluster.log import JetStreamCommandLog, ShardLog, ShardState
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.status import gather_status
from tradehall.service.runner import CommandResult, EngineRunner, RunnerConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from durability_bench import ACCOUNTS, setup_commands  # the same market and accounts

BENCH = "cluster"
FACTORY = EngineFactory(Engine, Engine.restore)
results: list[dict[str, Any]] = []


def record(workload: str, metric: str, value: float, unit: str, note: str = "") -> None:
    results.append({"bench": BENCH, "workload": workload, "metric": metric, "value": round(value, 2),
                    "unit": unit, **({"note": note} if note else {})})


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def placement(n: int) -> PlaceOrder:
    """Resting limit orders on both sides that never cross (the book grows; no fills)."""
    buy = n % 2 == 0
    ticks = 1 + n % 200
    return PlaceOrder(
        account_id=ACCOUNTS[n % len(ACCOUNTS)], market="BTC-USD",
        side=OrderSide.BUY if buy else OrderSide.SELL, quantity=Decimal(1 + n % 100) / 10_000,
        price=Decimal(10_000 - ticks if buy else 10_000 + ticks) / 100, client_order_id=f"b{n}",
    )


Submit = Callable[[AnyCommand], Awaitable[CommandResult]]


async def closed_loop(submit: Submit, commands: int, clients: int) -> tuple[float, float]:
    """`clients` callers each awaiting its ack before the next: (ops/s, CPU s per 1,000 commands)."""
    per_client = commands // clients

    async def client(k: int) -> None:
        for i in range(per_client):
            await submit(placement(k * 10_000_000 + i))

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    total = per_client * clients
    return total / seconds, cpu_seconds / total * 1000


async def open_loop(submit: Submit, rate: int, seconds: float) -> tuple[float, float, float]:
    """`rate` commands/s in 1 ms ticks whatever the acks do: (p50 s, p99 s, achieved ops/s)."""
    latencies: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(n: int) -> None:
        sent = time.perf_counter()
        await submit(placement(n))
        latencies.append(time.perf_counter() - sent)

    per_tick = max(1, rate // 1000)
    started = time.perf_counter()
    tick = n = 0
    while time.perf_counter() - started < seconds:
        tick += 1
        for _ in range(per_tick):
            n += 1
            task = asyncio.create_task(one(50_000_000 + n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(max(0.0, started + tick / 1000 - time.perf_counter()))
    await asyncio.gather(*tasks)
    achieved = len(latencies) / (time.perf_counter() - started)
    p50, p99 = percentiles(latencies)
    return p50, p99, achieved


def local_runner(directory: Path) -> EngineRunner[Engine]:
    config = RunnerConfig(journal_dir=directory / "journal", snapshot_dir=directory / "snapshots",
                          fsync="batch", snapshot_every_commands=10**9, snapshot_every_seconds=1e9,
                          snapshot_on_stop=False)
    return EngineRunner(FACTORY, config)


async def jetstream_runner(js: Any, names: ShardNames) -> EngineRunner[Engine]:
    shard_log = ShardLog(js, names)
    await shard_log.ensure()
    state = ShardState(Engine())
    command_log = JetStreamCommandLog(shard_log, state, leader="bench")
    config = RunnerConfig(journal_dir=Path(), snapshot_dir=Path(), snapshot_every_commands=10**9,
                          snapshot_every_seconds=1e9, snapshot_on_stop=False)
    return EngineRunner(FACTORY, config, command_log=command_log)


async def runner_round(kind: str, base: Path, js: Any, prefix: str, commands: int, clients: int,
                       rate: int, pace: float) -> dict[str, float]:
    names = ShardNames(f"{kind}{uuid.uuid4().hex[:6]}", prefix)
    directory = base / names.shard
    runner = local_runner(directory) if kind == "local" else await jetstream_runner(js, names)
    await runner.start()
    try:
        await runner.submit_many(setup_commands())
        ops, cpu = await closed_loop(runner.submit, commands, clients)
        p50, p99, achieved = await open_loop(runner.submit, rate, pace)
    finally:
        await runner.stop()
        shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(Exception):
            await js.delete_stream(names.stream)
    return {"ops": ops, "cpu": cpu, "p50": p50, "p99": p99, "achieved": achieved}


def spawn_replica(prefix: str, shard: str, replica_id: str, ttl: float, nats_url: str, logs: Path) -> Any:
    argv = [sys.executable, "-m", "tradehall.service.cluster.replica", "--shard", shard, "--prefix", prefix,
            "--replica-id", replica_id, "--lease-ttl", str(ttl), "--nats", nats_url]
    with (logs / f"{replica_id}.log").open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


async def wait_roles(nc: Any, names: ShardNames, roles: list[str], within: float = 60.0) -> list[Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        statuses = await gather_status(nc, names, timeout=0.2)
        if sorted(s.role for s in statuses) == roles:
            return statuses
    raise RuntimeError(f"replicas of {names.shard} never reached {roles}")


async def over_nats(nc: Any, prefix: str, nats_url: str, logs: Path, commands: int, clients: int) -> None:
    names = ShardNames(f"req{uuid.uuid4().hex[:6]}", prefix)
    process = spawn_replica(prefix, names.shard, "leader", 3.0, nats_url, logs)
    try:
        await wait_roles(nc, names, ["leader"])
        client = ShardClient(nc, names, timeout=10.0)
        for command in setup_commands():
            await client.submit(command)
        ops, cpu = await closed_loop(client.submit, commands, clients)
        record(f"place_jetstream_r1_over_nats_request_{clients}_clients", "ops_per_s", ops, "ops/s",
               "leader in its own process")
        record(f"place_jetstream_r1_over_nats_request_{clients}_clients", "client_cpu_s_per_1000", cpu, "s")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(names.stream)


async def takeover(nc: Any, nats_url: str, logs: Path, ttl: float, repeats: int) -> None:
    """The lease bucket's max age is the TTL of every shard of a prefix: one prefix per TTL."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    samples: list[float] = []
    for repeat in range(repeats):
        names = ShardNames(f"tk{uuid.uuid4().hex[:6]}", prefix)
        processes = [
            spawn_replica(prefix, names.shard, f"ttl{ttl:g}-{repeat}-{i}", ttl, nats_url, logs)
            for i in (1, 2)
        ]
        try:
            statuses = await wait_roles(nc, names, ["leader", "standby"])
            client = ShardClient(nc, names, timeout=1.0)
            for command in setup_commands():
                await client.submit(command)
            for n in range(200):
                await client.submit(placement(n))
            leader = next(s for s in statuses if s.role == "leader")
            killed = time.perf_counter()
            os.kill(leader.pid, signal.SIGKILL)
            while True:
                try:
                    await client.submit(placement(1_000_000), timeout=0.5)
                    break
                except ShardUnavailableError:
                    await asyncio.sleep(0.01)
            samples.append(time.perf_counter() - killed)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                process.wait(timeout=30)
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_stream(names.stream)
    await delete_buckets(nc.jetstream(), prefix)
    workload = f"takeover_after_sigkill_ttl_{ttl:g}s"
    record(workload, "median_s", sorted(samples)[len(samples) // 2], "s", f"{repeats} kills")
    record(workload, "max_s", max(samples), "s")


async def delete_buckets(js: Any, prefix: str) -> None:
    with contextlib.suppress(Exception):
        await js.delete_key_value(f"{prefix}-leases")
    with contextlib.suppress(Exception):
        await js.delete_object_store(f"{prefix}-snapshots")


async def run(args: argparse.Namespace) -> None:
    quick = args.quick
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(args.nats)
    js = nc.jetstream()
    base = Path(tempfile.mkdtemp(prefix="tradehall-cluster-"))
    logs = args.logs or base
    logs.mkdir(parents=True, exist_ok=True)
    parts = set(args.only.split(","))
    commands, clients = (20_000, 256) if quick else (100_000, 256)
    rate, pace = 2_000, (1.5 if quick else 5.0)
    rounds = args.rounds or (1 if quick else 3)
    try:
        best: dict[str, dict[str, float]] = {}
        for _ in range(rounds if "runner" in parts else 0):
            for kind in ("local", "jetstream"):  # alternated: both see the same load on the machine
                figures = await runner_round(kind, base, js, prefix, commands, clients, rate, pace)
                kept = best.get(kind)
                if kept is None or figures["ops"] > kept["ops"]:
                    best[kind] = figures
        for kind, label in (("local", "local_journal_fsync_batch"), ("jetstream", "jetstream_r1")):
            if kind not in best:
                continue
            figures = best[kind]
            note = f"best of {rounds} alternating rounds"
            record(f"place_{label}_{clients}_clients", "ops_per_s", figures["ops"], "ops/s", note)
            record(f"place_{label}_{clients}_clients", "cpu_s_per_1000", figures["cpu"], "s", "this process")
            record(f"ack_latency_{label}_at_{rate}_per_s", "p50_us", figures["p50"] * 1e6, "us")
            record(f"ack_latency_{label}_at_{rate}_per_s", "p99_us", figures["p99"] * 1e6, "us")
            record(f"ack_latency_{label}_at_{rate}_per_s", "ops_per_s", figures["achieved"], "ops/s",
                   "achieved rate")
        if "request" in parts:
            await over_nats(nc, prefix, args.nats, logs, commands // 2, 64)
        for ttl in (1.0, 3.0) if "takeover" in parts else ():
            await takeover(nc, args.nats, logs, ttl, 1 if quick else 3)
    finally:
        await delete_buckets(js, prefix)
        await nc.close()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs, under 30 s of measuring")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument(
        "--rounds", type=int, default=0, help="alternating local/JetStream rounds (default 1, or 3)"
    )
    parser.add_argument("--only", default="runner,request,takeover", help="comma-separated parts to run")
    parser.add_argument("--logs", type=Path, default=None, help="keep the replica processes' logs here")
    args = parser.parse_args()
    host, port = args.nats.split("//")[-1].split(",")[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        print(f"cluster bench: no NATS at {args.nats}; start nats-server -js", file=sys.stderr)
        raise SystemExit(2) from None
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(run(args))
    if args.json:
        for item in results:
            print(json.dumps(item))
        return
    print(f"cluster bench  quick={args.quick}  nproc={os.cpu_count()}  {platform.processor()}  "
          f"load {os.getloadavg()[0]:.1f}")
    width = max(len(item["workload"]) for item in results)
    for item in results:
        note = f"  ({item['note']})" if "note" in item else ""
        figure = f"{item['value']:>14,.2f} {item['unit']}"
        print(f"{item['workload']:<{width}}  {item['metric']:<22} {figure}{note}")


if __name__ == "__main__":
    main()
