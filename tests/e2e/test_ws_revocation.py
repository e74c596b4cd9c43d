"""Revoked credentials on an open /ws, against a real server: a deleted API key, a disabled user and an
expired JWT end the socket's private subscriptions and refuse later private operations, while public
channels stay; every request's `id` comes back on its reply; WS and REST give the same codes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
import websockets

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.client import ApiError, Client

ORDER = {"market": "BTC-USD", "side": "buy", "type": "limit", "quantity": "0.001", "price": "100"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("ws-revocation")) as running:
        create_demo_markets(running.admin())
        yield running


def ws_url(server: Server) -> str:
    return server.url.replace("http", "ws") + "/ws"


async def send(socket: Any, message: dict[str, Any]) -> None:
    await socket.send(json.dumps(message))


async def until(
    socket: Any, wanted: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    """The next message that `wanted` accepts (data messages before it are skipped)."""
    end = time.monotonic() + timeout
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), end - time.monotonic()))
        if wanted(message):
            return message


def op(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda message: message.get("op") == name


async def authenticated_socket(server: Server, credentials: dict[str, str]) -> Any:
    socket = await websockets.connect(ws_url(server))
    await send(socket, {"op": "auth", **credentials, "id": "auth-1"})
    reply = await until(socket, op("authenticated"))
    assert reply["id"] == "auth-1"
    await send(socket, {"op": "subscribe", "channels": ["orders", "fills", "book:BTC-USD"], "id": 2})
    subscribed = await until(socket, op("subscribed"))
    assert subscribed == {"op": "subscribed", "channels": ["orders", "fills", "book:BTC-USD"], "id": 2}
    return socket


async def assert_private_access_ended(socket: Any, account_id: str) -> None:
    """The exact messages of the contract, then public channels still work."""
    ended = await until(socket, op("unsubscribed"))
    assert ended == {"op": "unsubscribed", "channels": ["orders", "fills"], "reason": "unauthorized"}
    await send(socket, {"op": "order", "id": 41, "account_id": account_id, **ORDER})
    refused = await until(socket, lambda m: m.get("id") == 41)
    assert (refused["op"], refused["code"], refused["id"]) == ("error", "unauthorized", 41)
    await send(socket, {"op": "subscribe", "channels": ["orders"], "id": 42})
    refused = await until(socket, lambda m: m.get("op") == "error" and m.get("id") == 42)
    assert (refused["code"], refused["channel"]) == ("unauthorized", "orders")
    assert await until(socket, op("subscribed")) == {"op": "subscribed", "channels": [], "id": 42}
    await send(socket, {"op": "subscribe", "channels": ["trades:BTC-USD"], "id": 43})
    assert await until(socket, op("subscribed")) == {
        "op": "subscribed",
        "channels": ["trades:BTC-USD"],
        "id": 43,
    }


async def test_a_deleted_api_key_stops_trading_and_private_channels_on_an_open_socket(server: Server) -> None:
    trader, account_id = server.trader()
    created = trader.create_api_key("bot")
    keyed = Client(server.url, api_key=created["api_key"])
    socket = await authenticated_socket(server, {"api_key": created["api_key"]})
    try:
        await send(socket, {"op": "order", "id": 1, "account_id": account_id, **ORDER})
        placed = await until(socket, lambda m: m.get("id") == 1)
        assert (placed["op"], placed["status"]) == ("order", 201)
        trader.delete_api_key(created["key_id"])
        with pytest.raises(ApiError) as rest:
            keyed.orders(account_id=account_id)
        assert (rest.value.status, rest.value.code) == (401, "unauthorized")
        await assert_private_access_ended(socket, account_id)
        hub = server.app.state.hub
        assert all(c.principal is None for c in hub.connections)
        assert not any(user == trader.me()["user_id"] for user, _ in hub.private)
    finally:
        await socket.close()
    trader.cancel_all(account_id)


async def test_deleting_one_key_leaves_the_users_other_sockets_alone(server: Server) -> None:
    trader, account_id = server.trader()
    doomed = trader.create_api_key("doomed")
    kept = trader.create_api_key("kept")
    on_doomed = await authenticated_socket(server, {"api_key": doomed["api_key"]})
    on_kept = await authenticated_socket(server, {"api_key": kept["api_key"]})
    try:
        trader.delete_api_key(doomed["key_id"])
        await until(on_doomed, op("unsubscribed"))
        await send(on_kept, {"op": "order", "id": 5, "account_id": account_id, **ORDER})
        seen: list[dict[str, Any]] = []
        placed = await until(on_kept, lambda m: seen.append(m) is None and m.get("id") == 5)
        assert (placed["op"], placed["status"]) == ("order", 201)
        updates = [m for m in seen if m.get("channel") == "orders" and m["type"] == "update"]
        if not updates:  # the reply may come before the update
            updates = [await until(on_kept, lambda m: m.get("channel") == "orders" and m["type"] == "update")]
        assert updates[0]["data"]["id"] == placed["data"]["id"]
    finally:
        await on_doomed.close()
        await on_kept.close()
    trader.cancel_all(account_id)


async def test_a_disabled_user_loses_private_access_on_every_socket(server: Server) -> None:
    trader, account_id = server.trader()
    key = trader.create_api_key()
    by_token = await authenticated_socket(server, {"token": str(trader.auth_token)})
    by_key = await authenticated_socket(server, {"api_key": key["api_key"]})
    hub = server.app.state.hub
    try:
        user_id = trader.me()["user_id"]
        # what disabling a user does: the authenticator tells its revocation listeners (on the server's loop)
        hub.expiry.loop.call_soon_threadsafe(server.app.state.gateway.auth.notify_revoked, user_id, None)
        await assert_private_access_ended(by_token, account_id)
        await assert_private_access_ended(by_key, account_id)
    finally:
        await by_token.close()
        await by_key.close()


async def test_an_expired_token_ends_private_subscriptions_when_it_expires(server: Server) -> None:
    trader, account_id = server.trader()
    token = str(trader.auth_token)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    hub = server.app.state.hub
    socket = await authenticated_socket(server, {"token": token})
    try:
        hub.expiry.clock = lambda: expires - 1.0
        hub.expiry.wake()
        await send(socket, {"op": "ping", "id": "still"})
        assert await until(socket, op("pong")) == {"op": "pong", "id": "still"}
        assert any(c.principal is not None for c in hub.connections)
        hub.expiry.clock = lambda: expires + 1.0  # the injected clock passes the token's exp
        hub.expiry.wake()  # the timer looks again; no request from the client is needed
        await assert_private_access_ended(socket, account_id)
        # the same token cannot authenticate again; a fresh one (from the clock's point of view) can
        await send(socket, {"op": "auth", "token": token, "id": "again"})
        refused = await until(socket, lambda m: m.get("id") == "again")
        assert (refused["op"], refused["code"], refused["message"]) == (
            "error",
            "unauthorized",
            "token expired",
        )
    finally:
        hub.expiry.clock = time.time
        await socket.close()


async def test_token_expiry_is_enforced_on_the_next_private_operation(server: Server) -> None:
    trader, account_id = server.trader()
    token = str(trader.auth_token)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    hub = server.app.state.hub
    socket = await authenticated_socket(server, {"token": token})
    try:
        hub.expiry.clock = lambda: expires  # no wake: the timer still sleeps; the operation checks
        await send(socket, {"op": "order", "id": "o-1", "account_id": account_id, **ORDER})
        ended = await until(socket, op("unsubscribed"))
        assert ended == {"op": "unsubscribed", "channels": ["orders", "fills"], "reason": "unauthorized"}
        refused = await until(socket, lambda m: m.get("id") == "o-1")
        assert (refused["op"], refused["code"]) == ("error", "unauthorized")
    finally:
        hub.expiry.clock = time.time
        await socket.close()
    assert trader.orders(account_id=account_id)["items"] == []


async def test_websocket_and_rest_give_the_same_codes(server: Server) -> None:
    trader, account_id = server.trader()
    other, other_account = server.trader()
    theirs = other.place_order(other_account, "BTC-USD", "buy", "0.001", "101")
    mine = trader.place_order(account_id, "BTC-USD", "buy", "0.001", "102")
    trader.cancel_order(mine["id"])
    cases = {
        "unknown": "999999999",
        "not-a-number": "abc",
        "another-users": theirs["id"],
        "already-cancelled": mine["id"],
    }
    rest_codes = {}
    for name, order_id in cases.items():
        with pytest.raises(ApiError) as refused:
            trader.cancel_order(order_id)
        rest_codes[name] = refused.value.code
    assert rest_codes == {
        "unknown": "not_found",
        "not-a-number": "not_found",
        "another-users": "forbidden",
        "already-cancelled": "conflict",
    }
    async with websockets.connect(ws_url(server)) as socket:
        await send(socket, {"op": "auth", "token": str(trader.auth_token)})
        await until(socket, op("authenticated"))
        ws_codes = {}
        for name, order_id in cases.items():
            await send(socket, {"op": "cancel", "id": name, "order_id": order_id})
            reply = await until(socket, lambda m, ref=name: m.get("id") == ref)
            assert reply["op"] == "error"
            ws_codes[name] = reply["code"]
        assert ws_codes == rest_codes
        bad = {**ORDER, "quantity": "0"}
        await send(socket, {"op": "order", "id": "bad", "account_id": account_id, **bad})
        reply = await until(socket, lambda m: m.get("id") == "bad")
        with pytest.raises(ApiError) as refused:
            trader.place_order(account_id, "BTC-USD", "buy", "0", "100")
        assert reply["code"] == refused.value.code
    other.cancel_all(other_account)


async def test_every_request_id_is_echoed_and_a_bad_id_is_refused(server: Server) -> None:
    async with websockets.connect(ws_url(server)) as socket:
        await send(socket, {"op": "ping", "id": 9})
        assert await until(socket, op("pong")) == {"op": "pong", "id": 9}
        await send(socket, {"op": "unsubscribe", "channels": ["book:BTC-USD"], "id": "u"})
        assert await until(socket, op("unsubscribed")) == {"op": "unsubscribed", "channels": [], "id": "u"}
        await send(socket, {"op": "dance", "id": 10})
        reply = await until(socket, op("error"))
        assert (reply["code"], reply["id"]) == ("invalid_request", 10)
        await send(socket, {"op": "auth", "token": "forged", "id": 11})
        reply = await until(socket, op("error"))
        assert (reply["code"], reply["id"]) == ("unauthorized", 11)
        await send(socket, {"op": "ping", "id": {"nested": 1}})
        reply = await until(socket, op("error"))
        assert reply["code"] == "invalid_request" and "id" not in reply
