"""Instructions per operation of the engine's hot paths, counted by valgrind's callgrind.

    .venv/bin/python bench/engine_instructions.py [--quick] [--json] [--workloads ...] [--src DIR ...]
        [--keep DIR]

Throughput on a shared two-core machine moves by 1.5x between two runs of one build; an instruction
count does not. Each workload runs in its own `valgrind --tool=callgrind` process: the set-up and a
warm-up run uninstrumented-for-counting, then the counted part runs inside `sys.call_tracing`, and
callgrind collects only there (`--toggle-collect=sys_call_tracing`). The figure is the counted
instructions divided by the operations counted; it includes the driver's own loop, as
`engine_bench.py`'s timings do. Workloads (seeded, fixed):
- `book`: `engine_bench.py`'s book runner on `book_mixed_70_25_5` (orders built before counting);
- `engine`: its engine runner (`Engine.apply`) on `book_mixed_70_25_5`;
- `exchange_core`: the engine runner on `exchange_core_mix`;
- `quote_marks`: quotes on 10 perp quote-venue markets with assessment accounts holding positions,
  a market order every 100 quotes (`engine_bench.make_quote_marks`);
- `recovery`: `journal.recover` without a snapshot of a journal of place/cancel records
  (`durability_bench.build_journal`, built outside valgrind), per record, reading included.
`--src DIR` (repeatable) runs every workload once per source tree (`PYTHONPATH=DIR`) and prints them
side by side: a compiled and an interpreted tree, or an old commit's `src` (a `git worktree`) against
this one. Without it the tree on the current `PYTHONPATH` is measured. `ops/CPU-s` is an estimate from
the instructions at `--ipns` instructions per CPU nanosecond (5.0: the calibration of BENCHMARKS.md's
compiled rounds on this machine), not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKLOADS = ("book", "engine", "exchange_core", "quote_marks", "recovery")
# (warm-up, counted) operations per workload, full and --quick
SIZES = {
    "book": ((20_000, 20_000), (5_000, 5_000)),
    "engine": ((20_000, 20_000), (5_000, 5_000)),
    "exchange_core": ((20_000, 20_000), (5_000, 5_000)),
    "quote_marks": ((5_000, 10_000), (2_000, 4_000)),
    "recovery": ((0, 20_000), (0, 5_000)),
}


# --- the child: runs inside valgrind ----------------------------------------------------------


def child(workload: str, warmup: int, counted: int, accounts: int, journal: str) -> None:
    """Builds the workload, warms up, then runs the counted part inside `sys.call_tracing`."""
    sys.path.insert(0, str(HERE))
    import gc

    import engine_bench as eb

    loop: Any
    if workload in ("book", "engine", "exchange_core"):
        mix = "exchange_core_mix" if workload == "exchange_core" else "book_mixed_70_25_5"
        ops = eb.generate(mix, warmup + counted, seed=42)
        if workload == "book":
            run, _ = eb.make_book_runner(ops)
        else:
            run, _, _ = eb.make_engine_runner(ops)
        for op in ops[:warmup]:
            run(op)
        rest = ops[warmup:]

        def loop() -> None:
            for op in rest:
                run(op)

        done = len(rest)
    elif workload == "quote_marks":
        engine, quotes, orders = eb.make_quote_marks(warmup + counted, accounts)
        apply = engine.apply
        stream = []
        for index, quote in enumerate(quotes):
            stream.append(quote)
            if index % 100 == 0:
                stream.append(orders[index // 100])
        split = warmup + (warmup + 99) // 100
        for command in stream[:split]:
            apply(command)
        rest_commands = stream[split:]

        def loop() -> None:
            for command in rest_commands:
                apply(command)

        done = len(rest_commands)
    elif workload == "recovery":
        from durability_bench import factory_for
        from tradehall.journal import recover

        base = Path(journal)
        replayed: list[int] = []

        def loop() -> None:
            result = recover(
                base / "journal", base / "snapshots", factory_for("real"), open_for_append=False,
                use_snapshots=False,
            )  # fmt: skip
            replayed.append(result.replayed)

        done = counted
    else:
        raise SystemExit(f"unknown workload {workload}")
    gc.collect()
    sys.call_tracing(loop, ())
    if workload == "recovery":
        assert replayed == [counted], (replayed, counted)
    print(json.dumps({"done": done}))


# --- the parent: builds journals, runs valgrind, reads the counts -----------------------------


def build_journal(directory: Path, count: int, src: str) -> None:
    """A journal of `count` place/cancel records (no snapshot inside it), written by the tree `src`."""
    code = (
        f"import sys; from pathlib import Path; sys.path.insert(0, {str(HERE)!r});"
        "from durability_bench import build_journal, factory_for;"
        f"build_journal(Path({str(directory)!r}), factory_for('real'), {count}, snapshot_at={count + 1})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=environment(src))


def environment(src: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    return env


def count_instructions(
    workload: str, warmup: int, counted: int, accounts: int, journal: str, src: str | None, keep: Path | None
) -> tuple[int, int]:
    """(instructions counted, operations counted) of one valgrind run."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            tag = re.sub(r"[^A-Za-z0-9]+", "_", src or "default").strip("_")[-40:]
            out = keep / f"callgrind.{workload}.{tag}.out"
        command = [
            "valgrind", "--tool=callgrind", "--collect-atstart=no",
            "--toggle-collect=sys_call_tracing", f"--callgrind-out-file={out}",
            sys.executable, str(Path(__file__).resolve()), "--child", workload,
            "--warmup", str(warmup), "--counted", str(counted), "--accounts", str(accounts),
            "--journal", journal,
        ]  # fmt: skip
        done = subprocess.run(
            command, check=True, capture_output=True, text=True, env=environment(src)
        )
        operations = json.loads(done.stdout.strip().splitlines()[-1])["done"]
        match = re.search(r"^(?:totals|summary): (\d+)", out.read_text(), re.MULTILINE)
        assert match, f"no totals in {out}"
        return int(match.group(1)), operations


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a minute a workload)")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--src", action="append", help="a source tree to measure (repeatable)")
    parser.add_argument("--accounts", type=int, default=10_000, help="assessment accounts for quote_marks")
    parser.add_argument("--ipns", type=float, default=5.0, help="instructions per CPU ns for the estimate")
    parser.add_argument("--keep", type=Path, help="keep the callgrind files here (for callgrind_annotate)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--counted", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--journal", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.warmup, args.counted, args.accounts, args.journal)
        return
    sources: list[str | None] = list(args.src) if args.src else [None]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for workload in args.workloads.split(","):
            warmup, counted = SIZES[workload][1 if args.quick else 0]
            journal = ""
            if workload == "recovery":
                journal = str(Path(scratch) / "recovery")
                build_journal(Path(journal), counted, sources[0] or os.environ.get("PYTHONPATH", ""))
            for src in sources:
                total, operations = count_instructions(
                    workload, warmup, counted, args.accounts, journal, src, args.keep
                )
                per_op = total / operations
                rows.append(
                    {
                        "bench": "engine_instructions",
                        "workload": workload,
                        "src": src or os.environ.get("PYTHONPATH", ""),
                        "operations": operations,
                        "instructions_per_op": round(per_op),
                        "estimated_ops_per_cpu_s": round(args.ipns * 1e9 / per_op),
                    }
                )
                if not args.json:
                    row = rows[-1]
                    print(
                        f"{workload:14} {row['src'][-40:]:40} {per_op:>10,.0f} instr/op"
                        f"  ~{row['estimated_ops_per_cpu_s']:>9,} ops/CPU-s ({operations:,} ops)",
                        flush=True,
                    )
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        load = os.getloadavg()
        print(
            f"nproc {os.cpu_count()}, {platform.machine()}, Python {platform.python_version()}, "
            f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )


if __name__ == "__main__":
    main()
