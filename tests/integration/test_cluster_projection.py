"""Shards' records projected from their JetStream streams into one PostgreSQL database: no collisions,
exactly once across a restart, and a gateway's history reads show both shards' rows.

Real PostgreSQL (a database per test, dropped after) and real NATS JetStream (a prefix per test, its
streams deleted after). The records are an engine's own output, appended to the streams as a shard's
leader does (journal frames, one message per batch, an epoch marker between two leaders' batches).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import nats
import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import require_service
from tests.integration.cluster_kit import NATS_URL, SPEC, delete_prefix, unique_prefix
from tradehall.domain import commands as c
from tradehall.domain.enums import MarketKind, OrderSide
from tradehall.domain.events import TradeExecuted
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine, EngineConfig
from tradehall.journal.records import JournalRecord
from tradehall.journal.segments import encode_record
from tradehall.service.cluster.log import ShardLog
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.projection import (
    ProjectionBusyError,
    ShardProjection,
    hold_projection_lock,
    projection_name,
    shard_projector_config,
    start_stream_seq,
)
from tradehall.service.cluster.shards import ShardMap
from tradehall.store import Projector, create_store_engine, upgrade
from tradehall.store.ledger import SHARD_SHIFT
from tradehall.store.models import Account, Balance, Fill, LedgerEntry, Order, ProjectionState

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
SOL = MarketSpec(
    symbol="SOL-USD",
    kind=MarketKind.SPOT,
    base="SOL",
    quote="USD",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("0.01"),
)
SHARDS = ShardMap.of({"A": [SPEC.symbol], "B": [SOL.symbol]})
T0 = 1_767_225_600_000_000_000


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_service("postgresql")
    name = f"th_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def js() -> AsyncIterator[Any]:
    require_service("nats")
    nc = await nats.connect(NATS_URL)
    prefix = unique_prefix()
    js = nc.jetstream()
    js.test_prefix = prefix
    yield js
    await delete_prefix(js, prefix, ("A", "B"))
    await nc.close()


class Shard:
    """A shard's engine and the records it journaled (seq from 1, as a shard's leader numbers them)."""

    def __init__(self, name: str, spec: MarketSpec) -> None:
        self.name = name
        self.spec = spec
        self.engine = Engine(EngineConfig())
        self.records: list[JournalRecord] = []

    def apply(self, commands: list[c.Command]) -> list[JournalRecord]:
        fresh = []
        for command in commands:
            seq = len(self.records) + 1
            ts = T0 + seq * 1_000_000
            stamped = command.__class__(
                **{**{f: getattr(command, f) for f in command.__struct_fields__}, "ts": ts}
            )
            events = self.engine.apply(stamped)
            record = JournalRecord(seq=seq, ts=ts, command=stamped, events=tuple(events))  # type: ignore[arg-type]
            self.records.append(record)
            fresh.append(record)
        return fresh

    def setup(self) -> list[JournalRecord]:
        commands: list[c.Command] = [
            c.Configure(id_base=SHARDS.id_base(self.name)),
            c.CreateMarket(spec=self.spec),
        ]
        for account in ("alice", "bob"):
            commands.append(c.OpenAccount(account_id=account, owner=account))
            commands.append(c.Deposit(account_id=account, amount=Decimal("100000")))
            commands.append(c.Deposit(account_id=account, amount=Decimal("50"), currency=self.spec.base))
        return self.apply(commands)

    def trades(self, count: int, start: int = 0) -> list[JournalRecord]:
        """`count` trades: alice rests a sell, bob buys it."""
        commands: list[c.Command] = []
        for i in range(start, start + count):
            price = Decimal(100 + i % 7)
            commands.append(self._order("alice", OrderSide.SELL, price))
            commands.append(self._order("bob", OrderSide.BUY, price))
        return self.apply(commands)

    def _order(self, account: str, side: OrderSide, price: Decimal) -> c.PlaceOrder:
        return c.PlaceOrder(
            account_id=account, market=self.spec.symbol, side=side, quantity=Decimal("0.1"), price=price
        )

    def trade_ids(self) -> set[int]:
        return {ev.trade_id for r in self.records for ev in r.events if isinstance(ev, TradeExecuted)}


async def append(
    shard_log: ShardLog, records: list[JournalRecord], per_message: int, *, marker: bool = False
) -> None:
    """As a leader appends: one message per batch of `per_message` records (an epoch marker first)."""
    last = await shard_log.last_seq()
    if marker:
        last = await shard_log.append(b"", last, {"Tradehall-Leader": "r2"})
    for start in range(0, len(records), per_message):
        payload = b"".join(encode_record(r) for r in records[start : start + per_message])
        last = await shard_log.append(payload, last)


async def project_until(projection: ShardProjection, seq: int) -> None:
    """Runs `projection` until it has projected `seq`, then stops it."""
    stop = asyncio.Event()
    task = asyncio.create_task(projection.run(stop))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while projection.projected_seq < seq:
            assert not task.done(), task.exception()
            assert loop.time() < deadline, f"projected {projection.projected_seq} of {seq}"
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def projection_of(js: Any, db: Any, shard: str) -> ShardProjection:
    return ShardProjection(
        ShardLog(js, ShardNames(shard, js.test_prefix)), Projector(db, shard_projector_config(SHARDS, shard))
    )


async def test_two_shards_project_into_one_database_exactly_once_across_a_restart(
    js: Any, pg_url: str
) -> None:
    shards = {"A": Shard("A", SPEC), "B": Shard("B", SOL)}
    logs = {name: ShardLog(js, ShardNames(name, js.test_prefix)) for name in shards}
    for name, shard in shards.items():
        await logs[name].ensure()
        await append(logs[name], shard.setup() + shard.trades(30), per_message=7)
    db = create_store_engine(pg_url)
    try:
        first = {name: projection_of(js, db, name) for name in shards}
        await asyncio.gather(*(project_until(first[n], shards[n].records[-1].seq) for n in shards))
        assert first["A"].started_from == first["B"].started_from == 1

        # shard A goes on under a new leader (an epoch marker, then more batches); B's projection and
        # a restarted A's resume after their stored seqs
        await append(logs["A"], shards["A"].trades(12, start=30), per_message=5, marker=True)
        again = projection_of(js, db, "A")
        await project_until(again, shards["A"].records[-1].seq)
        assert again.started_from > 1  # resumed mid-stream, not from the beginning

        with Session(db) as session:
            trade_ids = {
                name: {
                    int(t)
                    for t in session.scalars(select(Fill.trade_id).where(Fill.market == shard.spec.symbol))
                }
                for name, shard in shards.items()
            }
            assert session.scalar(select(func.count()).select_from(Fill)) == 2 * (42 + 30)
            assert trade_ids["A"] == shards["A"].trade_ids() and len(trade_ids["A"]) == 42
            assert trade_ids["B"] == shards["B"].trade_ids() and len(trade_ids["B"]) == 30
            assert min(trade_ids["B"]) > SHARDS.id_base("B") > max(trade_ids["A"])
            orders = session.scalar(select(func.count()).select_from(Order))
            assert orders == 2 * 42 + 2 * 30
            # balances per shard: each shard's rows equal its engine's, none overwritten by the other
            rows = {(b.account_id, b.currency, b.shard): b.total for b in session.scalars(select(Balance))}
            for name, shard in shards.items():
                index = SHARDS.index(name)
                for account_id, account in shard.engine.accounts.items():
                    usd = account.balances["USD"].total
                    assert rows[(account_id, "USD", index)] == Decimal(usd) / 100, (name, account_id)
            assert rows[("alice", "USD", 0)] != rows[("alice", "USD", 1)]  # 42 vs 30 sales
            # the ledger: every shard's entries, B's ids above B's shard bit, each row once
            ledger = list(session.scalars(select(LedgerEntry)))
            assert len({entry.id for entry in ledger}) == len(ledger)
            shard_b = [e for e in ledger if e.id >> SHARD_SHIFT == 1]
            assert shard_b and all(e.market in (None, SOL.symbol) for e in shard_b)
            assert {e.market for e in ledger if e.id >> SHARD_SHIFT == 0} >= {SPEC.symbol}
            for name, index in (("A", 0), ("B", 1)):
                deposits = [e for e in ledger if e.id >> SHARD_SHIFT == index and e.type == "deposit"]
                assert len(deposits) == 4, name
            # the account rows are the home shard's (A) alone
            accounts = {a.id: a.balance for a in session.scalars(select(Account))}
            assert accounts == {"alice": rows[("alice", "USD", 0)], "bob": rows[("bob", "USD", 0)]}
            cursors = {p.name: p.last_seq for p in session.scalars(select(ProjectionState))}
            assert cursors == {
                projection_name("A"): shards["A"].records[-1].seq,
                projection_name("B"): shards["B"].records[-1].seq,
            }
        for projection in (*first.values(), again):
            projection.projector.close()
    finally:
        db.dispose()


async def test_the_start_is_found_in_the_stream_past_epoch_markers(js: Any) -> None:
    shard = Shard("A", SPEC)
    shard_log = ShardLog(js, ShardNames("A", js.test_prefix))
    await shard_log.ensure()
    assert await start_stream_seq(shard_log, 0) == 1
    await append(shard_log, shard.setup(), per_message=3)  # 8 records: messages 1-3 (3, 3, 2)
    await append(shard_log, shard.trades(2), per_message=2, marker=True)  # marker 4, records 9-12: 5, 6
    assert await start_stream_seq(shard_log, 0) == 1
    assert await start_stream_seq(shard_log, 3) == 2
    assert await start_stream_seq(shard_log, 4) == 2
    assert await start_stream_seq(shard_log, 8) == 5  # the marker holds nothing to read
    assert await start_stream_seq(shard_log, 10) == 6
    assert await start_stream_seq(shard_log, 12) == 7  # everything projected: from the end on


def test_a_shard_is_projected_by_one_process_at_a_time(pg_url: str) -> None:
    db = create_store_engine(pg_url)
    held = hold_projection_lock(db, ["A", "B"])
    try:
        with pytest.raises(ProjectionBusyError, match="shard B is already projected"):
            hold_projection_lock(db, ["C", "B"])
        hold_projection_lock(db, ["C"]).release()  # C was not kept by the refused attempt
    finally:
        held.release()
    hold_projection_lock(db, ["B"]).release()  # released, though its connection went back to the pool
    db.dispose()


def test_the_projector_command_refuses_without_a_shard_map_or_with_an_unknown_shard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from tradehall.cli.main import app

    monkeypatch.delenv("TRADEHALL_CLUSTER_SHARDS", raising=False)
    monkeypatch.delenv("TRADEHALL_CLUSTER_SHARDS_FILE", raising=False)
    result = CliRunner().invoke(app, ["cluster", "projector"])
    assert result.exit_code == 2 and "no shard map" in result.output
    monkeypatch.setenv("TRADEHALL_CLUSTER_SHARDS", "A=BTC-USD;B=SOL-USD")
    result = CliRunner().invoke(app, ["cluster", "projector", "--shard", "C"])
    assert result.exit_code == 2 and "shard 'C' is not one of ['A', 'B']" in result.output


async def test_a_failing_shard_projection_stops_the_process_and_the_others_drain(
    js: Any, pg_url: str
) -> None:
    """A gap in B's stream (a record missing) is a ProjectionError: run_projections raises it and returns,
    after A's projection has stopped too (nothing left running)."""
    from tradehall.service.cluster.projection import run_projections
    from tradehall.service.settings import Settings
    from tradehall.store.projector import SequenceGapError

    shards = {"A": Shard("A", SPEC), "B": Shard("B", SOL)}
    for name, shard in shards.items():
        shard_log = ShardLog(js, ShardNames(name, js.test_prefix))
        await shard_log.ensure()
        records = shard.setup()
        if name == "B":
            records = records[:3] + records[4:]
        await append(shard_log, records, per_message=2)
    settings = Settings(database_url=pg_url, cluster_prefix=js.test_prefix)
    with pytest.raises(SequenceGapError, match="expected seq 4, got 5"):
        await asyncio.wait_for(run_projections(settings, SHARDS, [], asyncio.Event(), js=js), 60)
    db = create_store_engine(pg_url)
    with Session(db) as session:
        cursors = {p.name: p.last_seq for p in session.scalars(select(ProjectionState))}
    db.dispose()
    assert cursors.get(projection_name("B"), 0) <= 3
    assert set(cursors) <= {projection_name("A"), projection_name("B")}


