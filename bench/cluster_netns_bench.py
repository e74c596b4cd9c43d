"""A shard on a real (namespaced) network: throughput, ack latency and CPU with R=3 and R=1, and takeover.

Each case builds its own network with the test harness (`tests/cluster/netns.py`: Linux network
namespaces on a bridge, so it needs root, iproute2 and nats-server): NATS servers in their own
namespaces (3 clustered with the shard's stream at R=3, or 1 with R=1), the shard's leader replica
(`python -m tradehall.service.cluster.replica`) in another, and the gateway load generator
(`tests/cluster/load_child.py`: `--clients` closed-loop clients placing orders through `ShardClient`)
in a fourth. A command is acknowledged once JetStream stored it (on 2 of 3 servers at R=3) and the
leader applied it.

- ops_per_s:   acknowledged orders per second over the measured window (after a warm-up)
- p50_us/p99_us: ack latency seen by the gateway (request sent -> reply), first attempts only
- leader_cpu_ms_per_1k / nats_cpu_ms_per_1k: CPU time (user+system, from /proc) of the leader process
  and of all NATS servers per 1,000 acknowledged orders -- steadier than wall-clock figures on a
  loaded machine
- local_journal: the same orders from the same number of closed-loop clients, submitted in-process to
  an `EngineRunner` with the local journal (fsync `batch`) -- no network, no NATS; its CPU figure is
  the whole process (runner and clients)
- takeover_s:  SIGKILL of the leader under load (a hot standby running) -> the first acknowledgement
  of an order the standby wrote (`--takeovers N` kills)

The R=3 and R=1 cases alternate (`--rounds`), so both see the same machine load. Run as root:
`python bench/cluster_netns_bench.py [--quick] [--json] [--clients 16] [--rounds 2] [--takeovers 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for `tests.cluster`

from tests.cluster.netns import NatsCluster, Network, unavailable_reason, wait_for
from tests.cluster.shard_support import Load, ShardCluster, check_log, first_ack_by, wait_acks

BENCH = "cluster_netns"
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def throughput_case(servers: int, clients: int, warmup: float, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        network = Network(Path(tmp) / "net")
        try:
            nats_cluster = NatsCluster(network, servers)
            nats_cluster.start()
            nats_cluster.wait_formed()
            shard = ShardCluster(network, nats_cluster)
            leader = shard.start_replica("a")
            shard.wait_role("a", "leader")
            load = shard.start_load(seed=1, clients=clients)
            wait_for(lambda: load.ready, 60, "the load generator", 0.1, lambda: load.proc.tail())
            time.sleep(warmup)
            nats_pids = [server.proc.pid for server in nats_cluster.servers if server.proc]
            first = len(load.acks)
            cpu_leader, cpu_nats = cpu_seconds(leader.proc.pid), sum(map(cpu_seconds, nats_pids))
            started = time.monotonic()
            time.sleep(seconds)
            acks = load.acks
            elapsed = time.monotonic() - started
            cpu_leader = cpu_seconds(leader.proc.pid) - cpu_leader
            cpu_nats = sum(map(cpu_seconds, nats_pids)) - cpu_nats
            load.stop()
        finally:
            network.close()
    window = acks[first:]
    latencies = [ack["t"] - ack["t_first"] for ack in window if ack["attempts"] == 1]
    count = len(window)
    return {
        "ops_per_s": round(count / elapsed, 1),
        "p50_us": round(1e6 * percentile(latencies, 0.50)),
        "p99_us": round(1e6 * percentile(latencies, 0.99)),
        "leader_cpu_ms_per_1k": round(1e6 * cpu_leader / count, 1),
        "nats_cpu_ms_per_1k": round(1e6 * cpu_nats / count, 1),
    }


def local_journal_case(clients: int, warmup: float, seconds: float) -> dict[str, float]:
    """The embedded default for comparison: the runner and the clients in this process."""
    import asyncio

    from tests.cluster.load_child import ACCOUNTS, setup_commands

    from tradehall.domain.commands import PlaceOrder
    from tradehall.domain.enums import OrderSide
    from tradehall.engine import Engine
    from tradehall.journal import EngineFactory
    from tradehall.service.runner import EngineRunner, RunnerConfig

    async def run(directory: Path) -> dict[str, float]:
        runner = EngineRunner(EngineFactory(Engine, Engine.restore), RunnerConfig(
            journal_dir=directory / "journal", snapshot_dir=directory / "snapshots", fsync="batch",
            snapshot_every_commands=10**9, snapshot_every_seconds=1e9, snapshot_on_stop=False))
        await runner.start()
        for command in setup_commands():
            await runner.submit(command)
        latencies: list[float] = []
        counting = False
        stop = False

        async def client(k: int) -> None:
            rng = random.Random(k)
            n = 0
            while not stop:
                n += 1
                command = PlaceOrder(
                    account_id=rng.choice(ACCOUNTS), market="BTC-USD",
                    side=rng.choice([OrderSide.BUY, OrderSide.SELL]),
                    quantity=Decimal(rng.randint(1, 50)) / 1000,
                    price=Decimal(rng.randint(9_900, 10_100)) / 100,
                    client_order_id=f"c{k}-{n}", correlation_id=f"c{k}-{n}",
                )
                sent = time.monotonic()
                await runner.submit(command)
                if counting:
                    latencies.append(time.monotonic() - sent)

        tasks = [asyncio.create_task(client(k)) for k in range(clients)]
        await asyncio.sleep(warmup)
        counting = True
        cpu, started = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        counting = False
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        stop = True
        await asyncio.gather(*tasks)
        await runner.stop()
        count = len(latencies)
        return {
            "ops_per_s": round(count / elapsed, 1),
            "p50_us": round(1e6 * percentile(latencies, 0.50)),
            "p99_us": round(1e6 * percentile(latencies, 0.99)),
            "process_cpu_ms_per_1k": round(1e6 * cpu / count, 1),
        }

    with tempfile.TemporaryDirectory(prefix="cluster-bench-local-") as tmp:
        return asyncio.run(run(Path(tmp)))


def takeover_case(clients: int) -> float:
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        network = Network(Path(tmp) / "net")
        try:
            nats_cluster = NatsCluster(network, 3)
            nats_cluster.start()
            nats_cluster.wait_formed()
            shard = ShardCluster(network, nats_cluster)
            leader = shard.start_replica("a")
            shard.wait_role("a", "leader")
            shard.start_replica("b")
            shard.wait_role("b", "standby", caught_up=True)
            load: Load = shard.start_load(seed=random.randrange(1 << 30), clients=clients)
            wait_acks(load, 100, 90)
            before = len(load.acks)
            killed_at = time.monotonic()
            leader.proc.kill(signal.SIGKILL)
            wait_acks(load, before + 100, 60)
            load.stop()
            check = check_log(shard.read_log(), load.acks)
            return first_ack_by(load.acks, check, "b", killed_at) - killed_at
        finally:
            network.close()


def emit(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"{'workload':<28} {'metric':<22} {'value':>12}")
    for row in rows:
        print(f"{row['workload']:<28} {row['metric']:<22} {row['value']:>12} {row['unit']}")


UNITS = {"ops_per_s": "orders/s", "p50_us": "us", "p99_us": "us", "leader_cpu_ms_per_1k": "ms CPU",
         "nats_cpu_ms_per_1k": "ms CPU", "process_cpu_ms_per_1k": "ms CPU", "takeover_s": "s"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="R=3 and local journal, 3 s, no takeover.")
    parser.add_argument("--json", action="store_true", help="One JSON object per figure.")
    parser.add_argument("--clients", type=int, default=16, help="Concurrent closed-loop clients.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Measured window per case.")
    parser.add_argument("--rounds", type=int, default=2, help="Alternating R=3 / R=1 rounds (medians).")
    parser.add_argument("--takeovers", type=int, default=3, help="SIGKILLs of a leader to time.")
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout: the figures
    reason = unavailable_reason()
    if reason is not None:
        print(f"cluster_netns_bench skipped: {reason}", file=sys.stderr)
        return
    rounds, seconds, takeovers = (1, 3.0, 0) if args.quick else (args.rounds, args.seconds, args.takeovers)
    results: dict[str, list[dict[str, float]]] = {"r3_netns": [], "r1_netns": [], "local_journal": []}
    for _ in range(rounds):
        results["r3_netns"].append(throughput_case(3, args.clients, 2.0, seconds))
        if not args.quick:
            results["r1_netns"].append(throughput_case(1, args.clients, 2.0, seconds))
        results["local_journal"].append(local_journal_case(args.clients, 2.0, seconds))
    rows: list[dict[str, Any]] = []
    for name, runs in results.items():
        if not runs:
            continue
        for metric in runs[0]:
            value = statistics.median(run[metric] for run in runs)
            rows.append({"bench": BENCH, "workload": f"{name}_c{args.clients}", "metric": metric,
                         "value": value, "unit": UNITS[metric]})
    times = [takeover_case(8) for _ in range(takeovers)]
    if times:
        for metric, value in (("takeover_s", statistics.median(times)), ("takeover_max_s", max(times))):
            rows.append({"bench": BENCH, "workload": "sigkill_leader_r3_ttl3", "metric": metric,
                         "value": round(value, 3), "unit": "s"})
    emit(rows, args.json)
    load = Path("/proc/loadavg").read_text().strip()
    print(f"# {' '.join(sys.argv)}; nproc {os.cpu_count()}; loadavg {load}", file=sys.stderr)


if __name__ == "__main__":
    main()
