"""Run every benchmark in bench/ one after the other (`make bench`, `make bench-quick`).

    .venv/bin/python bench/run_all.py [--quick] [--json] [--only engine,durability,...]

Each benchmark prints its own table (or JSON lines with --json) and the exact command that produced
it; this runner only starts them in turn with the same flags and reports which ones failed.
Benchmarks that need PostgreSQL, Redis, NATS or a Kafka broker say so when those are missing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCHMARKS = {
    "engine": "engine_bench.py",
    "stops": "stops_bench.py",
    "routing": "routing_bench.py",
    "durability": "durability_bench.py",
    "recovery": "recovery_bench.py",
    "projector": "projector_bench.py",
    "feed": "feed_bench.py",
    "bus": "bus_bench.py",
    "cluster_netns": "cluster_netns_bench.py",
    "api": "api_load.py",
    "abuse": "abuse_bench.py",
    "backtest": "backtest_bench.py",
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="each benchmark's under-30-seconds run")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS)
    )
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    failed: list[str] = []
    for name in args.only.split(","):
        script = BENCHMARKS.get(name.strip())
        if script is None:
            parser.error(f"unknown benchmark {name!r}")
        command = [sys.executable, str(here / script)]
        command += ["--quick"] if args.quick else []
        command += ["--json"] if args.json else []
        if not args.json:
            print(f"\n=== {name}: {' '.join(command)}", flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
