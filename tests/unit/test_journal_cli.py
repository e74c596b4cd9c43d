"""`tradehall journal inspect | verify | replay` against a real data directory."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from tradehall.cli.journal_cmd import journal_app
from tradehall.domain.commands import AnyCommand, CreateMarket, Deposit, OpenAccount, PlaceOrder
from tradehall.domain.enums import MarketKind, OrderSide
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine
from tradehall.journal import Journal, JournalRecord, SnapshotStore
from tradehall.journal.segments import FRAME_HEADER_SIZE, SEGMENT_HEADER, segment_name

cli = CliRunner()


def commands() -> list[AnyCommand]:
    spec = MarketSpec(symbol="BTC-USD", kind=MarketKind.SPOT, base="BTC", quote="USD",
                      tick_size=Decimal("0.01"), lot_size=Decimal("0.0001"))
    stream: list[AnyCommand] = [
        CreateMarket(spec=spec),
        OpenAccount(account_id="a", owner="a"),
        OpenAccount(account_id="b", owner="b"),
        Deposit(account_id="a", amount=Decimal("10000")),
        Deposit(account_id="b", amount=Decimal("2"), currency="BTC"),
    ]
    for n in range(15):
        side = OrderSide.BUY if n % 2 else OrderSide.SELL
        account = "a" if side is OrderSide.BUY else "b"
        stream.append(PlaceOrder(account_id=account, market="BTC-USD", side=side, quantity=Decimal("0.01"),
                                 price=Decimal("100") + n % 3, correlation_id=f"req-{n}"))
    return stream


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    engine = Engine()
    journal = Journal.open(tmp_path / "journal", segment_bytes=4000)
    for seq, command in enumerate(commands(), start=1):
        stamped = msgspec.structs.replace(command, ts=1_000 + seq)
        events = tuple(engine.apply(stamped))
        journal.append([JournalRecord(seq=seq, ts=1_000 + seq, command=stamped, events=events)])
        if seq == 10:
            SnapshotStore(tmp_path / "snapshots").write(10, engine.snapshot())
    journal.close()
    (tmp_path / "expected_hash").write_text(engine.state_hash())
    return tmp_path


def test_inspect_lists_segments_snapshots_and_the_newest_records(data_dir: Path) -> None:
    result = cli.invoke(journal_app, ["inspect", "--data-dir", str(data_dir), "--json", "--tail", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["last_seq"] == 20
    assert report["segments"][0]["first_seq"] == 1
    assert sum(row["records"] for row in report["segments"]) == 20
    assert all(row["status"] == "ok" for row in report["segments"])
    assert [(s["seq"], s["status"]) for s in report["snapshots"]] == [(10, "ok")]
    assert [(r["seq"], r["command"], r["correlation_id"]) for r in report["records"]] == [
        (19, "PlaceOrder", "req-13"), (20, "PlaceOrder", "req-14")
    ]


def test_inspect_prints_tables(data_dir: Path) -> None:
    result = cli.invoke(journal_app, ["inspect", "--data-dir", str(data_dir)])
    assert result.exit_code == 0
    assert "last seq 20" in result.stdout
    assert segment_name(1) in result.stdout


def test_verify_passes_a_clean_journal_and_replays_it(data_dir: Path) -> None:
    result = cli.invoke(journal_app, ["verify", "--data-dir", str(data_dir), "--replay", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["ok"], report["records"], report["last_seq"]) == (True, 20, 20)
    assert report["replay"]["state_hash"] == (data_dir / "expected_hash").read_text()


def test_verify_fails_on_corruption_naming_file_and_offset(data_dir: Path) -> None:
    first = data_dir / "journal" / segment_name(1)
    raw = bytearray(first.read_bytes())
    raw[SEGMENT_HEADER.size + FRAME_HEADER_SIZE + 5] ^= 0x55
    first.write_bytes(bytes(raw))
    result = cli.invoke(journal_app, ["verify", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert f"{first} at byte offset {SEGMENT_HEADER.size}" in report["problems"][0]
    plain = cli.invoke(journal_app, ["verify", "--data-dir", str(data_dir)])
    assert plain.exit_code == 1
    assert "Traceback" not in plain.output


def test_verify_reports_a_torn_tail_as_a_warning(data_dir: Path) -> None:
    newest = sorted((data_dir / "journal").glob("*.wal"))[-1]
    with newest.open("ab") as handle:
        handle.write(b"TRJ1partial")
    result = cli.invoke(journal_app, ["verify", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0
    assert "torn tail" in json.loads(result.stdout)["warnings"][0]


def test_replay_to_a_seq_matches_an_engine_fed_that_prefix(data_dir: Path) -> None:
    engine = Engine()
    for seq, command in enumerate(commands()[:15], start=1):
        engine.apply(msgspec.structs.replace(command, ts=1_000 + seq))
    result = cli.invoke(journal_app, ["replay", "--to", "15", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["last_seq"], summary["snapshot_seq"], summary["replayed"]) == (15, 10, 5)
    assert summary["state_hash"] == engine.state_hash()
    args = ["replay", "--to", "15", "--no-snapshot", "--data-dir", str(data_dir), "--json"]
    scratch = cli.invoke(journal_app, args)
    assert json.loads(scratch.stdout)["replayed"] == 15


def test_replay_beyond_the_end_is_an_error_without_traceback(data_dir: Path) -> None:
    result = cli.invoke(journal_app, ["replay", "--to", "99", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "ends at seq 20, before --to 99" in result.output
    assert "Traceback" not in result.output
