"""`/alpaca/stream` trade_updates: alpaca-py's TradingStream, and a MessagePack client."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import orjson
import pytest
import websockets
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest
from alpaca.trading.stream import TradingStream

from tests.e2e.alpaca_support import AlpacaTrader, alpaca_trader, seed_book
from tests.e2e.test_api_harness import Server, running_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("alpaca-stream")) as running:
        seed_book(running)
        yield running


def wait_listening(server: Server, trader: AlpacaTrader) -> None:
    """Until the server has the socket listening to the trader's account (the server's own registry)."""
    listeners = server.app.state.alpaca_updates.listeners
    deadline = time.monotonic() + 20
    while trader.account_id not in listeners:
        assert time.monotonic() < deadline, "the stream never listened"
        time.sleep(0.01)


def test_trading_stream_receives_new_fill_and_canceled(server: Server) -> None:
    trader = alpaca_trader(server)
    stream = TradingStream(
        trader.key_id, trader.secret, url_override=server.url.replace("http", "ws") + "/alpaca/stream"
    )
    updates: list[TradeUpdate] = []
    done = threading.Event()

    async def on_update(update: TradeUpdate) -> None:
        updates.append(update)
        if update.event == "canceled":
            done.set()

    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        wait_listening(server, trader)
        client = TradingClient(trader.key_id, trader.secret, url_override=trader.base)
        bought = client.submit_order(
            MarketOrderRequest(symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
        )
        resting = client.submit_order(
            LimitOrderRequest(
                symbol="BTC/USD",
                qty=0.01,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=40000,
            )
        )
        client.cancel_order_by_id(resting.id)
        assert done.wait(20), f"updates so far: {[u.event for u in updates]}"
    finally:
        stream.stop()
        thread.join(10)
    assert [(str(u.event), u.order.id) for u in updates] == [
        ("new", bought.id),
        ("fill", bought.id),
        ("new", resting.id),
        ("canceled", resting.id),
    ]
    fill = updates[1]
    assert (fill.price, fill.qty, fill.position_qty) == (50000.0, 0.01, 0.01)
    assert fill.execution_id is not None
    assert fill.order.status.value == "filled" and updates[0].order.status.value == "new"
    native_fill = trader.client.trades(account_id=trader.account_id)["items"][0]
    assert (str(fill.price), str(fill.qty)) == (native_fill["price"] + ".0", native_fill["quantity"])


async def _messagepack_session(url: str, trader: AlpacaTrader, server: Server) -> list[dict[str, Any]]:
    async with websockets.connect(url) as socket:
        await socket.send(
            msgpack.packb(
                {"action": "authenticate", "data": {"key_id": trader.key_id, "secret_key": trader.secret}}
            )
        )
        authorized = msgpack.unpackb(await socket.recv())
        await socket.send(msgpack.packb({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        listening = msgpack.unpackb(await socket.recv())
        await asyncio.to_thread(
            TradingClient(trader.key_id, trader.secret, url_override=trader.base).submit_order,
            MarketOrderRequest(
                symbol="BTC/USD", qty=0.002, side=OrderSide.BUY, time_in_force=TimeInForce.GTC
            ),
        )
        new = msgpack.unpackb(await asyncio.wait_for(socket.recv(), 20))
        fill = msgpack.unpackb(await asyncio.wait_for(socket.recv(), 20))
        return [authorized, listening, new, fill]


def test_messagepack_frames_get_messagepack_answers(server: Server) -> None:
    trader = alpaca_trader(server)
    url = server.url.replace("http", "ws") + "/alpaca/stream"
    authorized, listening, new, fill = asyncio.run(_messagepack_session(url, trader, server))
    assert authorized == {
        "stream": "authorization",
        "data": {"action": "authenticate", "status": "authorized"},
    }
    assert listening == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    assert (new["stream"], new["data"]["event"]) == ("trade_updates", "new")
    assert fill["data"]["event"] == "fill" and fill["data"]["qty"] == "0.002"


async def _refused(url: str) -> tuple[dict[str, Any], int | None]:
    async with websockets.connect(url) as socket:
        await socket.send('{"action": "authenticate", "data": {"key_id": "nope", "secret_key": "th_nope"}}')
        reply = await socket.recv()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
        return orjson.loads(reply), closed.value.rcvd.code if closed.value.rcvd else None


def test_wrong_credentials_are_unauthorized_and_closed(server: Server) -> None:
    reply, code = asyncio.run(_refused(server.url.replace("http", "ws") + "/alpaca/stream"))
    assert reply == {"stream": "authorization", "data": {"action": "authenticate", "status": "unauthorized"}}
    assert code == 1008


async def _revoked(url: str, trader: AlpacaTrader, server: Server) -> int | None:
    async with websockets.connect(url) as socket:
        await socket.send(
            orjson.dumps(
                {"action": "authenticate", "data": {"key_id": trader.key_id, "secret_key": trader.secret}}
            )
        )
        await socket.recv()
        await socket.send(orjson.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        await socket.recv()
        await asyncio.to_thread(trader.client.delete_api_key, trader.key_id)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 20)
        return closed.value.rcvd.code if closed.value.rcvd else None


def test_deleting_the_key_closes_its_stream(server: Server) -> None:
    trader = alpaca_trader(server)
    assert asyncio.run(_revoked(server.url.replace("http", "ws") + "/alpaca/stream", trader, server)) == 1008


async def _replaced_and_rejected(url: str, trader: AlpacaTrader) -> list[dict[str, Any]]:
    async with websockets.connect(url) as socket:
        auth = {"action": "authenticate", "data": {"key_id": trader.key_id, "secret_key": trader.secret}}
        await socket.send(orjson.dumps(auth).decode())  # a text frame: the answers are JSON
        await socket.recv()
        await socket.send(orjson.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}).decode())
        await socket.recv()
        client = TradingClient(trader.key_id, trader.secret, url_override=trader.base)
        resting = await asyncio.to_thread(
            client.submit_order,
            LimitOrderRequest(
                symbol="BTC/USD",
                qty=0.01,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=40000,
            ),
        )
        await asyncio.to_thread(
            client.replace_order_by_id, resting.id, ReplaceOrderRequest(limit_price=41000)
        )
        with pytest.raises(APIError):  # far more than the account holds
            await asyncio.to_thread(
                client.submit_order,
                MarketOrderRequest(
                    symbol="BTC/USD", qty=50, side=OrderSide.BUY, time_in_force=TimeInForce.GTC
                ),
            )
        return [orjson.loads(await asyncio.wait_for(socket.recv(), 20)) for _ in range(3)]


def test_replaced_and_rejected_updates(server: Server) -> None:
    trader = alpaca_trader(server)
    new, replaced, rejected = asyncio.run(
        _replaced_and_rejected(server.url.replace("http", "ws") + "/alpaca/stream", trader)
    )
    assert [update["data"]["event"] for update in (new, replaced, rejected)] == [
        "new",
        "replaced",
        "rejected",
    ]
    assert replaced["data"]["order"]["id"] == new["data"]["order"]["id"]
    assert replaced["data"]["order"]["limit_price"] == "41000"
    assert rejected["data"]["order"]["status"] == "rejected"
    assert rejected["data"]["order"]["symbol"] == "BTC/USD"
    assert TradeUpdate(**rejected["data"]).order.id is not None  # alpaca-py reads it: a UUID
