"""An HTTP gateway configured for a cluster (docs/cluster.md, "Shards and routing"): `POST /orders` lands
on the shard that owns its market, a retry across a takeover with the same client order id answers the
one order (200), a cancel by id finds its shard, no leader answers 503 `overloaded`, a market in no
shard 404. The shards are in-process engines behind the router (the NATS leader is h19a's replica)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_api_harness import running_server
from tests.engine_support import perp_spec, spot_spec
from tests.fakes.cluster import DOWN, LOSE_REPLY, FakeReads, FakeShard, FakeTime
from tradehall.api.app import follow_shards
from tradehall.client import AsyncClient
from tradehall.client.api import ApiError
from tradehall.domain import commands as c
from tradehall.engine import Engine
from tradehall.service.cluster.ops import followed_check
from tradehall.service.cluster.routing import ClusterGateway, ShardRouter
from tradehall.service.cluster.shards import ShardMap, shard_configure
from tradehall.service.cluster.transfers import MemoryTransferStore, TransferCoordinator

SHARDS = ShardMap.parse("A=BTC-USD;B=BTC-PERP")


def _shards() -> dict[str, FakeShard]:
    shards = {name: FakeShard(name, Engine()) for name in SHARDS.names}
    for name, spec in (("A", spot_spec("BTC-USD")), ("B", perp_spec("BTC-PERP"))):
        shards[name].engine.apply(shard_configure(SHARDS, name))
        shards[name].engine.apply(c.CreateMarket(spec=spec))
    return shards


def test_a_cluster_gateway_sends_each_order_to_its_shard(tmp_path: Path) -> None:
    shards = _shards()
    clock = FakeTime()
    router = ShardRouter(SHARDS, shards, retry_seconds=5.0, monotonic=clock.monotonic, sleep=clock.sleep)
    with running_server(tmp_path) as server:
        transfers = TransferCoordinator(router.submit_to, MemoryTransferStore(), SHARDS.names)
        server.app.state.gateway.cluster = ClusterGateway(router, FakeReads(shards), transfers)
        client, account = server.trader(funded="1000")  # opened in both shards, funded in the home one
        assert account in shards["A"].engine.accounts and account in shards["B"].engine.accounts
        # collateral for B's perp: an admin moves it from the home shard (exactly once, by its id)
        admin = server.admin()
        moved = admin.create_transfer("t-1", account, "400", "A", "B")
        assert (moved["state"], moved["currency"], moved["reason"]) == ("completed", "USD", "")
        assert admin.create_transfer("t-1", account, "400", "A", "B")["state"] == "completed"
        assert admin.transfer("t-1")["state"] == "completed"
        totals = [shards[name].engine.accounts[account].balances["USD"].total for name in ("A", "B")]
        assert totals == [60_000, 40_000]
        refused = admin.create_transfer("t-2", account, "600.01", "A", "B")
        assert (refused["state"], refused["reason"]) == (
            "failed",
            "the transfer needs 600.01 USD, 600.00 available",
        )
        with pytest.raises(ApiError) as conflict:
            admin.create_transfer("t-1", account, "401", "A", "B")
        assert (conflict.value.status, conflict.value.code) == (409, "conflict")
        with pytest.raises(ApiError) as unknown_transfer:
            admin.transfer("t-9")
        assert unknown_transfer.value.status == 404

        assert [m["symbol"] for m in client.markets()["items"]] == ["BTC-PERP", "BTC-USD"]  # both shards
        assert client.market("BTC-PERP")["kind"] == "perp"  # read from B's replica
        spot = client.place_order(account, "BTC-USD", "buy", "0.01", price="100", type="limit")
        perp = client.place_order(account, "BTC-PERP", "buy", "0.01", price="100", type="limit")
        assert int(spot["id"]) == 1 and int(perp["id"]) == SHARDS.id_base("B") + 1
        assert [o.market for o in shards["A"].engine.orders.values()] == ["BTC-USD"]
        assert [o.market for o in shards["B"].engine.orders.values()] == ["BTC-PERP"]

        # B's leader journals the order and dies before answering; no leader once; the standby serves
        shards["B"].faults = [LOSE_REPLY, DOWN]
        again = client.place_order(
            account, "BTC-PERP", "buy", "0.02", price="99", type="limit", client_order_id="c-1"
        )
        placed = [o for o in shards["B"].engine.orders.values() if o.client_order_id == "c-1"]
        assert len(placed) == 1 and int(again["id"]) == placed[0].order_id
        assert again["client_order_id"] == "c-1" and router.retries == 2

        assert client.cancel_order(perp["id"])["status"] == "cancelled"
        assert int(perp["id"]) not in shards["B"].engine.orders

        with pytest.raises(ApiError) as unknown:
            client.place_order(account, "DOGE-USD", "buy", "1", price="1", type="limit")
        assert (unknown.value.status, unknown.value.code) == (404, "not_found")
        assert "in no shard of the cluster" in unknown.value.detail

        shards["A"].faults = [DOWN] * 1000
        with pytest.raises(ApiError) as down:
            client.place_order(
                account, "BTC-USD", "buy", "0.01", price="100", type="limit", client_order_id="c-2"
            )
        assert (down.value.status, down.value.code) == (503, "overloaded")
        assert down.value.detail.startswith("shard A has no leader that answered within 5 s")


def test_an_account_through_a_cluster_gateway_adds_up_every_shards_part(tmp_path: Path) -> None:
    """`GET /accounts` and `/accounts/{id}`: balances summed per currency over the shards, each shard's
    part under `shards`; `GET /positions`: the positions of every shard, not the home shard's only."""
    shards = _shards()
    clock = FakeTime()
    router = ShardRouter(SHARDS, shards, retry_seconds=5.0, monotonic=clock.monotonic, sleep=clock.sleep)
    with running_server(tmp_path) as server:
        transfers = TransferCoordinator(router.submit_to, MemoryTransferStore(), SHARDS.names)
        server.app.state.gateway.cluster = ClusterGateway(router, FakeReads(shards), transfers)
        buyer, long = server.trader(funded="1000")
        seller, short = server.trader(funded="1000")
        admin = server.admin()
        assert admin.create_transfer("t-1", long, "400", "A", "B")["state"] == "completed"
        assert admin.create_transfer("t-2", short, "300", "A", "B")["state"] == "completed"
        buyer.place_order(long, "BTC-USD", "buy", "1", price="100", type="limit")  # holds 100 in A
        seller.place_order(short, "BTC-PERP", "sell", "1", price="200", type="limit")
        buyer.place_order(long, "BTC-PERP", "buy", "1", price="200", type="limit")  # a long in B

        account = buyer.account(long)
        # A: 600.00, the spot bid holding 100.00 and its fee; B: 400.00 less the perp's taker fee, its
        # initial margin held
        assert (account["balance"], account["available"]) == ("999.90", "879.70")
        assert account["balances"] == [
            {"currency": "USD", "total": "999.90", "available": "879.70", "held": "120.20"}
        ]
        assert [(part["shard"], part["balances"]) for part in account["shards"]] == [
            ("A", [{"currency": "USD", "total": "600.00", "available": "499.80", "held": "100.20"}]),
            ("B", [{"currency": "USD", "total": "399.90", "available": "379.90", "held": "20.00"}]),
        ]
        equity = sum(Decimal(part["equity"]) for part in account["shards"])
        assert Decimal(account["equity"]) == equity
        listed = {item["id"]: item for item in buyer.accounts()["items"]}
        assert listed[long]["balance"] == account["balance"] and listed[long]["shards"] == account["shards"]

        positions = buyer.positions(long)["items"]
        assert [(p["market"], p["side"], p["quantity"]) for p in positions] == [("BTC-PERP", "long", "1")]
        assert [(p["market"], p["side"]) for p in seller.positions()["items"]] == [("BTC-PERP", "short")]


