"""`tradehall journal inspect | verify | replay`: the operator's view of the journal and the snapshots.

None of these change anything on disk: a torn tail is reported here and truncated only when the
service starts. Errors print one line and exit non-zero; no tracebacks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
import typer
from rich.console import Console
from rich.table import Table

from tradehall.journal.errors import JournalCorruptError, JournalError, SnapshotCorruptError
from tradehall.journal.recovery import EngineFactory, recover
from tradehall.journal.segments import list_segments, read_records, scan_segment
from tradehall.journal.snapshots import SnapshotStore

journal_app = typer.Typer(
    name="journal", help="Inspect, verify and replay the write-ahead journal.", no_args_is_help=True
)

DATA_DIR_HELP = "Data directory holding journal/ and snapshots/ (default: TRADEHALL_DATA_DIR or ./var)."
console = Console()
errors = Console(stderr=True)


def _dirs(data_dir: Path | None) -> tuple[Path, Path]:
    if data_dir is None:
        from tradehall.service.settings import Settings

        data_dir = Settings().data_dir
    return data_dir / "journal", data_dir / "snapshots"


def _stderr_logger(*args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)  # resolved per logger: stderr may be swapped (tests, pipes)


def _quiet_logs() -> None:
    """Keeps structlog's warnings off stdout, where --json output goes (processors stay as configured)."""
    structlog.configure(logger_factory=_stderr_logger)


@contextmanager
def _operator_errors() -> Iterator[None]:
    try:
        yield
    except (JournalError, OSError, ValueError) as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@dataclass(frozen=True, slots=True)
class SegmentRow:
    file: str
    first_seq: int
    last_seq: int
    records: int
    bytes: int
    archived: bool
    status: str


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    file: str
    seq: int
    bytes: int
    status: str


def _segment_rows(journal_dir: Path) -> list[SegmentRow]:
    segments = list_segments(journal_dir, include_archive=True)
    rows = []
    for index, segment in enumerate(segments):
        is_last = index == len(segments) - 1
        size = segment.path.stat().st_size
        try:
            scan = scan_segment(segment.path, segment.first_seq, is_last=is_last)
        except JournalCorruptError as exc:
            rows.append(
                SegmentRow(str(segment.path), segment.first_seq, -1, -1, size, segment.archived,
                           f"corrupt at offset {exc.offset}: {exc.reason}")
            )
            continue
        status = "ok"
        if scan.torn is not None:
            torn = scan.torn
            status = f"torn tail at offset {torn.offset} ({torn.dropped_bytes} bytes, {torn.reason})"
        rows.append(
            SegmentRow(str(segment.path), segment.first_seq, scan.last_seq,
                       scan.last_seq - segment.first_seq + 1, size, segment.archived, status)
        )
    return rows


def _snapshot_rows(snapshot_dir: Path) -> list[SnapshotRow]:
    rows = []
    for seq, path in SnapshotStore(snapshot_dir).paths():
        try:
            SnapshotStore.load(path)
            status = "ok"
        except SnapshotCorruptError as exc:
            status = f"corrupt: {exc.reason}"
        rows.append(SnapshotRow(str(path), seq, path.stat().st_size, status))
    return rows


def _emit_json(payload: dict[str, Any]) -> None:
    typer.echo(json.dumps(payload, sort_keys=True))


@journal_app.command()
def inspect(
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of tables."),
    tail: int = typer.Option(0, "--tail", min=0, help="Also list the last N records."),
) -> None:
    """Segments (seq range, size, status), snapshots, and optionally the newest records."""
    _quiet_logs()
    journal_dir, snapshot_dir = _dirs(data_dir)
    with _operator_errors():
        segments = _segment_rows(journal_dir)
        snapshots = _snapshot_rows(snapshot_dir)
        last_seq = max((row.last_seq for row in segments), default=0)
        records: list[dict[str, Any]] = []
        if tail and segments:
            start = max(segments[0].first_seq, last_seq - tail + 1)
            for record in read_records(journal_dir, start, last_seq):
                records.append({
                    "seq": record.seq, "ts": record.ts, "command": type(record.command).__name__,
                    "correlation_id": record.command.correlation_id,
                    "events": [type(event).__name__ for event in record.events],
                })
    if as_json:
        _emit_json({
            "journal_dir": str(journal_dir), "last_seq": last_seq,
            "segments": [asdict(row) for row in segments],
            "snapshots": [asdict(row) for row in snapshots], "records": records,
        })
        return
    headline = f"journal [bold]{journal_dir}[/]: last seq [bold]{last_seq}[/]"
    console.print(headline, highlight=False, soft_wrap=True)
    table = Table("file", "seqs", "records", "bytes", "archived", "status", title="segments")
    for row in segments:
        table.add_row(Path(row.file).name, f"{row.first_seq}..{row.last_seq}", str(row.records),
                      str(row.bytes), "yes" if row.archived else "", row.status)
    console.print(table)
    snaps = Table("file", "seq", "bytes", "status", title="snapshots")
    for snap in snapshots:
        snaps.add_row(Path(snap.file).name, str(snap.seq), str(snap.bytes), snap.status)
    console.print(snaps)
    if records:
        title = f"last {len(records)} records"
        recent = Table("seq", "ts", "command", "correlation id", "events", title=title)
        for item in records:
            recent.add_row(str(item["seq"]), str(item["ts"]), item["command"], item["correlation_id"],
                           ", ".join(item["events"]))
        console.print(recent)


