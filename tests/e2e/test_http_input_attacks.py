"""Hostile HTTP input against a real server: ids, body size, media type, duplicate keys, currencies.

Each refusal is checked for its exact status and `code`, for the request's correlation id in the
problem body, and for having changed nothing (no order cancelled or created, no account created).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.client import Client

LIMIT = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("http-input"), max_body_bytes=LIMIT) as running:
        create_demo_markets(running.admin())
        yield running


def auth(client: Client, request_id: str | None = None, **extra: str) -> dict[str, str]:
    headers = {**client._auth.headers(), **extra}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return headers


def assert_problem(response: httpx.Response, status: int, code: str, request_id: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"], body["correlation_id"]) == (status, code, request_id)
    assert response.headers["x-request-id"] == request_id
    return body


def rid() -> str:
    return "req-" + uuid.uuid4().hex[:12]


def order_body(account_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "market": "BTC-USD",
        "side": "buy",
        "type": "limit",
        "quantity": "0.01",
        "price": "1000",
    } | extra


def place(client: Client, account_id: str) -> str:
    order_id: str = client.place_order(account_id, "BTC-USD", "buy", "0.01", "1000")["id"]
    return order_id


ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))
FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))


# ---- ids ------------------------------------------------------------------------------------------


def test_superscript_digit_order_id_is_404_on_every_order_route(server: Server) -> None:
    client, _ = server.trader()
    for method in ("DELETE", "GET", "PATCH"):  # DELETE goes through the fast path, the others FastAPI
        request_id = rid()
        kwargs: dict[str, Any] = {"json": {"price": "999"}} if method == "PATCH" else {}
        response = httpx.request(
            method, server.url + "/orders/" + quote("¹"), headers=auth(client, request_id), **kwargs
        )
        assert_problem(response, 404, "not_found", request_id)


def test_other_spellings_of_an_open_orders_id_name_no_order(server: Server) -> None:
    client, account_id = server.trader()
    order_id = place(client, account_id)
    spellings = [
        order_id.translate(ARABIC_INDIC),  # /orders/١٢ was order 12
        order_id.translate(FULLWIDTH),
        "0" + order_id,
        "+" + order_id,
        " " + order_id,
        order_id[:1] + "_" + order_id[1:] if len(order_id) > 1 else order_id + "_0",
        "9" * 19,
    ]
    for spelling in spellings:
        for method in ("DELETE", "GET"):
            request_id = rid()
            response = httpx.request(
                method, server.url + "/orders/" + quote(spelling), headers=auth(client, request_id)
            )
            assert_problem(response, 404, "not_found", request_id)
    assert client.order(order_id)["status"] == "open"
    assert [o["id"] for o in client.orders(account_id)["items"]] == [order_id]


def test_open_orders_cursor_in_other_digits_is_400(server: Server) -> None:
    client, account_id = server.trader()
    place(client, account_id)
    for cursor in ("¹", "١٢", "+5", "05"):
        request_id = rid()
        response = httpx.get(
            server.url + "/orders",
            params={"account_id": account_id, "status": "open", "cursor": cursor},
            headers=auth(client, request_id),
        )
        assert_problem(response, 400, "invalid_request", request_id)


# ---- body size ------------------------------------------------------------------------------------


def chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_chunked_order_body_over_the_limit_is_413_and_places_nothing(server: Server) -> None:
    client, account_id = server.trader()
    padded = httpx.Request("POST", "/", json=order_body(account_id, client_order_id="x" * 64)).content
    big = padded[:-1] + b', "pad": "' + b"p" * LIMIT + b'"}'
    request_id = rid()
    response = httpx.post(
        server.url + "/orders",
        content=chunks(big),
        headers=auth(client, request_id, **{"Content-Type": "application/json"}),
    )
    body = assert_problem(response, 413, "payload_too_large", request_id)
    assert str(LIMIT) in body["detail"]
    assert client.orders(account_id, status="all")["items"] == []
    assert Client(server.url).health()["status"] == "ok"


def test_content_length_over_the_limit_is_413_on_any_route(server: Server) -> None:
    client, account_id = server.trader()
    before = len(client.accounts()["items"])
    big = b'{"currency": "USD", "pad": "' + b"p" * LIMIT + b'"}'
    for path, headers in (
        ("/orders", auth(client)),
        ("/accounts", auth(client)),
        ("/auth/token", {}),  # before any credentials are looked at
    ):
        request_id = rid()
        response = httpx.post(
            server.url + path,
            content=big,
            headers={**headers, "Content-Type": "application/json", "X-Request-ID": request_id},
        )
        assert "content-length" in {k.lower() for k in response.request.headers}
        assert_problem(response, 413, "payload_too_large", request_id)
    assert len(client.accounts()["items"]) == before
    assert client.orders(account_id, status="all")["items"] == []


def test_chunked_body_within_the_limit_is_served(server: Server) -> None:
    client, account_id = server.trader()
    body = httpx.Request("POST", "/", json=order_body(account_id)).content
    response = httpx.post(
        server.url + "/orders",
        content=chunks(body, 7),
        headers=auth(client, **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "open"


# ---- media type and duplicate keys ----------------------------------------------------------------


def test_body_without_json_content_type_is_415_and_changes_nothing(server: Server) -> None:
    client, account_id = server.trader()
    before = len(client.accounts()["items"])
    order = httpx.Request("POST", "/", json=order_body(account_id)).content
    account = b'{"currency": "USD", "initial_balance": "5"}'
    for path, content in (("/orders", order), ("/accounts", account)):
        for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "application/jsonp"):
            request_id = rid()
            headers = auth(client, request_id)
            if content_type is not None:
                headers["Content-Type"] = content_type
            response = httpx.post(server.url + path, content=content, headers=headers)
            assert_problem(response, 415, "unsupported_media_type", request_id)
    assert client.orders(account_id, status="all")["items"] == []
    assert len(client.accounts()["items"]) == before


def test_json_content_type_with_parameters_is_accepted(server: Server) -> None:
    client, account_id = server.trader()
    content = httpx.Request("POST", "/", json=order_body(account_id)).content
    headers = auth(client, **{"Content-Type": "Application/JSON; charset=utf-8"})
    response = httpx.post(server.url + "/orders", content=content, headers=headers)
    assert response.status_code == 201, response.text


def test_body_less_post_needs_no_content_type(server: Server) -> None:
    admin = server.admin()
    headers = {**admin._auth.headers()}
    halted = httpx.post(server.url + "/admin/markets/BTC-PERP/halt", headers=headers)
    assert "content-type" not in {k.lower() for k in halted.request.headers}
    assert halted.status_code == 200, halted.text
    assert halted.json()["status"] == "halted"
    resumed = httpx.post(server.url + "/admin/markets/BTC-PERP/resume", headers=headers)
    assert (resumed.status_code, resumed.json()["status"]) == (200, "open")


def test_duplicate_keys_are_400_and_nothing_is_created(server: Server) -> None:
    client, account_id = server.trader()
    before = len(client.accounts()["items"])
    prefix = f'{{"account_id": "{account_id}", "market": "BTC-USD", "type": "limit", "quantity": "0.01", '
    bodies = [
        ("/orders", prefix + '"side": "sell", "price": "1000", "side": "buy"}'),
        ("/orders", prefix + '"side": "buy", "price": "1000", "pr\\u0069ce": "900"}'),  # same key, escaped
        ("/orders", prefix + '"side": "buy", "price": "1000", "x": [{"a": "\\"", "a": 1}]}'),  # nested
        ("/accounts", '{"currency": "USD", "initial_balance": "5", "initial_balance": "50000"}'),
    ]
    for path, text in bodies:
        request_id = rid()
        response = httpx.post(
            server.url + path,
            content=text.encode(),
            headers=auth(client, request_id, **{"Content-Type": "application/json"}),
        )
        assert_problem(response, 400, "invalid_request", request_id)
    assert client.orders(account_id, status="all")["items"] == []
    assert len(client.accounts()["items"]) == before
    # the same keys once each are an order
    fine = prefix + '"side": "buy", "price": "1000", "client_order_id": "a\\"b:c"}'
    response = httpx.post(
        server.url + "/orders",
        content=fine.encode(),
        headers=auth(client, **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 201, response.text


# ---- self-funding currencies ----------------------------------------------------------------------


def test_self_funding_only_in_the_venues_currencies(server: Server) -> None:
    client, _ = server.trader()
    before = client.accounts()["items"]
    for currency in ("ZZZ", "FED-CUT", "QQQ"):  # unknown; a binary market's base; no market yet
        request_id = rid()
        response = httpx.post(
            server.url + "/accounts",
            json={"currency": currency, "initial_balance": "1000000"},
            headers=auth(client, request_id),
        )
        body = assert_problem(response, 400, "invalid_request", request_id)
        assert repr(currency) in body["detail"]
    assert client.accounts()["items"] == before
    assert client.create_account("EUR", initial_balance="10")["balance"] == "10.00"  # configured
    server.admin().create_market(
        symbol="ABC-QQQ", kind="spot", base="ABC", quote="QQQ", tick_size="0.01", lot_size="1"
    )
    assert client.create_account("QQQ", initial_balance="10")["currency"] == "QQQ"  # a market's quote
    assert client.create_account("ABC", initial_balance="3")["currency"] == "ABC"  # a spot market's base
