"""A gateway configured for a two-shard cluster on the local NATS JetStream (`TRADEHALL_CLUSTER_SHARDS`),
with real replica processes (`python -m tradehall.service.cluster.replica`): markets, accounts and
orders land on their shards, collateral moves between them once, and an order retried with the same
client order id across a takeover of its shard's leader (SIGKILL, the standby takes the lease) is one
order. `/ready` shows each shard's leader; one WebSocket `orders` subscriber sees both shards' orders."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from typer.testing import CliRunner

from tests.e2e.test_api_harness import Server, running_server
from tests.integration.cluster_kit import delete_prefix, unique_prefix
from tradehall.cli.main import app as cli
from tradehall.client import AsyncClient
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.routing import ClusterGateway
from tradehall.service.cluster.shards import ID_BITS

pytestmark = pytest.mark.usefixtures("nats_available")

NATS_URL = "nats://127.0.0.1:4222"
ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


async def _streams_exist(prefix: str, shards: tuple[str, ...]) -> bool:
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for shard in shards:
            try:
                await js.stream_info(ShardNames(shard, prefix).stream)
            except Exception:  # not yet: the replica makes it when it starts
                return False
        return True
    finally:
        await nc.close()


async def _clean(prefix: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        await delete_prefix(js, prefix, ("A", "B"))
        with contextlib.suppress(Exception):  # never made: the test failed before
            await js.delete_key_value(f"{prefix}-transfers")
    finally:
        await nc.close()


class Replicas:
    def __init__(self, prefix: str, workdir: Path) -> None:
        self.prefix = prefix
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, shard: str, replica_id: str) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "tradehall.service.cluster.replica", "--shard", shard]
        argv += ["--prefix", self.prefix, "--nats", NATS_URL, "--replica-id", replica_id, "--lease-ttl", "1"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        with (self.workdir / f"{replica_id}.log").open("a") as output:
            proc = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=self.workdir)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    made = Replicas(unique_prefix(), tmp_path)
    try:
        yield made
    finally:
        made.stop()
        asyncio.run(_clean(made.prefix))


def _json(output: str) -> Any:
    """The command's JSON, after the log lines it may print first."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("{", "[")))
    return json.loads("\n".join(lines[start:]))


def _cluster(server: Server) -> ClusterGateway:
    cluster = server.app.state.gateway.cluster
    assert isinstance(cluster, ClusterGateway)
    return cluster


def test_a_gateway_in_front_of_two_shards(replicas: Replicas, tmp_path: Path) -> None:
    replicas.start("A", "a1")
    leader_b = replicas.start("B", "b1")
    _wait(lambda: asyncio.run(_streams_exist(replicas.prefix, ("A", "B"))), "the shards' streams")
    shards = "A=BTC-USD;B=ETH-USD"
    with running_server(
        tmp_path / "gateway",
        cluster_shards=shards,
        cluster_prefix=replicas.prefix,
        nats_url=NATS_URL,
        cluster_retry_seconds=20.0,
        cluster_request_timeout_seconds=1.0,
    ) as server:
        cluster = _cluster(server)
        # the gateway puts each shard's engine in its id range as soon as its leader serves
        _wait(lambda: cluster.reads.engine_of("B").config.id_base == 1 << ID_BITS, "B's id base")
        replicas.start("B", "b2")  # B's standby
        ready = httpx.get(server.url + "/ready", timeout=10)
        shard_checks = ready.json()["checks"]["shards"]
        assert [shard_checks[s]["lease_holder"] for s in ("A", "B")] == ["a1", "b1"]
        assert shard_checks["ok"] is True and shard_checks["B"]["lag"] == 0
        admin = server.admin()
        for symbol, base in (("BTC-USD", "BTC"), ("ETH-USD", "ETH")):
            admin.create_market(
                symbol=symbol, kind="spot", base=base, quote="USD", tick_size="0.01", lot_size="0.001"
            )
        assert list(cluster.reads.engine_of("A").markets) == ["BTC-USD"]
        assert list(cluster.reads.engine_of("B").markets) == ["ETH-USD"]

        client, account = server.trader(funded="1000")  # opened in both shards, funded in A (home)
        moved = admin.create_transfer("t-1", account, "250", "A", "B")
        assert (moved["state"], moved["currency"]) == ("completed", "USD")
        balances = [cluster.reads.engine_of(s).accounts[account].balances["USD"].total for s in ("A", "B")]
        assert balances == [75_000, 25_000]

        # the same from the command line: `tradehall cluster transfer` (its own coordinator, same records)
        env = {"TRADEHALL_CLUSTER_SHARDS": shards, "TRADEHALL_CLUSTER_PREFIX": replicas.prefix}
        env["TRADEHALL_NATS_URL"] = NATS_URL
        argv = ["cluster", "transfer", "t-cli", account, "50", "--from", "B", "--to", "A", "--json"]
        for _ in range(2):  # the second run answers the same transfer, moving nothing
            done = CliRunner().invoke(cli, argv, env=env)
            assert done.exit_code == 0, done.output
            assert _json(done.output)["state"] == "completed"
        too_much = CliRunner().invoke(cli, [*argv[:2], "t-cli-2", account, "500", *argv[5:]], env=env)
        assert too_much.exit_code == 1 and _json(too_much.output)["state"] == "failed"
        recovered = CliRunner().invoke(cli, ["cluster", "recover-transfers", "--json"], env=env)
        assert recovered.exit_code == 0 and _json(recovered.output) == []
        balances = [cluster.reads.engine_of(s).accounts[account].balances["USD"].total for s in ("A", "B")]
        assert balances == [80_000, 20_000]

        async def place_and_watch() -> tuple[Any, Any, list[dict[str, Any]]]:
            """Orders on both shards reach one WebSocket `orders` subscriber (the replicas feed the hub)."""
            async with AsyncClient(server.url, token=client.auth_token).stream() as stream:
                await stream.subscribe(["orders"])
                on_a = client.place_order(account, "BTC-USD", "buy", "0.01", price="100", type="limit")
                on_b = client.place_order(account, "ETH-USD", "buy", "0.01", price="100", type="limit")
                updates: list[dict[str, Any]] = []
                while len(updates) < 2:
                    message = await stream.next(10.0)
                    if message.get("channel") == "orders" and message["type"] == "update":
                        updates.append(message)
                return on_a, on_b, updates

        spot_a, spot_b, updates = asyncio.run(place_and_watch())
        assert [(u["data"]["id"], u["data"]["market"]) for u in updates] == [
            (spot_a["id"], "BTC-USD"),
            (spot_b["id"], "ETH-USD"),
        ]
        assert int(spot_a["id"]) < 1 << ID_BITS <= int(spot_b["id"])
        assert client.order(spot_b["id"])["status"] == "open"

        # B's leader dies; the same order is sent until the standby has taken over: one order
        os.kill(leader_b.pid, signal.SIGKILL)
        first = client.place_order(
            account, "ETH-USD", "buy", "0.02", price="99", type="limit", client_order_id="k-1"
        )
        again = client.place_order(
            account, "ETH-USD", "buy", "0.02", price="99", type="limit", client_order_id="k-1"
        )
        assert first["id"] == again["id"] and cluster.router.retries >= 1  # sent again during the takeover
        engine_b = cluster.reads.engine_of("B")
        assert [o.order_id for o in engine_b.orders.values() if o.client_order_id == "k-1"] == [
            int(first["id"])
        ]
        assert client.cancel_order(spot_b["id"])["status"] == "cancelled"