async def test_a_gateways_read_barrier_waits_for_the_shards_projections(js: Any, pg_url: str) -> None:
    """`wait_shards_projected`: True once each shard's cursor reached its target; False after the
    timeout when a projection is behind (the read then goes ahead); a shard with nothing applied, or
    whose projection never ran (no cursor): True at once."""
    from tradehall.service.cluster.projection import wait_shards_projected
    from tradehall.store import Store

    shard = Shard("A", SPEC)
    shard_log = ShardLog(js, ShardNames("A", js.test_prefix))
    await shard_log.ensure()
    await append(shard_log, shard.setup(), per_message=3)
    store = Store.from_url(pg_url)
    db = create_store_engine(pg_url)
    try:
        last = shard.records[-1].seq
        assert await wait_shards_projected(store, {"A": 0, "B": 0}, 0.05) is True
        assert await wait_shards_projected(store, {"A": 1}, 0.05) is True  # no projection: not waited for
        projection = projection_of(js, db, "A")
        await project_until(projection, last)
        assert await wait_shards_projected(store, {"A": last}, 0.05) is True
        await append(shard_log, shard.trades(2), per_message=2)
        later = shard.records[-1].seq
        waiting = asyncio.create_task(wait_shards_projected(store, {"A": later, "B": 0}, 60))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # A's cursor exists and is behind
        again = projection_of(js, db, "A")
        await project_until(again, later)
        assert await waiting is True
        assert await wait_shards_projected(store, {"A": later + 1}, 0.05) is False
        projection.projector.close()
        again.projector.close()
    finally:
        store.close()
        db.dispose()
