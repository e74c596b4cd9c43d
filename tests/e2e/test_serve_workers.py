"""`tradehall serve --workers 2` with real processes: an engine process, two gateways, one supervisor.

Every call goes over a fresh connection, so the kernel hands it to either gateway: orders placed and
cancelled through one are seen at once by the other (read-after-write across processes), a deleted
API key stops working in both, `/ready` names the processes, a gateway killed with SIGKILL is
restarted while the other serves, an order acknowledged before a SIGKILL of the engine process is
still there after its restart, and a SIGKILL of the supervisor leaves nothing holding the port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_api_harness import ADMIN_PASSWORD, JWT_SECRET, create_demo_markets, free_port
from tests.e2e.test_supervisor import alive, listening, restarted, status, wait_until
from tradehall.client import Client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def ready(url: str) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{url}/ready", timeout=5.0)
    except httpx.HTTPError:
        return None
    body: dict[str, Any] = response.json()
    return body if response.status_code == 200 else None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "TRADEHALL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "TRADEHALL_JWT_SECRET": JWT_SECRET,
        "TRADEHALL_RATE_LIMIT_PER_SECOND": "0",
        "TRADEHALL_LOGIN_TARPIT_SECONDS": "0",
        "TRADEHALL_FSYNC": "batch",
    }
    argv = [sys.executable, "-c", "from tradehall.cli.main import main; main()", "serve", "--workers", "2",
            "--port", str(port), "--data-dir", str(tmp_path), "--local", "--log-format", "console"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: ready(url) is not None, "the supervised server to be ready", timeout=120)
        yield url, tmp_path, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def fresh(url: str, api_key: str) -> Client:
    """A client on a new connection: the kernel picks the gateway."""
    return Client(url, api_key=api_key)


def trader(url: str) -> tuple[str, str, str]:
    """(api key, key id, account id) of a new user with a funded USD account."""
    name = "t" + uuid.uuid4().hex[:12]
    Client(url).register(name, "pw-" + name)
    client = Client(url).login(name, "pw-" + name)
    account = client.create_account("USD", initial_balance="100000")["id"]
    key = client.create_api_key(label="bot")
    return key["api_key"], key["key_id"], account


Served = tuple[str, Path, subprocess.Popen[bytes]]


def test_orders_and_reads_agree_across_two_gateways(served: Served) -> None:
    url, _, _ = served
    processes = (ready(url) or {})["checks"]["processes"]
    assert processes["ok"] is True
    assert set(processes) == {"ok", "engine", "projector", "gateway-1", "gateway-2"}
    admin = Client(url).login("admin", ADMIN_PASSWORD)
    create_demo_markets(admin)
    buyer_key, _, buyer = trader(url)
    seller_key, seller_key_id, seller = trader(url)
    admin.deposit(seller, "1", currency="BTC")  # the seller's BTC to sell
    for n in range(6):
        resting = fresh(url, buyer_key).place_order(buyer, "BTC-USD", "buy", "0.010", "100.0",
                                                    client_order_id=f"rest-{n}")
        assert fresh(url, buyer_key).order(resting["id"])["status"] == "open"  # read-after-write
        cancelled = fresh(url, buyer_key).cancel_order(resting["id"])
        assert cancelled["status"] == "cancelled"
        assert fresh(url, buyer_key).order(resting["id"])["status"] == "cancelled"
    bid = fresh(url, buyer_key).place_order(buyer, "BTC-USD", "buy", "0.010", "100.0", client_order_id="fill")
    ask = fresh(url, seller_key).place_order(seller, "BTC-USD", "sell", "0.010", "100.0")
    assert ask["status"] == "filled"
    assert fresh(url, buyer_key).order(bid["id"])["status"] == "filled"
    assert Decimal(fresh(url, buyer_key).order(bid["id"])["filled_quantity"]) == Decimal("0.01")

    Client(url, api_key=seller_key).delete_api_key(seller_key_id)
    for _ in range(6):  # whichever gateway answers, the deleted key no longer works
        response = httpx.get(f"{url}/accounts", headers={"X-API-Key": seller_key}, timeout=10.0)
        assert response.status_code == 401


def test_a_killed_gateway_and_a_killed_engine_come_back(served: Served) -> None:
    url, data_dir, _ = served
    create_demo_markets(Client(url).login("admin", ADMIN_PASSWORD))
    key, _, account = trader(url)
    acked = [fresh(url, key).place_order(account, "BTC-USD", "buy", "0.010", "100.0",
                                         client_order_id=f"a-{n}")["id"] for n in range(5)]

    killed = status(data_dir)["gateway-1"]["pid"]
    os.kill(killed, signal.SIGKILL)
    for _ in range(10):  # the other gateway keeps serving
        assert fresh(url, key).order(acked[0])["status"] == "open"
    wait_until(lambda: restarted(data_dir, "gateway-1"), "the gateway restarted")
    wait_until(lambda: ready(url) is not None, "ready again")

    os.kill(status(data_dir)["engine"]["pid"], signal.SIGKILL)
    wait_until(lambda: restarted(data_dir, "engine"), "the engine restarted")
    wait_until(lambda: ready(url) is not None, "ready again")
    for order_id in acked:  # every acknowledged order survived, once
        assert fresh(url, key).order(order_id)["status"] == "open"
    assert len(fresh(url, key).orders(account_id=account)["items"]) == 5
    again = httpx.post(f"{url}/orders", headers={"X-API-Key": key}, timeout=10.0,
                       json={"account_id": account, "market": "BTC-USD", "side": "buy", "type": "limit",
                             "quantity": "0.010", "price": "100.0", "client_order_id": "a-0"})
    assert (again.status_code, again.json()["id"]) == (200, acked[0])  # idempotent across the restart


def test_kill_9_of_serve_workers_frees_the_port(served: Served) -> None:
    url, data_dir, process = served
    children = [child["pid"] for child in status(data_dir).values()]
    process.kill()
    process.wait()
    wait_until(lambda: not any(alive(pid) for pid in children), "the children to die with the supervisor")
    port = int(url.rsplit(":", 1)[1])
    wait_until(lambda: not listening(port), "nothing to hold the port", timeout=10)


def test_engine_process_only_features_and_a_stalled_engine_are_clear_errors(served: Served) -> None:
    url, data_dir, _ = served
    admin = Client(url).login("admin", ADMIN_PASSWORD)
    create_demo_markets(admin)
    key, _, account = trader(url)
    admin_auth = {"Authorization": f"Bearer {admin.auth_token}"}
    refused = [
        httpx.post(f"{url}/admin/clock", headers=admin_auth, json={"advance_seconds": 60}, timeout=10.0),
        httpx.get(f"{url}/admin/settlements", headers=admin_auth, timeout=10.0),
        httpx.post(f"{url}/admin/settlements/BTC-USD/confirm", headers=admin_auth, timeout=10.0),
        httpx.post(f"{url}/sessions", headers={"X-API-Key": key}, timeout=10.0,
                   json={"account_id": account, "markets": ["BTC-USD"],
                         "strategies": [{"name": "sma_cross"}]}),
        httpx.get(f"{url}/sessions/s-1", headers={"X-API-Key": key}, timeout=10.0),
        httpx.post(f"{url}/sessions/s-1/stop", headers={"X-API-Key": key}, timeout=10.0),
    ]
    for response in refused:  # whichever gateway answers: 409, never 500
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["code"] == "conflict" and "--workers 1" in body["detail"]

    engine_pid = status(data_dir)["engine"]["pid"]
    order = {"account_id": account, "market": "BTC-USD", "side": "buy", "type": "limit",
             "quantity": "0.010", "price": "100.0", "client_order_id": "stalled"}
    os.kill(engine_pid, signal.SIGSTOP)  # the engine process stops answering
    try:
        stalled = httpx.post(f"{url}/orders", headers={"X-API-Key": key}, json=order, timeout=30.0)
    finally:
        os.kill(engine_pid, signal.SIGCONT)
    assert stalled.status_code == 503, stalled.text
    assert stalled.headers["retry-after"] == "1"
    assert stalled.json()["code"] == "overloaded" and "same client_order_id" in stalled.json()["detail"]
    retried = httpx.post(f"{url}/orders", headers={"X-API-Key": key}, json=order, timeout=30.0)
    assert retried.status_code in (200, 201)  # 200 when the stalled attempt was applied after all
    items = fresh(url, key).orders(account_id=account)["items"]
    assert [(item["id"], item["client_order_id"]) for item in items] == [(retried.json()["id"], "stalled")]
