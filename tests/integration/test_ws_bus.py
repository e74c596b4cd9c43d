"""WebSocket fan-out from the bus: an engine process publishes to the real Redis / NATS, a second app
instance (TRADEHALL_WS_SOURCE=bus, its own data dir, the engine's URL for book snapshots) serves a
WebSocket client the trades and a book that stays equal to the engine's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.bus.nats import NatsJetStreamBus
from tradehall.bus.redis_streams import RedisStreamsBus
from tradehall.client import AsyncClient, Client, Stream

pytestmark = [pytest.mark.services, pytest.mark.timeout(90)]


async def purge(backend: str, prefix: str) -> None:
    cleaner: RedisStreamsBus | NatsJetStreamBus
    cleaner = RedisStreamsBus(prefix=prefix) if backend == "redis" else NatsJetStreamBus(prefix=prefix)
    await cleaner.purge()
    await cleaner.close()


@pytest.fixture(params=["redis", "nats"])
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    backend: str = request.param
    request.getfixturevalue(f"{backend}_available")
    prefix = f"t{uuid.uuid4().hex[:12]}"
    try:
        with running_server(tmp_path / "engine", bus=backend, bus_prefix=prefix) as engine:
            create_demo_markets(engine.admin())
            with running_server(
                tmp_path / "gateway", bus=backend, bus_prefix=prefix, ws_source="bus", engine_url=engine.url
            ) as gateway:
                yield engine, gateway
    finally:
        asyncio.run(purge(backend, prefix))


async def data_message(stream: Stream, channel: str, timeout: float = 10.0) -> dict[str, Any]:
    while True:
        message = await stream.next(timeout)
        if message.get("channel") == channel:
            return message


def apply(book: dict[str, dict[str, str]], update: dict[str, Any]) -> None:
    for side in ("bids", "asks"):
        for price, quantity in update["data"][side]:
            if Decimal(quantity) == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = quantity


async def test_gateway_serves_trades_and_a_book_equal_to_the_engines(servers: tuple[Server, Server]) -> None:
    engine, gateway = servers
    ready = httpx.get(engine.url + "/ready").json()
    assert ready["checks"]["bus"]["ok"] is True
    assert ready["checks"]["bus"]["backend"] in ("redis", "nats")
    seller, seller_account = engine.trader()
    buyer, buyer_account = engine.trader()
    engine.admin().deposit(seller_account, "1", "BTC")
    seller.place_order(seller_account, "BTC-USD", "sell", "0.3", "70010")
    async with AsyncClient(gateway.url).stream() as stream:
        reply = await stream.subscribe(["book:BTC-USD", "trades:BTC-USD"])
        assert reply["channels"] == ["book:BTC-USD", "trades:BTC-USD"]
        snapshot = await data_message(stream, "book:BTC-USD")
        assert snapshot["type"] == "snapshot"
        assert snapshot["data"]["asks"] == [["70010", "0.3"]]
        book = {"bids": dict(snapshot["data"]["bids"]), "asks": dict(snapshot["data"]["asks"])}
        sequence = snapshot["sequence"]
        # a change the gateway can only learn from the bus proves its subscription is live
        seller.place_order(seller_account, "BTC-USD", "sell", "0.2", "70000")
        update = await data_message(stream, "book:BTC-USD")
        assert (update["type"], update["sequence"]) == ("update", sequence + 1)
        apply(book, update)
        sequence += 1
        buyer.place_order(buyer_account, "BTC-USD", "buy", "0.25", "70010")
        buyer.place_order(buyer_account, "BTC-USD", "buy", "0.1", "69000")
        trades: list[dict[str, Any]] = []
        rest = Client(engine.url).book("BTC-USD", depth=1000)
        while sequence < rest["sequence"] or len(trades) < 2:
            message = await stream.next(10.0)
            if message.get("channel") == "trades:BTC-USD":
                trades.append(message)
            elif message.get("channel") == "book:BTC-USD":
                assert (message["type"], message["sequence"]) == ("update", sequence + 1)
                sequence += 1
                apply(book, message)
        assert [(t["data"]["price"], t["data"]["quantity"], t["data"]["side"]) for t in trades] == [
            ("70000", "0.2", "buy"),
            ("70010", "0.05", "buy"),
        ]
        assert trades[0]["sequence"] == trades[1]["sequence"]  # one command, one journal seq
        assert sequence == rest["sequence"]
        assert book == {"bids": dict(rest["bids"]), "asks": dict(rest["asks"])}
        assert book["asks"] == {"70010": "0.25"} and book["bids"] == {"69000": "0.1"}


async def test_a_gap_in_the_book_resyncs_from_the_engines_snapshot(servers: tuple[Server, Server]) -> None:
    engine, gateway = servers
    seller, seller_account = engine.trader()
    engine.admin().deposit(seller_account, "1", "BTC")
    hub = gateway.app.state.hub
    async with AsyncClient(gateway.url).stream() as stream:
        await stream.subscribe(["book:BTC-USD"])
        snapshot = await data_message(stream, "book:BTC-USD")
        seller.place_order(seller_account, "BTC-USD", "sell", "0.1", "71000")
        first = await data_message(stream, "book:BTC-USD")
        assert first["sequence"] == snapshot["sequence"] + 1
        # the gateway loses its place (as after a lost message): the next delta is a gap
        connection = next(iter(hub.public["book:BTC-USD"]))
        connection.book_sequence["BTC-USD"] -= 1
        seller.place_order(seller_account, "BTC-USD", "sell", "0.1", "71500")
        resync = await data_message(stream, "book:BTC-USD")
        assert resync["type"] == "snapshot"
        rest = Client(engine.url).book("BTC-USD", depth=1000)
        assert resync["sequence"] == rest["sequence"]
        assert dict(resync["data"]["asks"])["71500"] == "0.1"
        assert hub.resyncs == 1
        seller.place_order(seller_account, "BTC-USD", "sell", "0.1", "72000")
        after = await data_message(stream, "book:BTC-USD")
        assert (after["type"], after["sequence"]) == ("update", rest["sequence"] + 1)
        assert after["data"]["asks"] == [["72000", "0.1"]]


async def test_a_market_the_engine_does_not_know_is_refused(servers: tuple[Server, Server]) -> None:
    _, gateway = servers
    async with AsyncClient(gateway.url).stream() as stream:
        await stream.send({"op": "subscribe", "channels": ["book:NOPE-USD"]})
        error = await stream.next(5.0)
        assert (error["op"], error["code"], error["channel"]) == ("error", "not_found", "book:NOPE-USD")
