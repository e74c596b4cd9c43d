"""Where the server's CPU goes per order, process by process (issue 18's per-process profile).

Starts `tradehall serve --workers N` (fsync batch, SQLite read models), drives `POST /orders` with wrk
(16 connections, orders that alternately rest and fill, as bench/api_load.py's `vs_fastapi`), and
reads each process's user + system CPU from `/proc/<pid>/stat` before and after: the figure is CPU
microseconds per order of each process (supervisor, engine, projector, each gateway), which other
load on a shared machine inflates far less than requests/s. With `--py-spy DIR` it also records a
py-spy profile (raw folded stacks) of every child during the run, for `--top` to summarise.

Run: `python bench/process_profile.py --workers 2 --seconds 15 [--src DIR] [--py-spy DIR] [--json]`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import api_load
import fastapi_peer

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of `pid` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def process_names(root: int) -> dict[int, str]:
    """The supervisor and its children, named by their role (`engine`, `gateway-1`, ...)."""
    names = {root: "supervisor"}
    gateways = 0
    for pid in sorted(children(root)):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        role = argv[-2].decode() if len(argv) >= 2 else "?"
        if role == "gateway":
            gateways += 1
            role = f"gateway-{gateways}"
        names[pid] = role
    return names


def folded_top(path: Path, depth: int = 12) -> list[tuple[float, str]]:
    """Shares of a py-spy raw (folded) profile's samples, by the innermost frame of the project or
    the library that is not the event loop's own machinery."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = stack.split(";")
        counts[";".join(f.split(" (")[0] for f in frames[-depth:][-2:])] += count
    return [(count / total, frame) for frame, count in counts.most_common(15)] if total else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="Measure the idle CPU this long.")
    parser.add_argument("--src", default=None, help="Serve another checkout's `src` (before/after).")
    parser.add_argument("--py-spy", default=None, help="Record a py-spy profile of each child here.")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second.")
    parser.add_argument("--gil", action="store_true", help="py-spy: only the thread holding the GIL.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tradehall-prof-")))
        port = api_load.free_port()
        url = f"http://127.0.0.1:{port}"
        server = api_load.start_server(data_dir, port, args.workers, args.src)
        stack.callback(api_load.stop_server, server)
        made = api_load.setup(url, 4)
        pairs = [(made[0], made[1]), (made[2], made[3])]
        fastapi_peer.run_wrk(url, pairs, api_load.MARKET, 2, args.connections, 2)  # warm up
        names = process_names(server.pid)
        spies: list[subprocess.Popen[bytes]] = []
        if args.py_spy:
            out = Path(args.py_spy)
            out.mkdir(parents=True, exist_ok=True)
            spy = shutil.which("py-spy") or "py-spy"
            for pid, name in names.items():
                if name == "supervisor":
                    continue
                spies.append(
                    subprocess.Popen(
                        [
                            spy,
                            "record",
                            "--pid",
                            str(pid),
                            "-d",
                            str(int(args.seconds)),
                            "-r",
                            "50",
                            "--nonblocking",
                            *(["--gil"] if args.gil else []),
                            "-f",
                            "raw",
                            "-o",
                            str(out / f"{name}.txt"),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        time.sleep(1)  # the warm-up's orders projected
        idle_before = {pid: cpu_seconds(pid) for pid in names}
        idle_started = time.monotonic()
        time.sleep(args.idle_seconds)
        idle_rate = {
            pid: (cpu_seconds(pid) - idle_before[pid]) / (time.monotonic() - idle_started) for pid in names
        }
        load_before = os.getloadavg()[0]
        split_before = {pid: cpu_split(pid) for pid in names}
        before = {pid: sum(split_before[pid]) for pid in names}
        lag = api_load.LagSampler(url, data_dir) if args.workers > 1 else None
        if lag is not None:
            lag.start()
        started = time.monotonic()
        result = fastapi_peer.run_wrk(url, pairs, api_load.MARKET, args.seconds, args.connections, 2)
        elapsed = time.monotonic() - started
        split_after = {pid: cpu_split(pid) for pid in names}
        projector_lag = lag.stop() if lag is not None else {}
        after = {pid: sum(split_after[pid]) for pid in names}
        for spy_process in spies:
            spy_process.wait()
        orders = result["orders"]
        per_process = {names[pid]: (after[pid] - before[pid]) / orders * 1e6 for pid in names}
        system = {names[pid]: (split_after[pid][1] - split_before[pid][1]) / orders * 1e6 for pid in names}
        # what each process spends without orders (timers, polling), taken out: the order's own cost
        marginal = {
            names[pid]: (after[pid] - before[pid] - idle_rate[pid] * elapsed) / orders * 1e6 for pid in names
        }
        figures = {
            "workers": args.workers,
            "orders": orders,
            "orders_per_s": result["ops_per_s"],
            "p50_ms": result["p50_us"] / 1000,
            "p99_ms": result["p99_us"] / 1000,
            "load": [load_before, os.getloadavg()[0]],
            "cpu_us_per_order": per_process,
            "cpu_us_per_order_total": sum(per_process.values()),
            "system_cpu_us_per_order": system,
            "projector_lag": projector_lag,
            "idle_cpu_percent": {names[pid]: rate * 100 for pid, rate in idle_rate.items()},
            "marginal_cpu_us_per_order": marginal,
            "marginal_cpu_us_per_order_total": sum(marginal.values()),
        }
        if args.json:
            print(json.dumps(figures))
        else:
            print(
                f"--workers {args.workers}: {result['ops_per_s']:.0f} orders/s over {orders:.0f}, "
                f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
                f"load {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
            )
            print(f"  {'process':<12} {'CPU/order':>10} {'of it sys':>10} {'less idle':>10} {'idle CPU':>9}")
            for pid, name in sorted(names.items(), key=lambda item: item[1]):
                print(
                    f"  {name:<12} {per_process[name]:8.0f} us {system[name]:8.0f} us "
                    f"{marginal[name]:8.0f} us "
                    f"{idle_rate[pid] * 100:7.1f} %"
                )
            if projector_lag:
                print(
                    f"  projector lag p50 {projector_lag['p50_us'] / 1000:.0f} ms, "
                    f"p99 {projector_lag['p99_us'] / 1000:.0f} ms, "
                    f"p99.9 {projector_lag['p999_us'] / 1000:.0f} ms "
                    f"({projector_lag['samples']:.0f} samples)"
                )
            print(
                f"  {'total':<12} {figures['cpu_us_per_order_total']:8.0f} us "
                f"{figures['marginal_cpu_us_per_order_total']:8.0f} us"
            )
        if args.py_spy:
            for name in names.values():
                path = Path(args.py_spy) / f"{name}.txt"
                if path.exists():
                    print(f"\n{name}:")
                    for share, frame in folded_top(path):
                        print(f"  {share:6.1%} {frame}")


if __name__ == "__main__":
    main()
