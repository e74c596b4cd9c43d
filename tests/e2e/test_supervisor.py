"""The multi-process layout with real processes: a supervisor, an engine process, two gateways.

Orders go through both gateways over the ZeroMQ transport; a gateway killed with SIGKILL is restarted
while the other keeps serving; every order acknowledged before a SIGKILL of the engine process is in
the journal exactly once afterwards, money conserved; a SIGKILL of the supervisor takes every child
with it, so the port is free again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.test_crash_recovery import check_journal
from tradehall.domain.commands import PlaceOrder
from tradehall.domain.enums import OrderSide
from tradehall.service.supervisor import STATUS_FILE

CHILD = Path(__file__).with_name("supervised_child.py")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def status(data_dir: Path) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads((data_dir / STATUS_FILE).read_text())["children"]
    except (FileNotFoundError, ValueError):
        return {}
    return loaded


def restarted(data_dir: Path, name: str) -> bool:
    child = status(data_dir).get(name, {})
    return bool(child.get("restarts") == 1 and child.get("up"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def listening(port: int) -> bool:
    """Whether any socket listens on the port (from /proc/net/tcp: state 0A), whoever holds it."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    return True
    return False


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/pid", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def supervise(data_dir: Path, port: int, gateways: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, str(CHILD), "supervise", str(data_dir), str(port), str(gateways)]
    process = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})

    def all_up() -> bool:
        children = status(data_dir)
        return len(children) == gateways + 1 and all(child["up"] for child in children.values())

    wait_until(all_up, "every child up")
    wait_until(lambda: answers(port), "a gateway answering")
    return process


class Orders:
    """Places orders over fresh connections (so the kernel picks a gateway each time); keeps the acks."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.n = 0
        self.acks: dict[str, dict[str, Any]] = {}
        self.gateways: set[int] = set()

    def place(self) -> dict[str, Any]:
        self.n += 1
        cid = f"sup-{self.n}"
        command = PlaceOrder(account_id=["alice", "bob"][self.n % 2], market="BTC-USD",
                             side=[OrderSide.BUY, OrderSide.SELL][self.n % 2], quantity=Decimal("0.01"),
                             price=Decimal("100.00"), client_order_id=cid, correlation_id=cid)
        response = httpx.post(f"http://127.0.0.1:{self.port}/orders", content=msgspec.json.encode(command),
                              headers={"connection": "close"}, timeout=10.0)
        assert response.status_code == 200, response.text
        reply: dict[str, Any] = response.json()
        assert reply["events"][0] == "OrderAccepted"
        self.acks[cid] = {"seq": reply["seq"], "digest": reply["digest"]}
        self.gateways.add(reply["pid"])
        return reply


def test_orders_through_two_gateways_survive_kill_9_of_a_gateway_and_of_the_engine(tmp_path: Path) -> None:
    port = free_port()
    supervisor = supervise(tmp_path, port, gateways=2)
    try:
        orders = Orders(port)
        gateway_pids = {status(tmp_path)[name]["pid"] for name in ("gateway-1", "gateway-2")}
        while len(orders.gateways) < 2 and orders.n < 400:
            orders.place()
        assert orders.gateways == gateway_pids  # both gateways took orders, nobody else did

        killed = status(tmp_path)["gateway-1"]["pid"]
        os.kill(killed, signal.SIGKILL)
        for _ in range(20):  # the other gateway keeps serving meanwhile (the socket is shared)
            assert orders.place()["pid"] != killed
        wait_until(lambda: restarted(tmp_path, "gateway-1"), "the gateway restarted")
        assert status(tmp_path)["gateway-1"]["pid"] != killed
        assert status(tmp_path)["gateway-2"]["restarts"] == 0

        last_seq = max(ack["seq"] for ack in orders.acks.values())
        os.kill(status(tmp_path)["engine"]["pid"], signal.SIGKILL)
        wait_until(lambda: restarted(tmp_path, "engine"), "the engine restarted")
        after = orders.place()  # the gateways reconnect to the new engine process by themselves
        assert after["seq"] == last_seq + 1  # recovered from the journal: nothing lost, nothing repeated
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(60) == 0
    assert not (tmp_path / STATUS_FILE).exists()
    check_journal(tmp_path, orders.acks)  # every ack once, exact results, money conserved


def test_kill_9_of_the_supervisor_leaves_no_process_holding_the_port(tmp_path: Path) -> None:
    port = free_port()
    supervisor = supervise(tmp_path, port, gateways=1)
    children = [child["pid"] for child in status(tmp_path).values()]
    supervisor.kill()
    supervisor.wait()
    wait_until(lambda: not any(alive(pid) for pid in children), "the children to die with the supervisor")
    # a zombie thread-group leader may still have threads exiting: the port is let go when they are
    wait_until(lambda: not listening(port), "nothing to hold the port", timeout=10)
    again = supervise(tmp_path, port, gateways=1)  # and the next start is clean (journal, socket)
    again.send_signal(signal.SIGTERM)
    assert again.wait(60) == 0
