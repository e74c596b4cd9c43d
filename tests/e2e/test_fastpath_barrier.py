"""The read barrier of a gateway process (`serve --workers N`), only where it is needed.

A gateway's `TradehallApp` has `read_barrier` (catch the replica up with the engine process) and
`credential_check` (forget cached keys after a revocation). Here they are counting stand-ins on a real
server: order entry and cancels run the credential check but no barrier (the engine decides them on
its own state); every other request runs the barrier. A fast-path refusal the replica alone decided
(404/403, nothing sent to the engine) is checked again after the barrier: an account another gateway
just opened is found. A refusal that came back from the engine is not retried.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.api.fastpath import TradehallApp
from tradehall.api.gateway import COMMAND_SENT
from tradehall.domain.commands import Deposit, OpenAccount


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path) as running:
        create_demo_markets(running.admin())
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60.0) as client:  # generous: a shared machine can be very slow
        yield client


class Counting:
    def __init__(self) -> None:
        self.barriers = 0
        self.checks = 0
        self.then: Any = None
        """Run (awaited) by the next barrier: what another gateway's answer made durable."""

    async def barrier(self) -> None:
        self.barriers += 1
        if self.then is not None:
            then, self.then = self.then, None
            await then()

    def check(self) -> None:
        self.checks += 1


def install(server: Server) -> Counting:
    counting = Counting()
    app: TradehallApp = server.app
    app.read_barrier = counting.barrier
    app.credential_check = counting.check
    return counting


def order(account: str) -> dict[str, str]:
    return {"account_id": account, "market": "BTC-USD", "side": "buy", "type": "limit",
            "quantity": "0.010", "price": "100.0"}


def test_order_entry_and_cancel_skip_the_barrier_reads_take_it(server: Server, http: httpx.Client) -> None:
    client, account = server.trader()
    headers = {"Authorization": f"Bearer {client.auth_token}"}
    counting = install(server)
    placed = http.post(f"{server.url}/orders", json=order(account), headers=headers)
    assert placed.status_code == 201, placed.text
    cancelled = http.delete(f"{server.url}/orders/{placed.json()['id']}", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    assert (counting.barriers, counting.checks) == (0, 2)
    assert http.get(f"{server.url}/orders/{placed.json()['id']}", headers=headers).status_code == 200
    assert http.get(f"{server.url}/accounts", headers=headers).status_code == 200
    assert (counting.barriers, counting.checks) == (2, 2)
    assert http.get(f"{server.url}/health").status_code == 200
    assert counting.barriers == 2


def test_a_refusal_on_the_replica_alone_is_checked_again_after_the_barrier(
    server: Server, http: httpx.Client
) -> None:
    client, _ = server.trader()
    headers = {"Authorization": f"Bearer {client.auth_token}"}
    user_id = client.me()["user_id"]
    fresh = "acc_" + uuid.uuid4().hex[:20]
    counting = install(server)

    async def opened_elsewhere() -> None:  # as if another gateway had answered its creation
        gateway = server.app.state.gateway
        await gateway.submit(OpenAccount(account_id=fresh, owner=user_id))
        await gateway.submit(Deposit(account_id=fresh, amount=Decimal("1000")))

    counting.then = opened_elsewhere
    placed = http.post(f"{server.url}/orders", json=order(fresh), headers=headers)
    assert placed.status_code == 201, placed.text
    assert placed.json()["account_id"] == fresh
    assert counting.barriers == 1

    unknown = http.delete(f"{server.url}/orders/999999999", headers=headers)  # really unknown: 404
    assert unknown.status_code == 404
    assert counting.barriers == 2


async def test_a_refusal_after_a_command_was_sent_is_not_retried() -> None:
    app = TradehallApp()
    counting = Counting()
    app.read_barrier = counting.barrier
    calls: list[bool] = []

    async def endpoint(request: Request) -> Response:
        calls.append(COMMAND_SENT.get())
        COMMAND_SENT.set(True)  # as `Gateway.submit` does: the engine answered for this request
        return Response(status_code=404)

    async def replica_only(request: Request) -> Response:
        calls.append(COMMAND_SENT.get())
        return Response(status_code=404 if len(calls) == 1 else 201)

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    def scope(handler: Any) -> dict[str, Any]:
        return {"type": "http", "method": "POST", "path": "/x", "headers": [], "query_string": b"",
                "route": Route("/x", handler, methods=["POST"])}

    await app.run_hot(scope(endpoint), receive, send)
    assert (calls, counting.barriers, sent[0]["status"]) == ([False], 0, 404)

    calls.clear()
    sent.clear()
    await asyncio.create_task(app.run_hot(scope(replica_only), receive, send))
    assert (calls, counting.barriers, sent[0]["status"]) == ([False, False], 1, 201)
