"""The WebSocket `batch`: many orders and cancels in one frame, one reply whose `replies` answer each
request as it would have been answered alone (same codes, own ids), in order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.api.ws.protocol import MAX_BATCH
from tradehall.client import AsyncClient, Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("ws-batch")) as running:
        create_demo_markets(running.admin())
        yield running


def order(account_id: str, price: str, **extra: Any) -> dict[str, Any]:
    return {
        "op": "order",
        "account_id": account_id,
        "market": "BTC-USD",
        "side": "buy",
        "type": "limit",
        "quantity": "0.001",
        "price": price,
        **extra,
    }


async def test_a_batch_answers_each_request_in_order_with_its_own_id(server: Server) -> None:
    trader, account_id = server.trader()
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        replies = await stream.batch(
            [
                order(account_id, "100", id="a"),
                order(account_id, "101"),
                order(account_id, "0", id=7),  # a price of 0: invalid_order, as on REST
                {"op": "cancel", "order_id": "999999999", "id": "gone"},
                {"op": "cancel", "id": "no-order-id"},
                {"op": "ping", "id": "p"},
                "not an object",
                {"op": "order", "id": True},
            ]
        )
    assert [reply["op"] for reply in replies] == [
        "order",
        "order",
        "error",
        "error",
        "error",
        "error",
        "error",
        "error",
    ]
    first, second, bad_price, unknown, no_id, ping, not_object, bad_ref = replies
    assert (first["id"], first["status"], first["data"]["price"]) == ("a", 201, "100")
    assert "id" not in second and (second["status"], second["data"]["price"]) == (201, "101")
    assert (bad_price["id"], bad_price["code"], bad_price["request"]) == (7, "invalid_order", "order")
    assert (unknown["id"], unknown["code"], unknown["request"]) == ("gone", "not_found", "cancel")
    assert (no_id["id"], no_id["code"], no_id["message"]) == (
        "no-order-id",
        "invalid_request",
        "order_id is required",
    )
    assert (ping["id"], ping["code"]) == ("p", "invalid_request")
    assert ping["message"] == "a batch holds only order and cancel requests"
    assert not_object == {"op": "error", "code": "invalid_request", "message": "expected a JSON object"}
    assert bad_ref["code"] == "invalid_request" and "id" not in bad_ref
    # the placed orders are there, as REST shows them
    assert trader.order(first["data"]["id"])["status"] == "open"
    assert trader.order(second["data"]["id"])["price"] == "101"


async def test_a_batch_of_cancels_cancels_what_an_earlier_batch_placed(server: Server) -> None:
    trader, account_id = server.trader()
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        placed = await stream.batch([order(account_id, str(200 + index)) for index in range(5)])
        ids = [reply["data"]["id"] for reply in placed]
        cancelled = await stream.batch([{"op": "cancel", "order_id": order_id} for order_id in ids])
        again = await stream.batch([{"op": "cancel", "order_id": ids[0]}])
    assert [(reply["op"], reply["status"], reply["data"]["status"]) for reply in cancelled] == [
        ("cancel", 200, "cancelled")
    ] * 5
    assert [reply["data"]["id"] for reply in cancelled] == ids
    assert (again[0]["code"], again[0]["request"]) == ("conflict", "cancel")
    assert trader.orders(account_id)["items"] == []


async def test_a_repeated_client_order_id_in_one_batch_is_the_same_order(server: Server) -> None:
    trader, account_id = server.trader()
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        replies = await stream.batch(
            [
                order(account_id, "300", client_order_id="twice"),
                order(account_id, "300", client_order_id="twice"),
                order(account_id, "301", client_order_id="twice"),  # other parameters: conflict
            ]
        )
    first, repeat, different = replies
    assert (first["status"], repeat["status"]) == (201, 200)
    assert repeat["data"]["id"] == first["data"]["id"]
    assert (different["code"], different["request"]) == ("conflict", "order")
    assert len(trader.orders(account_id)["items"]) == 1


async def test_a_batch_that_is_no_list_or_too_long_is_refused_whole(server: Server) -> None:
    trader, account_id = server.trader()
    async with websockets.connect(server.url.replace("http", "ws") + "/ws") as socket:
        await socket.send(json.dumps({"op": "auth", "token": trader.auth_token}))
        assert json.loads(await socket.recv())["op"] == "authenticated"
        too_many = [order(account_id, "1")] * (MAX_BATCH + 1)
        for requests in ([], "orders", too_many):
            await socket.send(json.dumps({"op": "batch", "id": 5, "requests": requests}))
            reply = json.loads(await socket.recv())
            assert (reply["op"], reply["code"], reply["id"]) == ("error", "invalid_request", 5)
            assert (
                reply["message"] == f"requests must be a list of 1 to {MAX_BATCH} order and cancel requests"
            )
    assert trader.orders(account_id)["items"] == []


async def test_every_member_needs_auth_and_the_trade_scope(server: Server) -> None:
    trader, account_id = server.trader()
    async with AsyncClient(server.url).stream() as anonymous:
        replies = await anonymous.batch([order(account_id, "1"), {"op": "cancel", "order_id": "1"}])
    assert [(reply["code"], reply["request"]) for reply in replies] == [
        ("unauthorized", "order"),
        ("unauthorized", "cancel"),
    ]
    reader_key = trader.create_api_key("reader", scopes=["read"])["api_key"]
    async with AsyncClient(server.url, api_key=reader_key).stream() as reader:
        replies = await reader.batch([order(account_id, "1")])
    assert (replies[0]["code"], replies[0]["request"]) == ("forbidden", "order")
    assert trader.orders(account_id)["items"] == []


async def test_each_member_takes_a_token_of_the_rate_limit(tmp_path: Path) -> None:
    with running_server(tmp_path, rate_limit_per_second=0.001, rate_limit_burst=30) as limited:
        create_demo_markets(limited.admin())
        anonymous = Client(limited.url)
        anonymous.register("batcher", "pw-batcher-1")
        trader = Client(limited.url).login("batcher", "pw-batcher-1")
        account_id = trader.create_account("USD", initial_balance="1000")["id"]
        async with AsyncClient(limited.url, token=trader.auth_token).stream() as stream:
            replies = await stream.batch([order(account_id, str(10 + index)) for index in range(40)])
        refused = [reply for reply in replies if reply["op"] == "error"]
        assert refused and all(reply["code"] == "rate_limited" for reply in refused)
        placed = [reply for reply in replies if reply["op"] == "order"]
        # the bucket held its burst less what the account's creation took: no member got past it
        assert 0 < len(placed) < 30
        assert replies[: len(placed)] == placed  # tokens are taken in the batch's order
