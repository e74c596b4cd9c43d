"""API keys against a real server: the listing (never a secret), scopes (`read` keys cannot trade, on
any route or transport), expiry (also of a cached key), keys bound to one account, `last_used_at`, and
refused inputs that create nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import update
from sqlalchemy.orm import Session

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.api.auth import Authenticator
from tradehall.client import ApiError, Client
from tradehall.store import repositories as repo
from tradehall.store.models import ApiKey

LIST_FIELDS = {"key_id", "label", "created_at", "last_used_at", "expires_at", "scopes", "account_id"}
BUY = {"market": "BTC-USD", "side": "buy", "type": "limit", "quantity": "0.001", "price": "100"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("api-keys")) as running:
        create_demo_markets(running.admin())
        yield running


def error_of(call: object, *args: object, **kwargs: object) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value


def in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")


def authenticator(server: Server) -> Authenticator:
    auth: Authenticator = server.app.state.gateway.auth
    return auth


def stored_key(server: Server, key_id: str) -> ApiKey:
    row = server.app.state.service.store.call_sync(repo.get_api_key, key_id)
    assert isinstance(row, ApiKey)
    return row


def ws_url(server: Server) -> str:
    return server.url.replace("http", "ws") + "/ws"


async def ws_reply(socket: Any, message: dict[str, Any]) -> dict[str, Any]:
    """Sends `message` and returns the reply that echoes its id (other messages are skipped)."""
    await socket.send(json.dumps(message))
    end = time.monotonic() + 10
    while True:
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), end - time.monotonic()))
        if reply.get("id") == message["id"]:
            return reply


# ---- creating and listing -------------------------------------------------------------------------


def test_a_new_key_defaults_to_read_and_trade_and_the_listing_never_shows_a_secret(server: Server) -> None:
    client, account_id = server.trader()
    created = client.create_api_key("bot")
    assert set(created) == LIST_FIELDS - {"last_used_at"} | {"api_key"}
    assert created["api_key"].startswith("th_")
    assert (created["label"], created["scopes"], created["expires_at"], created["account_id"]) == (
        "bot",
        ["read", "trade"],
        None,
        None,
    )
    second = client.create_api_key("reader", scopes=["read"], expires_at=in_an_hour(), account_id=account_id)
    assert second["scopes"] == ["read"] and second["account_id"] == account_id
    assert second["expires_at"] is not None

    listing = httpx.get(server.url + "/auth/api-keys", headers=client._auth.headers())
    assert listing.status_code == 200
    body = listing.json()
    assert body["next_cursor"] is None
    assert [item["key_id"] for item in body["items"]] == [second["key_id"], created["key_id"]]  # newest first
    for item in body["items"]:
        assert set(item) == LIST_FIELDS
    assert created["api_key"] not in listing.text and second["api_key"] not in listing.text
    assert stored_key(server, created["key_id"]).key_hash not in listing.text
    assert body["items"][1] == {
        "key_id": created["key_id"],
        "label": "bot",
        "created_at": created["created_at"],
        "last_used_at": None,
        "expires_at": None,
        "scopes": ["read", "trade"],
        "account_id": None,
    }
    assert body["items"][0]["expires_at"] == second["expires_at"]

    first_page = client.api_keys(limit=1)
    assert [item["key_id"] for item in first_page["items"]] == [second["key_id"]]
    assert first_page["next_cursor"] == second["key_id"]
    rest = client.api_keys(limit=1, cursor=first_page["next_cursor"])
    assert ([item["key_id"] for item in rest["items"]], rest["next_cursor"]) == ([created["key_id"]], None)


def test_the_listing_shows_only_the_callers_keys(server: Server) -> None:
    owner, _ = server.trader()
    other, _ = server.trader()
    owner.create_api_key("mine")
    assert other.api_keys()["items"] == []


def test_a_default_key_trades_and_jwt_tokens_have_every_scope(server: Server) -> None:
    client, account_id = server.trader()
    keyed = Client(server.url, api_key=client.create_api_key()["api_key"])
    order = keyed.place_order(account_id, **BUY)
    assert order["status"] == "open"
    assert keyed.cancel_order(order["id"])["status"] == "cancelled"
    assert client.place_order(account_id, **BUY)["status"] == "open"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"scopes": ["admin"]}, "scopes"),
        ({"scopes": ["read", "withdraw"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["trade"]}, "read"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "future"),
        ({"expires_at": "2099-01-01T00:00:00"}, "time zone"),
        ({"expires_at": "next tuesday"}, "RFC 3339"),
        ({"label": "x" * 129}, "label"),
        ({"secret": "mine"}, "secret"),
    ],
)
def test_invalid_key_requests_are_400_and_create_nothing(
    server: Server, body: dict[str, Any], problem: str
) -> None:
    client, _ = server.trader()
    answer = httpx.post(server.url + "/auth/api-keys", json=body, headers=client._auth.headers())
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_request"
    assert problem in answer.json()["detail"]
    assert client.api_keys()["items"] == []


def test_a_key_binds_only_to_an_account_of_the_caller(server: Server) -> None:
    client, _ = server.trader()
    _, someone_elses = server.trader()
    error = error_of(client.create_api_key, account_id=someone_elses)
    assert (error.status, error.code) == (403, "forbidden")
    error = error_of(client.create_api_key, account_id="acc_does_not_exist")
    assert (error.status, error.code) == (404, "not_found")
    assert client.api_keys()["items"] == []


def test_a_key_cannot_create_a_key_with_more_power_than_its_own(server: Server) -> None:
    client, account_id = server.trader()
    reader = Client(server.url, api_key=client.create_api_key(scopes=["read"])["api_key"])
    error = error_of(reader.create_api_key, "escalate")
    assert (error.status, error.code) == (403, "forbidden")
    assert "'trade'" in error.detail
    assert reader.create_api_key("another reader", scopes=["read"])["scopes"] == ["read"]
    bound = Client(server.url, api_key=client.create_api_key(account_id=account_id)["api_key"])
    error = error_of(bound.create_api_key, "unbound")
    assert (error.status, error.code) == (403, "forbidden")
    assert bound.create_api_key("same account", account_id=account_id)["account_id"] == account_id
    assert len(client.api_keys()["items"]) == 4


# ---- scopes ---------------------------------------------------------------------------------------


def test_a_read_key_gets_403_on_every_trading_route_and_reads_everything(server: Server) -> None:
    client, account_id = server.trader()
    resting = client.place_order(account_id, **BUY)
    reader = Client(server.url, api_key=client.create_api_key("reader", scopes=["read"])["api_key"])
    attempts: list[tuple[str, Any]] = [
        ("POST /orders", lambda: reader.place_order(account_id, **BUY)),
        ("DELETE /orders/{id}", lambda: reader.cancel_order(resting["id"])),
        ("PATCH /orders/{id}", lambda: reader.amend_order(resting["id"], price="101")),
        ("DELETE /orders", lambda: reader.cancel_all(account_id)),
        ("POST /positions/{m}/close", lambda: reader.close_position("BTC-PERP", account_id)),
        ("POST /accounts", lambda: reader.create_account("USD", initial_balance="100")),
        ("POST /accounts/{id}/leverage", lambda: reader.set_leverage(account_id, "BTC-PERP", "2")),
    ]
    for route, attempt in attempts:
        error = error_of(attempt)
        assert (error.status, error.code) == (403, "forbidden"), route
        assert error.detail == "this API key lacks the 'trade' scope (it has: read)", route
        assert error.body["required_scope"] == "trade", route
    # nothing changed: the order rests as it was, no account was opened
    assert client.order(resting["id"])["status"] == "open"
    assert client.order(resting["id"])["price"] == "100"
    assert [a["id"] for a in client.accounts()["items"]] == [account_id]
    # reads stay allowed
    assert reader.account(account_id)["id"] == account_id
    assert [o["id"] for o in reader.orders(account_id)["items"]] == [resting["id"]]
    assert reader.order(resting["id"])["id"] == resting["id"]
    assert reader.positions(account_id)["items"] == []
    assert reader.trades(account_id)["items"] == []
    assert [k["key_id"] for k in reader.api_keys()["items"]] != []


def test_the_fast_path_refuses_a_read_key_before_reading_the_body(server: Server) -> None:
    client, _ = server.trader()
    key = client.create_api_key(scopes=["read"])["api_key"]
    answer = httpx.post(server.url + "/orders", json={"not": "an order"}, headers={"X-API-Key": key})
    assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")
    answer = httpx.delete(server.url + "/orders/123456", headers={"X-API-Key": key})
    assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")


async def test_a_read_key_cannot_order_or_cancel_over_the_websocket(server: Server) -> None:
    client, account_id = server.trader()
    resting = client.place_order(account_id, **BUY)
    key = client.create_api_key(scopes=["read"])["api_key"]
    async with websockets.connect(ws_url(server)) as socket:
        assert (await ws_reply(socket, {"op": "auth", "api_key": key, "id": 1}))["op"] == "authenticated"
        refused = await ws_reply(socket, {"op": "order", "id": 2, "account_id": account_id, **BUY})
        assert (refused["op"], refused["code"], refused["request"]) == ("error", "forbidden", "order")
        assert "'trade' scope" in refused["message"]
        refused = await ws_reply(socket, {"op": "cancel", "id": 3, "order_id": resting["id"]})
        assert (refused["op"], refused["code"], refused["request"]) == ("error", "forbidden", "cancel")
        subscribed = await ws_reply(socket, {"op": "subscribe", "channels": ["orders"], "id": 4})
        assert subscribed["op"] == "subscribed" and subscribed["channels"] == ["orders"]
    assert client.order(resting["id"])["status"] == "open"
    assert len(client.orders(account_id)["items"]) == 1


# ---- expiry ---------------------------------------------------------------------------------------


async def test_a_key_whose_expiry_passed_is_401_on_rest_and_websocket_auth(server: Server) -> None:
    client, account_id = server.trader()
    created = client.create_api_key("short-lived", expires_at=in_an_hour())

    def expire(session: Session) -> None:
        past = datetime.now(UTC) - timedelta(days=1)
        session.execute(update(ApiKey).where(ApiKey.id == created["key_id"]).values(expires_at=past))

    server.app.state.service.store.call_sync(expire)
    keyed = Client(server.url, api_key=created["api_key"])
    error = error_of(keyed.account, account_id)
    assert (error.status, error.code, error.detail) == (401, "unauthorized", "API key expired")
    error = error_of(keyed.place_order, account_id, **BUY)
    assert (error.status, error.code) == (401, "unauthorized")
    async with websockets.connect(ws_url(server)) as socket:
        refused = await ws_reply(socket, {"op": "auth", "api_key": created["api_key"], "id": 1})
        assert (refused["op"], refused["code"]) == ("error", "unauthorized")


async def test_a_cached_key_stops_working_when_its_expiry_passes(server: Server) -> None:
    client, account_id = server.trader()
    created = client.create_api_key("cached", expires_at=in_an_hour())
    keyed = Client(server.url, api_key=created["api_key"])
    assert keyed.account(account_id)["id"] == account_id  # now in the authenticator's cache
    auth = authenticator(server)
    real_clock = auth.clock
    auth.clock = lambda: real_clock() + 7200  # two hours on: past the key's expiry
    try:
        error = error_of(keyed.account, account_id)
        assert (error.status, error.code, error.detail) == (401, "unauthorized", "API key expired")
        error = error_of(keyed.place_order, account_id, **BUY)  # the fast path
        assert (error.status, error.code) == (401, "unauthorized")
        async with websockets.connect(ws_url(server)) as socket:
            refused = await ws_reply(socket, {"op": "auth", "api_key": created["api_key"], "id": 1})
            assert (refused["op"], refused["code"]) == ("error", "unauthorized")
        assert client.account(account_id)["id"] == account_id  # the token is no key: it still works
    finally:
        auth.clock = real_clock
    assert keyed.account(account_id)["id"] == account_id


# ---- bound keys -----------------------------------------------------------------------------------


def test_a_bound_key_acts_on_its_account_only(server: Server) -> None:
    client, bound_to = server.trader()
    other = client.create_account("USD", initial_balance="1000")["id"]
    on_other = client.place_order(other, **BUY)
    keyed = Client(server.url, api_key=client.create_api_key(account_id=bound_to)["api_key"])

    assert keyed.place_order(bound_to, **BUY)["status"] == "open"
    forbidden_calls: list[tuple[str, Any]] = [
        ("POST /orders", lambda: keyed.place_order(other, **BUY)),
        ("DELETE /orders/{id}", lambda: keyed.cancel_order(on_other["id"])),
        ("PATCH /orders/{id}", lambda: keyed.amend_order(on_other["id"], price="99")),
        ("GET /orders/{id}", lambda: keyed.order(on_other["id"])),
        ("DELETE /orders", lambda: keyed.cancel_all(other)),
        ("GET /accounts/{id}", lambda: keyed.account(other)),
        ("GET /orders?account_id", lambda: keyed.orders(other)),
        ("GET /positions?account_id", lambda: keyed.positions(other)),
        ("GET /trades?account_id", lambda: keyed.trades(other)),
        ("POST /positions/{m}/close", lambda: keyed.close_position("BTC-PERP", other)),
        ("POST /accounts/{id}/leverage", lambda: keyed.set_leverage(other, "BTC-PERP", "2")),
        ("POST /accounts", lambda: keyed.create_account("USD", initial_balance="10")),
    ]
    for route, call in forbidden_calls:
        error = error_of(call)
        assert (error.status, error.code) == (403, "forbidden"), route
    assert client.order(on_other["id"])["status"] == "open"
    # listings without an account show the bound one only
    assert [a["id"] for a in keyed.accounts()["items"]] == [bound_to]
    assert {o["account_id"] for o in keyed.orders()["items"]} == {bound_to}
    assert keyed.cancel_all(bound_to)["items"][0]["status"] == "cancelled"


# ---- last use -------------------------------------------------------------------------------------


def test_last_used_at_is_set_after_use_and_stored(server: Server) -> None:
    client, account_id = server.trader()
    created = client.create_api_key("used")
    (item,) = client.api_keys()["items"]
    assert item["last_used_at"] is None
    before = datetime.now(UTC) - timedelta(seconds=1)
    Client(server.url, api_key=created["api_key"]).account(account_id)
    (item,) = client.api_keys()["items"]
    assert item["last_used_at"] is not None
    used = datetime.fromisoformat(item["last_used_at"])
    assert before <= used <= datetime.now(UTC)
    # stored by the background write (bounded wait for it, no sleep-and-hope)
    deadline = time.monotonic() + 10
    while stored_key(server, created["key_id"]).last_used_at is None:
        assert time.monotonic() < deadline, "last_used_at was not stored"
        time.sleep(0.02)
    assert abs((stored_key(server, created["key_id"]).last_used_at or before) - used) < timedelta(seconds=1)


async def test_an_open_socket_loses_its_private_side_when_its_key_expires(server: Server) -> None:
    client, account_id = server.trader()
    created = client.create_api_key("socket", expires_at=in_an_hour())
    expires = datetime.fromisoformat(created["expires_at"]).timestamp()
    hub = server.app.state.hub
    async with websockets.connect(ws_url(server)) as socket:
        try:
            assert (await ws_reply(socket, {"op": "auth", "api_key": created["api_key"], "id": 1}))[
                "op"
            ] == "authenticated"
            subscribed = await ws_reply(socket, {"op": "subscribe", "channels": ["orders"], "id": 2})
            assert subscribed["channels"] == ["orders"]
            hub.expiry.clock = lambda: expires + 1.0  # the hub's clock passes the key's expiry
            hub.expiry.wake()
            end = time.monotonic() + 10
            while True:
                message = json.loads(await asyncio.wait_for(socket.recv(), end - time.monotonic()))
                if message.get("op") == "unsubscribed":
                    break
            assert message == {"op": "unsubscribed", "channels": ["orders"], "reason": "unauthorized"}
            refused = await ws_reply(socket, {"op": "order", "id": 3, "account_id": account_id, **BUY})
            assert (refused["op"], refused["code"]) == ("error", "unauthorized")
        finally:
            hub.expiry.clock = time.time
    assert client.orders(account_id)["items"] == []


def test_a_read_key_can_neither_delete_keys_nor_make_admin_changes(server: Server) -> None:
    client, _ = server.trader()
    other = client.create_api_key("other")
    reader = Client(server.url, api_key=client.create_api_key("reader", scopes=["read"])["api_key"])
    error = error_of(reader.delete_api_key, other["key_id"])
    assert (error.status, error.code, error.body["required_scope"]) == (403, "forbidden", "trade")
    assert other["key_id"] in [k["key_id"] for k in client.api_keys()["items"]]

    admin = server.admin()
    admin_key = admin.create_api_key("admin-reader", scopes=["read"])["api_key"]
    admin_reader = Client(server.url, api_key=admin_key)
    error = error_of(admin_reader.halt_market, "BTC-USD")
    assert (error.status, error.code, error.body["required_scope"]) == (403, "forbidden", "trade")
    assert Client(server.url).market("BTC-USD")["status"] == "open"
    # an admin's read key may still look: past the scope check to the route's own answer (no feeds here)
    assert error_of(admin_reader.held_settlements).code == "not_found"
