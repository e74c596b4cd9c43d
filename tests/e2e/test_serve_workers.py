"""`tradehall serve --workers 2` with real processes: an engine process, a projector process, two
gateways, one supervisor.

Every call goes over a fresh connection, so the kernel hands it to either gateway: orders placed and
cancelled through one are seen at once by the other (read-after-write across processes), a deleted
API key stops working in both, `/ready` names the processes. The crash matrix kills the engine, a
gateway, the projector, then all three at once with SIGKILL under an order load: every acknowledged
order survives once, money is conserved and the read models converge. A SIGKILL of the supervisor
leaves nothing holding the port.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_api_harness import ADMIN_PASSWORD, JWT_SECRET, create_demo_markets, free_port
from tests.e2e.test_supervisor import alive, listening, status, wait_until
from tests.support.read_models import (
    differences,
    last_journal_seq,
    project_journal,
    projected_seq,
    read_models,
)
from tradehall.client import Client
from tradehall.domain.commands import PlaceOrder
from tradehall.domain.events import OrderAccepted
from tradehall.journal import read_records

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
        "TRADEHALL_PASSWORD_HASH_MEMORY_KIB": "1024",  # cheap argon2: a login is not starved under load
        "TRADEHALL_PASSWORD_HASH_TIME_COST": "1",
        "TRADEHALL_FSYNC": "batch",
    }
    argv = [sys.executable, "-c", "from tradehall.cli.main import main; main()", "serve", "--workers", "2",
            "--port", str(port), "--data-dir", str(tmp_path), "--local", "--log-format", "console"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: ready(url) is not None, "the supervised server to be ready", timeout=300)
        yield url, tmp_path, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def fresh(url: str, api_key: str) -> Client:
    """A client on a new connection: the kernel picks the gateway."""
    return Client(url, api_key=api_key)


def trader(url: str, timeout: float = 10.0) -> tuple[str, str, str]:
    """(api key, key id, account id) of a new user with a funded USD account."""
    name = "t" + uuid.uuid4().hex[:12]
    Client(url, timeout=timeout).register(name, "pw-" + name)
    client = Client(url, timeout=timeout).login(name, "pw-" + name)
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


class Load:
    """Clients placing orders with client order ids, each retried as it is until answered (a killed
    process drops connections; a stopping or restarting engine answers 503): every answer is kept."""

    def __init__(self, url: str, traders: list[tuple[str, str]], *, seed: int = 7) -> None:
        self.url = url
        self.traders = traders
        self.acks: dict[str, set[str]] = {}
        """client order id -> the order ids answered for it (exactly one when all is well)."""
        self.statuses: Counter[int] = Counter()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n, seed + n), daemon=True)
                         for n in range(len(traders))]
        self._lock = threading.Lock()

    def _place(self, key: str, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:  # a new connection each time: the kernel picks a gateway, a dead one is not reused
                response = httpx.post(f"{self.url}/orders", json=body, timeout=15.0,
                                      headers={"X-API-Key": key, "connection": "close"})
            except httpx.HTTPError:
                time.sleep(0.05)  # a gateway died under it: the retry goes to one alive
                continue
            with self._lock:
                self.statuses[response.status_code] += 1
            if response.status_code in (200, 201):
                with self._lock:
                    self.acks.setdefault(body["client_order_id"], set()).add(response.json()["id"])
                return
            assert response.status_code == 503, response.text  # never a 500
            assert response.headers["content-type"].startswith("application/problem+json")
            time.sleep(0.05)
        raise AssertionError(f"order {body['client_order_id']} never answered")

    def _run(self, n: int, seed: int) -> None:
        try:
            self._orders(n, seed)
        except BaseException as exc:  # the test reads it (a thread's exception would be lost)
            self.errors.append(exc)
            raise

    def _orders(self, n: int, seed: int) -> None:
        key, account = self.traders[n]
        rng = random.Random(seed)
        count = 0
        while not self._stop.is_set():
            count += 1
            body = {"account_id": account, "market": "BTC-USD", "side": ["buy", "sell"][n % 2],
                    "type": "limit", "quantity": "0.010", "price": str(100 + rng.choice([0, 0, 0.5])),
                    "client_order_id": f"c{n}-{count}"}
            self._place(key, body)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wait_for(self, more: int) -> None:
        target = len(self.acks) + more
        def grown() -> bool:
            assert not self.errors, self.errors
            return len(self.acks) >= target

        wait_until(grown, f"{more} more acknowledged orders", timeout=180)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(150)


def caught_up(url: str) -> bool:
    body = ready(url)
    return body is not None and body["checks"]["store"]["lag"] == 0


@pytest.mark.timeout(900)
def test_crash_matrix_kill_9_of_each_process_and_of_all_under_load(served: Served, tmp_path: Path) -> None:
    """kill -9 of the engine, a gateway, the projector, then of all three at once, while clients place
    orders: no acknowledged order lost or doubled, a client order id is answered with one order id
    across every restart, money conserved, and the read models equal a fresh projection of the journal."""
    url, data_dir, process = served
    admin = Client(url, timeout=60.0).login("admin", ADMIN_PASSWORD)  # a loaded machine hashes slowly
    create_demo_markets(admin)
    traders = []
    for _ in range(4):
        key, _, account = trader(url, timeout=60.0)
        admin.deposit(account, "10", currency="BTC")
        traders.append((key, account))
    load = Load(url, traders)
    load.start()
    try:
        load.wait_for(20)
        for victims in (["engine"], ["gateway-1"], ["projector"], ["engine", "gateway-2", "projector"]):
            before = {name: status(data_dir)[name]["restarts"] for name in victims}
            for name in victims:
                os.kill(status(data_dir)[name]["pid"], signal.SIGKILL)
            for name in victims:
                def back(name: str = name, restarts: int = before[name] + 1) -> bool:
                    child = status(data_dir)[name]
                    return bool(child["restarts"] == restarts and child["up"])

                wait_until(back, f"{name} restarted", timeout=120)
            wait_until(lambda: ready(url) is not None, "ready again", timeout=120)
            load.wait_for(20)  # orders flow again through the restarted processes
    finally:
        load.stop()
    assert not load.errors and load.statuses[500] == 0, (load.errors, load.statuses)
    doubled = {cid: ids for cid, ids in load.acks.items() if len(ids) != 1}
    assert not doubled  # a retried client order id was never given a second order

    wait_until(lambda: caught_up(url), "the projector to catch up", timeout=120)
    engine_orders: dict[str, list[str]] = {}
    for key, account in traders:
        cursor = None
        while True:
            page = Client(url, api_key=key).orders(account_id=account, status="all", cursor=cursor, limit=500)
            for item in page["items"]:
                engine_orders.setdefault(item["client_order_id"], []).append(item["id"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
    for cid, ids in load.acks.items():  # every acknowledged order is there, once, with its id
        assert engine_orders.get(cid) == list(ids), cid
    for item in admin.conservation()["items"]:
        assert item["difference"] == "0", item

    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    journal = data_dir / "journal"
    accepted = Counter(record.command.client_order_id for record in read_records(journal)
                       if isinstance(record.command, PlaceOrder)
                       and any(isinstance(event, OrderAccepted) for event in record.events))
    assert {cid: accepted[cid] for cid in load.acks} == dict.fromkeys(load.acks, 1)
    reference = asyncio.run(project_journal(journal, f"sqlite:///{tmp_path / 'reference.sqlite3'}",
                                            last_journal_seq(journal)))
    served_db = f"sqlite:///{data_dir / 'tradehall.sqlite3'}"
    assert projected_seq(served_db) == last_journal_seq(journal)
    assert not differences(read_models(served_db), read_models(reference))  # converged to the engine


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
