"""The WebSocket /ws against a real server: book snapshot + sequenced deltas, trades, private channels,
order entry, errors, limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.client import ApiError, AsyncClient, Client, Stream


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("ws"), ws_max_subscriptions=3) as running:
        create_demo_markets(running.admin())
        yield running


async def data_message(stream: Stream, channel: str, timeout: float = 5.0) -> dict[str, Any]:
    while True:
        message = await stream.next(timeout)
        if message.get("channel") == channel:
            return message


async def test_book_snapshot_then_updates_in_sequence_matching_rest(server: Server) -> None:
    trader, account_id = server.trader()
    async with AsyncClient(server.url).stream() as stream:
        await stream.subscribe(["book:BTC-USD"])
        snapshot = await data_message(stream, "book:BTC-USD")
        assert snapshot["type"] == "snapshot"
        start = snapshot["sequence"]
        assert Client(server.url).book("BTC-USD")["sequence"] == start
        book = {"bids": dict(snapshot["data"]["bids"]), "asks": dict(snapshot["data"]["asks"])}
        orders = [trader.place_order(account_id, "BTC-USD", "buy", "0.01", str(100 + i)) for i in range(3)]
        trader.cancel_order(orders[1]["id"])
        sequences = []
        for _ in range(4):
            update = await data_message(stream, "book:BTC-USD")
            assert update["type"] == "update"
            sequences.append(update["sequence"])
            for price, quantity in update["data"]["bids"]:
                if Decimal(quantity) == 0:
                    book["bids"].pop(price, None)
                else:
                    book["bids"][price] = quantity
        assert sequences == [start + 1, start + 2, start + 3, start + 4]
        rest = Client(server.url).book("BTC-USD", depth=1000)
        assert rest["sequence"] == start + 4
        assert book["bids"] == dict(rest["bids"])
    trader.cancel_all(account_id)


async def test_trades_and_ticker_channels_see_a_match(server: Server) -> None:
    seller, seller_account = server.trader()
    buyer, buyer_account = server.trader()
    server.admin().deposit(seller_account, "1", "BTC")
    async with AsyncClient(server.url).stream() as stream:
        await stream.subscribe(["trades:BTC-USD", "ticker:BTC-USD"])
        seller.place_order(seller_account, "BTC-USD", "sell", "0.1", "70000")
        buyer.place_order(buyer_account, "BTC-USD", "buy", "0.1", "70000")
        trade = await data_message(stream, "trades:BTC-USD")
        assert trade["data"]["price"] == "70000"
        assert trade["data"]["quantity"] == "0.1"
        assert trade["data"]["side"] == "buy"
        ticker = await data_message(stream, "ticker:BTC-USD")
        assert set(ticker["data"]) >= {"bid", "ask", "last", "mark", "volume_24h"}


async def test_private_channels_need_auth_and_then_stream_own_orders_and_fills(server: Server) -> None:
    trader, account_id = server.trader()
    maker, maker_account = server.trader()
    async with AsyncClient(server.url).stream() as anonymous:
        await anonymous.send({"op": "subscribe", "channels": ["orders"]})
        error = await anonymous.next()
        assert (error["op"], error["code"]) == ("error", "unauthorized")
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        reply = await stream.subscribe(["orders", "fills", "account"])
        assert reply["channels"] == ["orders", "fills", "account"]
        maker.place_order(maker_account, "BTC-PERP", "sell", "0.01", "50000")
        order = trader.place_order(account_id, "BTC-PERP", "buy", "0.01", "50000")
        seen: list[dict[str, Any]] = []
        while not any(m.get("channel") == "fills" for m in seen):
            seen.append(await stream.next(5.0))
        fill = next(m for m in seen if m.get("channel") == "fills")
        assert fill["data"]["order_id"] == order["id"]
        assert fill["data"]["liquidity"] == "taker"
        updates = [m for m in seen if m.get("channel") == "orders" and m["type"] == "update"]
        assert [u["event"] for u in updates] == ["OrderAccepted", "OrderFilled"]
        assert {u["data"]["id"] for u in updates} == {order["id"]}
        assert updates[-1]["data"]["status"] == "filled"


async def test_order_entry_over_the_websocket(server: Server) -> None:
    trader, account_id = server.trader()
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        order = await stream.place_order(
            account_id=account_id, market="BTC-USD", side="buy", type="limit", quantity="0.01", price="500"
        )
        assert order["status"] == "open"
        assert trader.order(order["id"])["price"] == "500"
        with pytest.raises(ApiError) as refused:
            await stream.place_order(
                account_id=account_id, market="BTC-USD", side="buy", type="limit", quantity="0", price="500"
            )
        assert refused.value.code == "invalid_order"
        cancelled = await stream.cancel_order(order["id"])
        assert cancelled["status"] == "cancelled"


async def test_ping_unknown_op_malformed_json_and_unknown_channel(server: Server) -> None:
    async with websockets.connect(server.url.replace("http", "ws") + "/ws") as socket:
        await socket.send(json.dumps({"op": "ping"}))
        assert json.loads(await socket.recv()) == {"op": "pong"}
        await socket.send("{nope")
        assert json.loads(await socket.recv())["code"] == "invalid_request"
        await socket.send(json.dumps({"op": "dance"}))
        assert json.loads(await socket.recv())["message"] == "unknown op 'dance'"
        await socket.send(json.dumps({"op": "subscribe", "channels": ["book:NOPE"]}))
        error = json.loads(await socket.recv())
        assert (error["code"], error["channel"]) == ("not_found", "book:NOPE")
        assert json.loads(await socket.recv()) == {"op": "subscribed", "channels": []}


async def test_subscription_limit_per_connection(server: Server) -> None:
    async with AsyncClient(server.url).stream() as stream:
        await stream.send(
            {
                "op": "subscribe",
                "channels": ["book:BTC-USD", "trades:BTC-USD", "ticker:BTC-USD", "book:BTC-PERP"],
            }
        )
        messages = [await stream.next() for _ in range(2)]
        error = next(m for m in messages if m.get("op") == "error")
        assert error["channel"] == "book:BTC-PERP"
        assert "subscription limit of 3" in error["message"]


async def test_auth_with_a_bad_token_is_refused(server: Server) -> None:
    async with websockets.connect(server.url.replace("http", "ws") + "/ws") as socket:
        await socket.send(json.dumps({"op": "auth", "token": "forged"}))
        reply = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert (reply["op"], reply["code"]) == ("error", "unauthorized")


async def test_candles_channel_and_heartbeats(server: Server) -> None:
    seller, seller_account = server.trader()
    buyer, buyer_account = server.trader()
    hub = server.app.state.hub
    hub.heartbeat_seconds = 0.2
    try:
        async with AsyncClient(server.url).stream() as stream:
            await stream.subscribe(["candles:BTC-PERP:1m"])
            snapshot = await data_message(stream, "candles:BTC-PERP:1m")
            assert snapshot["type"] == "snapshot"
            seller.place_order(seller_account, "BTC-PERP", "sell", "0.003", "41000")
            buyer.place_order(buyer_account, "BTC-PERP", "buy", "0.003", "41000")
            update = await data_message(stream, "candles:BTC-PERP:1m")
            assert update["type"] == "update"
            assert update["data"]["close"] == "41000"
            assert set(update["data"]) == {"t", "open", "high", "low", "close", "volume"}
            beat = await stream.expect("heartbeat", timeout=5)
            assert beat["seq"] > 0
    finally:
        hub.heartbeat_seconds = 15.0
    # other tests here trade BTC-PERP too, maybe in an earlier minute: take the candle of this minute
    candles = Client(server.url).candles("BTC-PERP", "1m")["items"]
    (same_minute,) = [candle for candle in candles if candle["t"] == update["data"]["t"]]
    assert same_minute["close"] == "41000"


async def test_websocket_orders_carry_a_correlation_id_of_connection_and_message(server: Server) -> None:
    from tradehall.journal.segments import read_records

    trader, account_id = server.trader()
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        order = await stream.place_order(
            account_id=account_id, market="BTC-USD", side="buy", type="limit", quantity="0.001", price="200"
        )
    ids = [
        record.command.correlation_id
        for record in read_records(server.settings.journal_dir)
        if getattr(record.command, "account_id", None) == account_id and record.command.correlation_id
    ]
    assert any(cid.startswith("ws-") and cid.endswith("-1") for cid in ids), ids
    trader.cancel_order(order["id"])


async def test_a_slow_consumer_is_disconnected_with_1013(tmp_path: Path) -> None:
    with running_server(tmp_path, ws_send_queue=3) as small:
        create_demo_markets(small.admin())
        trader, account_id = small.trader()
        hub = small.app.state.hub
        async with websockets.connect(small.url.replace("http", "ws") + "/ws") as socket:
            await socket.send(json.dumps({"op": "ping"}))
            assert json.loads(await socket.recv()) == {"op": "pong"}
            (connection,) = hub.connections
            original_send = connection.websocket.send_text

            async def stalled_send(text: str) -> None:
                await asyncio.sleep(0.5)  # a peer that reads far slower than the book changes
                await original_send(text)

            connection.websocket.send_text = stalled_send
            await socket.send(json.dumps({"op": "subscribe", "channels": ["book:BTC-USD"]}))
            await asyncio.sleep(0.2)
            for index in range(8):
                trader.place_order(account_id, "BTC-USD", "buy", "0.001", str(300 + index))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(socket.recv(), 10)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013, "slow consumer")
        await asyncio.sleep(0.2)
        assert connection not in hub.connections
