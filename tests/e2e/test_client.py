"""The Python SDK against a real server: sync and async clients, errors, the WebSocket stream."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.test_api_harness import ADMIN_PASSWORD, Server, create_demo_markets, running_server
from tradehall.client import ApiError, AsyncClient, Client, ws_url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("client")) as running:
        create_demo_markets(running.admin())
        yield running


def test_sync_client_covers_the_order_lifecycle(server: Server) -> None:
    with Client(server.url) as anonymous:
        anonymous.register("sdk_sync", "pw-sync")
    with Client(server.url).login("sdk_sync", "pw-sync") as client:
        account = client.create_account("USD", initial_balance="5000")
        order = client.place_order(account["id"], "BTC-PERP", "long", "0.01", "40000", client_order_id="c-1")
        assert (order["side"], order["status"], order["client_order_id"]) == ("long", "open", "c-1")
        assert [o["id"] for o in client.orders(account["id"])["items"]] == [order["id"]]
        amended = client.amend_order(order["id"], price="39999.5")
        assert amended["price"] == "39999.5"
        cancelled = client.cancel_order(order["id"])
        assert cancelled["status"] == "cancelled"
        closed = client.orders(account["id"], status="closed")["items"]
        assert [(o["id"], o["status"], o["price"]) for o in closed] == [(order["id"], "cancelled", "39999.5")]


def test_errors_carry_status_code_and_correlation_id(server: Server) -> None:
    client = Client(server.url).login("admin", ADMIN_PASSWORD)
    with pytest.raises(ApiError) as refused:
        client.market("NOPE")
    assert (refused.value.status, refused.value.code) == (404, "not_found")
    assert len(refused.value.correlation_id) == 32


async def test_async_client_and_stream(server: Server) -> None:
    async with AsyncClient(server.url) as anonymous:
        await anonymous.register("sdk_async", "pw-async")
    async with AsyncClient(server.url) as client:
        await client.login("sdk_async", "pw-async")
        account = await client.create_account("USD", initial_balance="1000")
        markets = await client.markets()
        assert "BTC-PERP" in {m["symbol"] for m in markets["items"]}
        async with client.stream() as stream:
            assert (await stream.ping()) == {"op": "pong"}
            await stream.subscribe(["orders"])
            order = await stream.place_order(
                account_id=account["id"],
                market="BTC-PERP",
                side="buy",
                type="limit",
                quantity="0.001",
                price="100",
            )
            assert order["status"] == "open"
        assert (await client.order(order["id"]))["id"] == order["id"]
        positions = await client.positions(account["id"])
        assert positions == {"items": [], "next_cursor": None}


def test_ws_url_follows_the_scheme() -> None:
    assert ws_url("http://h:1") == "ws://h:1/ws"
    assert ws_url("https://h") == "wss://h/ws"


def test_sync_client_moves_a_stop_and_pages_candles(server: Server) -> None:
    server.admin().create_market(
        symbol="SDK-PERP",
        kind="perp",
        base="SDK",
        quote="USD",
        tick_size="0.5",
        lot_size="0.001",
        max_leverage="10",
    )
    client, account = server.trader()
    maker, maker_account = server.trader()
    maker.place_order(maker_account, "SDK-PERP", "sell", "0.002", "30000")
    client.place_order(account, "SDK-PERP", "buy", "0.001")
    client.place_order(account, "SDK-PERP", "buy", "0.001")
    stop = client.place_order(account, "SDK-PERP", "sell", "0.001", type="stop", stop_price="20000")
    moved = client.amend_order(stop["id"], stop_price="21000")
    assert (moved["status"], moved["stop_price"]) == ("pending_trigger", "21000")
    page = client.candles("SDK-PERP", "1m", limit=1)
    assert [(c["close"], c["volume"]) for c in page["items"]] == [("30000", "0.002")]


def _has_route(server: Server, method: str, path: str) -> bool:
    """Whether the server's OpenAPI document lists the operation (an endpoint of another item)."""
    paths = httpx.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    return method.lower() in paths.get(path, {})


def test_ledger_and_api_keys_methods(server: Server) -> None:
    if not (
        _has_route(server, "GET", "/accounts/{account_id}/ledger")
        and _has_route(server, "GET", "/auth/api-keys")
    ):
        pytest.skip("GET /accounts/{id}/ledger or GET /auth/api-keys is not in this server yet")
    client, account = server.trader("1000")
    entries = client.ledger(account, limit=10)["items"]
    assert [(e["type"], e["amount"], e["balance_after"]) for e in entries] == [
        ("deposit", "1000.00", "1000.00")
    ]
    created = client.create_api_key("sdk")
    assert [k["key_id"] for k in client.api_keys()["items"]] == [created["key_id"]]