def test_transfers_need_a_cluster(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, pytest.raises(ApiError) as caught:
        server.admin().create_transfer("t-1", "acc", "1", "A", "B")
    assert (caught.value.status, caught.value.code) == (409, "conflict")
    assert "not configured for one (TRADEHALL_CLUSTER_SHARDS)" in caught.value.detail


def test_ready_of_a_cluster_gateway_has_one_entry_per_shard(tmp_path: Path) -> None:
    shards = _shards()
    clock = FakeTime()
    router = ShardRouter(SHARDS, shards, retry_seconds=5.0, monotonic=clock.monotonic, sleep=clock.sleep)
    with running_server(tmp_path) as server:
        cluster = ClusterGateway(router, FakeReads(shards), monotonic=clock.monotonic)
        server.app.state.gateway.cluster = cluster
        ready = httpx.get(server.url + "/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        checks = ready.json()["checks"]["shards"]
        assert checks["ok"] is True and set(checks) == {"ok", "A", "B"}
        assert checks["A"] == {
            "ok": True,
            "leader_seen": True,
            "lease_holder": "A-1",
            "applied_seq": 0,
            "stream_seq": 0,
            "stream_last_seq": 0,
            "lag": 0,
            "diverged_seq": 0,
        }
        shards["B"].faults = [DOWN]  # B has no leader
        # a public endpoint: many requests within a second cost one round of shard checks
        many = [httpx.get(server.url + "/ready", timeout=10) for _ in range(10)]
        assert {response.status_code for response in many} == {200}
        assert cluster.readiness.rounds == 1
        clock.now += 1.0  # the answer is now as old as it may be: the next request checks again
        down = httpx.get(server.url + "/ready", timeout=10)
        assert cluster.readiness.rounds == 2
        assert down.status_code == 503 and down.json()["status"] == "not_ready"
        checks = down.json()["checks"]["shards"]
        assert (checks["ok"], checks["A"]["ok"], checks["B"]["ok"], checks["B"]["leader_seen"]) == (
            False, True, False, False
        )


def test_a_followed_shard_is_not_ready_behind_its_stream_or_diverged() -> None:
    live = {"lease_holder": "A-1", "lease_since_renewal_seconds": 1.0, "lease_ttl_seconds": 5.0}
    assert followed_check(applied_seq=7, stream_seq=9, stream_last_seq=9, diverged_seq=0, **live)["ok"]
    behind = followed_check(
        applied_seq=7, stream_seq=9, stream_last_seq=20, diverged_seq=0, max_lag=10, **live
    )
    assert (behind["ok"], behind["lag"]) == (False, 11)
    assert not followed_check(applied_seq=7, stream_seq=9, stream_last_seq=9, diverged_seq=5, **live)["ok"]
    expired = followed_check(
        applied_seq=7, stream_seq=9, stream_last_seq=9, diverged_seq=0,
        lease_holder="A-1", lease_since_renewal_seconds=6.0, lease_ttl_seconds=5.0,
    )
    assert (expired["ok"], expired["leader_seen"]) == (False, False)


def test_a_cluster_gateways_websocket_streams_every_shards_records(tmp_path: Path) -> None:
    """Orders placed on two shards reach one `orders` subscriber; a trade on A its `trades` channel.
    Seqs are each shard's own (both shards' first order can carry the same one)."""
    shards = _shards()
    clock = FakeTime()
    router = ShardRouter(SHARDS, shards, retry_seconds=5.0, monotonic=clock.monotonic, sleep=clock.sleep)
    with running_server(tmp_path) as server:
        transfers = TransferCoordinator(router.submit_to, MemoryTransferStore(), SHARDS.names)
        cluster = ClusterGateway(router, FakeReads(shards), transfers)
        server.app.state.gateway.cluster = cluster
        follow_shards(server.app.state.gateway, server.app.state.hub)  # as `serve` does in a cluster
        shards["A"].now_ns = server.app.state.gateway.volumes.now_ns  # A's leader stamps its trades
        client, account = server.trader(funded="1000")
        maker, maker_account = server.trader()
        admin = server.admin()
        admin.deposit(maker_account, "1", "BTC")
        admin.create_transfer("t-1", account, "400", "A", "B")

        async def watch() -> list[dict[str, Any]]:
            async with AsyncClient(server.url, token=client.auth_token).stream() as stream:
                await stream.subscribe(["orders", "fills", "trades:BTC-USD", "candles:BTC-USD:1m"])
                perp = client.place_order(account, "BTC-PERP", "buy", "0.01", price="100", type="limit")
                spot = client.place_order(account, "BTC-USD", "buy", "0.02", price="100", type="limit")
                maker.place_order(maker_account, "BTC-USD", "sell", "0.01", price="100", type="limit")
                seen: list[dict[str, Any]] = []
                while not (
                    any(m.get("channel") == "fills" for m in seen)
                    and any(m.get("channel") == "trades:BTC-USD" for m in seen)
                    and any(m.get("channel") == "candles:BTC-USD:1m" and m["type"] == "update" for m in seen)
                    and sum(m.get("channel") == "orders" and m["type"] == "update" for m in seen) >= 3
                ):
                    seen.append(await stream.next(5.0))
                updates = [m for m in seen if m.get("channel") == "orders" and m["type"] == "update"]
                assert [m["data"]["id"] for m in updates] == [perp["id"], spot["id"], spot["id"]]
                return seen

        seen = asyncio.run(watch())
        updates = [m for m in seen if m.get("channel") == "orders" and m["type"] == "update"]
        assert [(m["data"]["market"], m["event"]) for m in updates] == [
            ("BTC-PERP", "OrderAccepted"),
            ("BTC-USD", "OrderAccepted"),
            ("BTC-USD", "OrderFilled"),
        ]
        assert updates[2]["data"]["status"] == "partially_filled"  # read from A's replica
        assert updates[0]["sequence"] == shards["B"].seq  # B's own record seq (seqs are per shard)
        trade = next(m for m in seen if m.get("channel") == "trades:BTC-USD")
        assert (trade["data"]["price"], trade["data"]["quantity"]) == ("100", "0.01")
        fill = next(m for m in seen if m.get("channel") == "fills")
        assert (fill["data"]["order_id"], fill["data"]["liquidity"]) == (updates[1]["data"]["id"], "maker")
        # candles and 24 h volumes follow the shards too
        candle = next(m for m in seen if m.get("channel") == "candles:BTC-USD:1m" and m["type"] == "update")
        assert (candle["data"]["close"], candle["data"]["volume"]) == ("100", "0.01")
        assert client.ticker("BTC-USD")["volume_24h"] == "0.01"
        assert client.ticker("BTC-PERP")["volume_24h"] == "0"
