"""Hostile cursors against a real server: every cursor-paginated list answers 400 `invalid_request`
(problem+json with the request's correlation id) for a cursor the database could not bind, instead
of a 500 with a driver's OverflowError or UnicodeEncodeError, and keeps answering afterwards.

Cursors are parsed in one place (`tradehall.store.queries.decode_cursor`), so one fix covers
`GET /trades`, the public `GET /markets/{symbol}/trades`, `GET /orders?status=all` and
`GET /markets/{symbol}/candles?start=`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.client import Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("cursor-attacks")) as running:
        create_demo_markets(running.admin())
        yield running


def cursor_of(at: str, key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps([at, key]).encode()).decode().rstrip("=")


AT = "2000-01-01T00:00:00+00:00"
BAD_CURSORS = {
    "raw digits beyond 64 bits": "99999999999999999999999",
    "key 2**64": cursor_of(AT, 2**64),
    "key 10**40": cursor_of(AT, 10**40),
    "key below -2**63": cursor_of(AT, -(2**63) - 1),
    "time past year 9999 in UTC": cursor_of("9999-12-31T23:00:00-05:00", 1),
    "time before year 1 in UTC": cursor_of("0001-01-01T00:30:00+01:00", 1),
    "lone surrogate key": cursor_of(AT, "\ud800"),
    "NUL in the key": cursor_of(AT, "a\x00b"),
}
LISTS = {
    "/trades": ({}, True),
    "/markets/BTC-USD/trades": ({}, False),  # public
    "/orders": ({"status": "all"}, True),
    "/markets/BTC-USD/candles": ({"start": AT, "interval": "1m"}, False),
}


TIMEOUT = 30.0
"""Generous: the lists wait for the read models (read barrier) on a machine shared with other tests."""


def headers(client: Client | None, request_id: str) -> dict[str, str]:
    auth = {} if client is None else client._auth.headers()
    return {**auth, "X-Request-ID": request_id}


@pytest.mark.parametrize("name", list(BAD_CURSORS))
def test_a_cursor_the_database_cannot_bind_is_400_on_every_list(server: Server, name: str) -> None:
    client, _ = server.trader()
    for path, (params, private) in LISTS.items():
        request_id = "req-" + uuid.uuid4().hex[:12]
        response = httpx.get(
            server.url + path,
            params={**params, "cursor": BAD_CURSORS[name]},
            headers=headers(client if private else None, request_id),
            timeout=TIMEOUT,
        )
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body: dict[str, Any] = response.json()
        assert (body["status"], body["code"], body["correlation_id"]) == (400, "invalid_request", request_id)
        assert response.headers["x-request-id"] == request_id
    # the server still answers, the lists included
    assert httpx.get(server.url + "/health", timeout=TIMEOUT).status_code == 200
    for path, (params, private) in LISTS.items():
        response = httpx.get(
            server.url + path,
            params=params,
            headers=headers(client if private else None, "after"),
            timeout=TIMEOUT,
        )
        assert (response.status_code, response.json()["items"]) == (200, []), path


def test_the_largest_keys_that_fit_are_cursors_like_any_other(server: Server) -> None:
    client, _ = server.trader()
    for key in (2**63 - 1, -(2**63)):
        for path in ("/trades", "/markets/BTC-USD/trades"):
            response = httpx.get(
                server.url + path,
                params={"cursor": cursor_of(AT, key)},
                headers=headers(client, "edge"),
                timeout=TIMEOUT,
            )
            assert (response.status_code, response.json()["items"]) == (200, []), (path, key)
