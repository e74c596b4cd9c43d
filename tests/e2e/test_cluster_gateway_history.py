"""A cluster gateway's history reads come from the PostgreSQL read models the shard projections feed:
`GET /markets/{symbol}/trades`, `GET /orders?status=closed` and an account's ledger show the rows of
both shards.

The shards are in-process engines behind the gateway's router (as tests/e2e/test_api_cluster_gateway.py)
whose records are appended to real JetStream streams (a prefix per test) and projected by
`ShardProjection` into the gateway's own PostgreSQL database (one per test, dropped after).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import nats
import psycopg
import pytest

from tests.conftest import require_service
from tests.e2e.test_api_harness import running_server
from tests.fakes.cluster import FakeReads, FakeShard
from tests.integration.cluster_kit import NATS_URL, delete_prefix, unique_prefix
from tests.integration.test_cluster_projection import project_until
from tradehall.domain import commands as c
from tradehall.domain.commands import AnyCommand
from tradehall.domain.enums import MarketKind, OrderSide
from tradehall.domain.market import MarketSpec
from tradehall.journal.records import JournalRecord
from tradehall.journal.segments import encode_record
from tradehall.service.cluster.log import ShardLog
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.projection import ShardProjection, shard_projector_config
from tradehall.service.cluster.routing import ClusterGateway, ShardRouter
from tradehall.service.cluster.shards import ShardMap, shard_configure
from tradehall.service.cluster.transfers import MemoryTransferStore, TransferCoordinator
from tradehall.service.runner import CommandResult
from tradehall.store import Projector, create_store_engine

pytestmark = [pytest.mark.services, pytest.mark.timeout(180)]
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
SHARDS = ShardMap.parse("A=BTC-USD;B=ETH-USD")
MARKET_OF = {"A": "BTC-USD", "B": "ETH-USD"}
T0 = 1_767_225_600_000_000_000


def _spot(symbol: str) -> MarketSpec:
    base, quote = symbol.split("-")
    return MarketSpec(
        symbol=symbol,
        kind=MarketKind.SPOT,
        base=base,
        quote=quote,
        tick_size=Decimal("0.5"),
        lot_size=Decimal("0.001"),
    )


@dataclass
class RecordingShard(FakeShard):
    """A shard that journals what it applies, as a leader would (seq from 1, stamped times)."""

    records: list[JournalRecord] = field(default_factory=list)

    async def submit(self, command: AnyCommand, *, timeout: float | None = None) -> CommandResult:
        stamped = msgspec.structs.replace(command, ts=T0 + (self.seq + 1) * 1_000_000)
        result = await super().submit(stamped, timeout=timeout)
        self.records.append(
            JournalRecord(seq=result.seq, ts=stamped.ts, command=stamped, events=result.events)
        )
        return CommandResult(seq=result.seq, ts=stamped.ts, events=result.events)


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_service("postgresql")
    name = f"th_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def prefix() -> Iterator[str]:
    require_service("nats")
    name = unique_prefix()
    yield name

    async def clean() -> None:
        nc = await nats.connect(NATS_URL)
        await delete_prefix(nc.jetstream(), name, ("A", "B"))
        await nc.close()

    asyncio.run(clean())


async def _project(shards: dict[str, RecordingShard], prefix: str, url: str) -> None:
    """Every shard's records into its stream (5 per message), then projected into `url`."""
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    db = create_store_engine(url)
    try:
        projections = []
        for name, shard in shards.items():
            shard_log = ShardLog(js, ShardNames(name, prefix))
            await shard_log.ensure()
            last = await shard_log.last_seq()
            for start in range(0, len(shard.records), 5):
                payload = b"".join(encode_record(r) for r in shard.records[start : start + 5])
                last = await shard_log.append(payload, last)
            projections.append(
                (ShardProjection(shard_log, Projector(db, shard_projector_config(SHARDS, name))), shard)
            )
        await asyncio.gather(*(project_until(p, shard.records[-1].seq) for p, shard in projections))
        for projection, _ in projections:
            projection.projector.close()
    finally:
        db.dispose()
        await nc.close()


def test_a_cluster_gateways_history_shows_both_shards(tmp_path: Path, pg_url: str, prefix: str) -> None:
    shards = {name: RecordingShard(name) for name in SHARDS.names}
    router = ShardRouter(SHARDS, shards, retry_seconds=5.0)

    def submit(shard: str, command: AnyCommand) -> Any:
        return asyncio.run(shards[shard].submit(command))

    for name in SHARDS.names:
        submit(name, shard_configure(SHARDS, name))
        submit(name, c.CreateMarket(spec=_spot(MARKET_OF[name])))
        submit(name, c.OpenAccount(account_id="maker", owner="maker"))
    with running_server(tmp_path, database_url=pg_url) as server:
        transfers = TransferCoordinator(router.submit_to, MemoryTransferStore(), SHARDS.names)
        server.app.state.gateway.cluster = ClusterGateway(router, FakeReads(shards), transfers)
        client, account = server.trader(funded="100000")  # opened in both shards, funded in A
        submit("B", c.Deposit(account_id=account, amount=Decimal("100000")))  # (a transfer's credit)
        for name, symbol in (("A", "BTC-USD"), ("B", "ETH-USD")):
            submit(name, c.Deposit(account_id="maker", amount=Decimal("10"), currency=symbol.split("-")[0]))
            for price in ("100", "101", "102"):
                quantity = Decimal("0.5")
                submit(
                    name,
                    c.PlaceOrder(
                        account_id="maker",
                        market=symbol,
                        side=OrderSide.SELL,
                        quantity=quantity,
                        price=Decimal(price),
                    ),
                )
                placed = client.place_order(account, symbol, "buy", str(quantity), price=price)
                assert placed["status"] == "filled", placed
        asyncio.run(_project(shards, prefix, pg_url))

        for symbol, shard in (("BTC-USD", "A"), ("ETH-USD", "B")):
            trades = client.market_trades(symbol)["items"]
            assert [t["price"] for t in trades] == ["102", "101", "100"], trades
            assert all(SHARDS.shard_of_id(int(t["id"])) == shard for t in trades)
        ledger = client.ledger(account)["items"]
        trades_by_market = sorted((e["market"], e["currency"]) for e in ledger if e["type"] == "trade")
        assert trades_by_market == [  # each fill: the quote paid and the base received, in its shard
            *[("BTC-USD", "BTC")] * 3,
            *[("BTC-USD", "USD")] * 3,
            *[("ETH-USD", "ETH")] * 3,
            *[("ETH-USD", "USD")] * 3,
        ]
        assert len({e["id"] for e in ledger}) == len(ledger)
        assert sorted(e["type"] for e in ledger if e["type"] == "deposit") == ["deposit"] * 2  # A's and B's
        closed = client.orders(account_id=account, status="closed")["items"]
        assert (
            sorted((o["market"], o["status"]) for o in closed)
            == [("BTC-USD", "filled")] * 3 + [("ETH-USD", "filled")] * 3
        )