@journal_app.command()
def verify(
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
    replay: bool = typer.Option(
        False, "--replay", help="Also replay through the engine and check it reproduces the journaled events."
    ),
) -> None:
    """Checks every record (CRC, seq continuity) and every snapshot; exits 1 on any corruption."""
    _quiet_logs()
    journal_dir, snapshot_dir = _dirs(data_dir)
    problems: list[str] = []
    warnings: list[str] = []
    count = 0
    last_seq = 0
    try:
        for record in read_records(journal_dir):
            count += 1
            last_seq = record.seq
    except JournalError as exc:
        problems.append(str(exc))
    for row in _segment_rows(journal_dir):
        if row.status.startswith("torn"):
            warnings.append(f"{row.file}: {row.status}; truncated when the service starts")
    for snap in _snapshot_rows(snapshot_dir):
        if snap.status != "ok":
            problems.append(f"snapshot {snap.file}: {snap.status}")
    replayed: dict[str, Any] | None = None
    if replay and not problems:
        from tradehall.engine import Engine

        try:
            result = recover(journal_dir, snapshot_dir, EngineFactory(Engine, Engine.restore),
                             open_for_append=False, verify_events=True, use_snapshots=False)
            replayed = {"replayed": result.replayed, "state_hash": result.engine.state_hash()}
        except JournalError as exc:
            problems.append(str(exc))
    ok = not problems
    if as_json:
        _emit_json({"ok": ok, "records": count, "last_seq": last_seq, "problems": problems,
                    "warnings": warnings, "replay": replayed})
    else:
        for warning in warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
        for problem in problems:
            errors.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)
        if ok:
            extra = f", replay deterministic (state {replayed['state_hash'][:16]})" if replayed else ""
            summary = f"[green]ok[/]: {count} records up to seq {last_seq}{extra}"
            console.print(summary, highlight=False, soft_wrap=True)
    if not ok:
        raise typer.Exit(1)


@journal_app.command("replay")
def replay_command(
    to: int | None = typer.Option(None, "--to", min=0, help="Stop after this seq (default: the last)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of a table."),
    no_snapshot: bool = typer.Option(False, "--no-snapshot", help="Replay from seq 1, ignoring snapshots."),
    check_events: bool = typer.Option(True, "--check-events/--no-check-events",
                                      help="Demand the journaled events back from the engine."),
) -> None:
    """Rebuilds the engine as of seq --to (snapshot + replay) and prints its state hash; changes nothing."""
    _quiet_logs()
    from tradehall.engine import Engine

    journal_dir, snapshot_dir = _dirs(data_dir)
    with _operator_errors():
        result = recover(
            journal_dir, snapshot_dir, EngineFactory(Engine, Engine.restore), open_for_append=False,
            verify_events=check_events, to_seq=to, use_snapshots=not no_snapshot,
        )
        if to is not None and result.last_seq < to:
            raise JournalError(f"the journal ends at seq {result.last_seq}, before --to {to}")
        engine = result.engine
        summary = {
            "last_seq": result.last_seq, "snapshot_seq": result.snapshot_seq,
            "snapshot": str(result.snapshot_path) if result.snapshot_path else None,
            "replayed": result.replayed, "seconds": round(result.seconds, 3),
            "state_hash": engine.state_hash(), "accounts": len(engine.accounts),
            "markets": len(engine.markets), "orders": len(engine.orders),
        }
    if as_json:
        _emit_json(summary)
        return
    table = Table("", "", title="replay")
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)
