"""Recovery property: crash anywhere (a record boundary or mid-record), recover, and the engine equals a
reference engine fed exactly the durable prefix."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from tradehall.domain.commands import (
    AnyCommand,
    CancelOrder,
    CreateMarket,
    Deposit,
    OpenAccount,
    PlaceOrder,
)
from tradehall.domain.enums import MarketKind, OrderSide, TimeInForce
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine
from tradehall.journal import EngineFactory, Journal, JournalRecord, SnapshotStore, read_records, recover
from tradehall.journal.segments import FRAME_HEADER_SIZE, list_segments

FACTORY = EngineFactory(Engine, Engine.restore)
BASE_TS = 1_750_000_000_000_000_000

SETUP: list[AnyCommand] = [
    CreateMarket(
        spec=MarketSpec(
            symbol="BTC-USD", kind=MarketKind.SPOT, base="BTC", quote="USD",
            tick_size=Decimal("0.01"), lot_size=Decimal("0.0001"),
        )
    ),
    OpenAccount(account_id="alice", owner="alice"),
    OpenAccount(account_id="bob", owner="bob"),
    Deposit(account_id="alice", amount=Decimal("100000")),
    Deposit(account_id="bob", amount=Decimal("100000")),
    Deposit(account_id="alice", amount=Decimal("5"), currency="BTC"),
    Deposit(account_id="bob", amount=Decimal("5"), currency="BTC"),
]

accounts = st.sampled_from(["alice", "bob"])
place = st.builds(
    PlaceOrder,
    account_id=accounts,
    market=st.just("BTC-USD"),
    side=st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
    quantity=st.integers(1, 40).map(lambda n: Decimal(n) / 1000),
    price=st.integers(9_950, 10_050).map(lambda n: Decimal(n) / 100),
    time_in_force=st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC]),
    client_order_id=st.one_of(st.none(), st.integers(1, 15).map(lambda n: f"cid-{n}")),
)
cancel = st.builds(CancelOrder, order_id=st.integers(1, 40), account_id=st.one_of(st.none(), accounts))
deposit = st.builds(Deposit, account_id=accounts, amount=st.integers(1, 500).map(Decimal))
commands = st.lists(st.one_of(place, place, place, cancel, deposit), min_size=1, max_size=80)


def journal_records(stream: list[AnyCommand]) -> list[JournalRecord]:
    engine = Engine()
    records = []
    for seq, command in enumerate(stream, start=1):
        stamped = msgspec.structs.replace(command, ts=BASE_TS + seq)
        events = tuple(engine.apply(stamped))
        records.append(JournalRecord(seq=seq, ts=BASE_TS + seq, command=stamped, events=events))
    return records


def reference_hash(records: list[JournalRecord]) -> str:
    engine = Engine()
    for record in records:
        engine.apply(record.command)
    return engine.state_hash()


def crash(journal_dir: Path, durable: int, torn_bytes: int, garbage: bytes) -> None:
    """Leaves exactly the first `durable` records, plus `torn_bytes` of the next frame if there is one,
    then `garbage` (what a power cut leaves in pages that were never written: zeros, old bytes)."""
    segments = list_segments(journal_dir)
    for segment in reversed(segments):
        if segment.first_seq <= durable + 1:
            holder = segment
            break
    for segment in segments:
        if segment.first_seq > holder.first_seq:
            segment.path.unlink()
    offset = 16
    data = holder.path.read_bytes()
    seq = holder.first_seq
    while seq <= durable:
        length = int.from_bytes(data[offset + 4 : offset + 8], "little")
        offset += FRAME_HEADER_SIZE + length
        seq += 1
    if offset < len(data):
        length = int.from_bytes(data[offset + 4 : offset + 8], "little")
        keep = offset + min(torn_bytes, FRAME_HEADER_SIZE + length - 1)
    else:
        keep = offset
    with holder.path.open("r+b") as handle:
        handle.truncate(keep)
        handle.seek(keep)
        handle.write(garbage)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=commands,
    cut=st.floats(0, 1),
    torn_bytes=st.integers(0, 400),
    snapshot_at=st.one_of(st.none(), st.floats(0, 1)),
    segment_bytes=st.sampled_from([1, 2_000, 1 << 20]),
    garbage=st.one_of(st.just(b""), st.binary(max_size=300), st.integers(1, 4096).map(bytes)),
)
def test_recovery_equals_a_reference_fed_the_durable_prefix(
    stream: list[AnyCommand],
    cut: float,
    torn_bytes: int,
    snapshot_at: float | None,
    segment_bytes: int,
    garbage: bytes,
) -> None:
    records = journal_records(SETUP + stream)
    durable = round(cut * len(records))
    with tempfile.TemporaryDirectory() as tmp:
        journal_dir, snapshot_dir = Path(tmp) / "journal", Path(tmp) / "snapshots"
        journal = Journal.open(journal_dir, segment_bytes=segment_bytes)
        for start in range(0, len(records), 5):
            journal.append(records[start : start + 5])
        journal.close()
        if snapshot_at is not None and durable > 0:
            snap_seq = max(1, round(snapshot_at * durable))
            engine = Engine()
            for record in records[:snap_seq]:
                engine.apply(record.command)
            SnapshotStore(snapshot_dir).write(snap_seq, engine.snapshot())
        crash(journal_dir, durable, torn_bytes, garbage)

        with capture_logs():
            recovered = recover(journal_dir, snapshot_dir, FACTORY, verify_events=True)
        assert recovered.last_seq == durable
        assert recovered.engine.state_hash() == reference_hash(records[:durable])
        assert recovered.journal is not None
        if durable < len(records):  # the journal accepts the next record right where the crash cut it
            recovered.journal.append([records[durable]])
        recovered.journal.close()
        expected_last = min(durable + 1, len(records))
        assert [r.seq for r in read_records(journal_dir)] == list(range(1, expected_last + 1))
