"""Recovery benchmark: rebuild the engine from a journal of N commands without a snapshot.

    .venv/bin/python bench/recovery_bench.py [--quick] [--json] [--ops N] [--journal DIR]

Writes a journal of N records (the durability bench's place/cancel flow on one spot market, each
record with the engine's events, as the runner writes them; default 1,000,000, `--quick` 100,000),
then times, on that journal:
- `read`: reading and decoding the records for replay (`journal.read_commands`), no engine;
- `replay_no_snapshot`: `journal.recover(..., use_snapshots=False)`, the whole recovery (reading,
  decoding, `Engine.apply` of every command), checked against the writer's `state_hash`;
and reports wall and CPU seconds and records/s for each (target: 1,000,000 commands in at most 5 s;
on a shared machine the CPU seconds say more than the wall clock).
`--journal DIR` keeps the journal there and reuses it on the next run with the same N and the same
engine sources (building it takes longer than replaying it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from durability_bench import build_journal, factory_for
from tradehall.journal import read_commands, recover

BENCH = "recovery"
results: list[dict[str, Any]] = []


def record(workload: str, metric: str, value: float, unit: str) -> None:
    results.append(
        {"bench": BENCH, "workload": workload, "metric": metric, "value": round(value, 3), "unit": unit}
    )


def prepared_journal(directory: Path, count: int) -> str:
    """The journal of `count` records in `directory` (built once) and the writer's state hash."""
    marker = directory / f"state_hash.{count}"
    if marker.exists() and (directory / "journal").is_dir():
        return marker.read_text()
    shutil.rmtree(directory / "journal", ignore_errors=True)
    shutil.rmtree(directory / "snapshots", ignore_errors=True)
    expected = build_journal(directory, factory_for("real"), count, snapshot_at=count + 1)
    marker.write_text(expected)
    return expected


def measure(directory: Path, count: int, expected: str) -> None:
    journal = directory / "journal"
    size = sum(p.stat().st_size for p in journal.glob("*.wal"))
    record(f"journal_{count}", "bytes_per_record", size / count, "bytes")
    started, cpu = time.perf_counter(), time.process_time()
    read = sum(1 for _ in read_commands(journal, 1))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert read == count, (read, count)
    record(f"read_{count}", "seconds", seconds, "s")
    record(f"read_{count}", "cpu_seconds", cpu, "s")
    record(f"read_{count}", "records_per_s", count / seconds, "records/s")
    started, cpu = time.perf_counter(), time.process_time()
    result = recover(journal, directory / "snapshots", factory_for("real"), open_for_append=False,
                     use_snapshots=False)  # fmt: skip
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert result.replayed == count, (result.replayed, count)
    if result.engine.state_hash() != expected:
        raise SystemExit(
            f"the journal in {directory} was written by another version of the engine: remove it"
        )
    record(f"replay_no_snapshot_{count}", "seconds", seconds, "s")
    record(f"replay_no_snapshot_{count}", "cpu_seconds", cpu, "s")
    record(f"replay_no_snapshot_{count}", "commands_per_s", count / seconds, "commands/s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100,000 records (under 30 s)")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    parser.add_argument("--ops", type=int, default=None, help="records in the journal (default 1,000,000)")
    parser.add_argument("--journal", type=Path, default=None, help="keep the journal here and reuse it")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    count = args.ops or (100_000 if args.quick else 1_000_000)
    directory = args.journal or Path(tempfile.mkdtemp(prefix="tradehall-recovery-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        measure(directory, count, prepared_journal(directory, count))
    finally:
        if args.journal is None:
            shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        for item in results:
            print(json.dumps(item))
        return
    print(f"recovery bench  ops={count}  nproc={os.cpu_count()}  {platform.python_version()}")
    print(f"command: python bench/recovery_bench.py {' '.join(sys.argv[1:])}")
    width = max(len(item["workload"]) for item in results)
    for item in results:
        print(f"{item['workload']:<{width}}  {item['metric']:<16} {item['value']:>14,.3f} {item['unit']}")


if __name__ == "__main__":
    main()
