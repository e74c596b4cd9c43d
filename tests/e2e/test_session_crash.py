"""A live session survives `kill -9` of a real server (`tradehall serve` in a subprocess, fsync batch):
the server is killed while the session trades, at a random moment of a cycle; after the restart the
session is running again, carries on with its strategy's state rebuilt from the stored bars, and the
journal holds every order of the session exactly once (a decision cut short by the kill is sent again
with the same client order id and meets the engine's idempotency).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from tests.e2e.test_api_harness import ADMIN_PASSWORD, JWT_SECRET, free_port
from tests.e2e.test_api_sessions import STRATEGIES, decisions, eventually, quote_market, rfc3339
from tradehall.client import Client
from tradehall.domain.events import OrderAccepted
from tradehall.journal import read_records

START = (datetime.now(UTC) + timedelta(days=500)).replace(second=0, microsecond=0)
SCRIPT = ",".join(f"{'buy' if n % 2 else 'sell'}@{n}" for n in range(1, 41))
"""A buy on odd bars, a sell on even ones: an order every cycle."""


@contextmanager
def serve(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "TRADEHALL_DATA_DIR": str(data_dir),
        "TRADEHALL_CLOCK": "manual",
        "TRADEHALL_CLOCK_TICK_SECONDS": "0",
        "TRADEHALL_FSYNC": "batch",
        "TRADEHALL_STRATEGIES_DIR": str(STRATEGIES),
        "TRADEHALL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "TRADEHALL_JWT_SECRET": JWT_SECRET,
        "TRADEHALL_RATE_LIMIT_PER_SECOND": "0",
        "TRADEHALL_LOGIN_TARPIT_SECONDS": "0",
        "TRADEHALL_PASSWORD_HASH_MEMORY_KIB": "1024",  # cheap argon2: a login is not starved under load
        "TRADEHALL_PASSWORD_HASH_TIME_COST": "1",
    }
    script = "from tradehall.cli.main import main; main()"
    command = [sys.executable, "-c", script, "serve", "--port", str(port), "--local"]
    process = subprocess.Popen(
        [*command, "--log-format", "console"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        eventually(lambda: _health(port), bool, timeout=60)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


def _health(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def cycle(admin: Client, n: int, mid: float) -> None:
    admin.move_clock(set_to=rfc3339(START + timedelta(seconds=n * 60 - 5)))
    admin.set_price("SIM-USD", f"{mid:.2f}", bid=f"{mid - 0.05:.2f}", ask=f"{mid + 0.05:.2f}")
    admin.move_clock(set_to=rfc3339(START + timedelta(seconds=n * 60)))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kill_9_while_a_session_trades_never_duplicates_an_order(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    kill_at = rng.randint(3, 7)
    with serve(data, port) as first:
        admin = Client(url).login("admin", ADMIN_PASSWORD)
        admin.move_clock(set_to=rfc3339(START))
        quote_market(admin)
        trader = Client(url)
        trader.register("crash-trader", "pw-crash-trader")
        trader.login("crash-trader", "pw-crash-trader")
        account_id = trader.create_account("USD", initial_balance="100000")["id"]
        strategy = [{"name": "scripted", "parameters": {"script": SCRIPT}}]
        session = trader.start_session(
            account_id, ["SIM-USD"], strategy, {"interval_seconds": 60, "max_position_size": "1000"}
        )
        for n in range(1, kill_at):
            cycle(admin, n, 100 + n)
            eventually(lambda n=n: trader.session(session["id"]), lambda s, n=n: s["cycles"] >= n)
        cycle(admin, kill_at, 100 + kill_at)  # the session is working on this cycle's decision now
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)

    with serve(data, port):
        admin = Client(url).login("admin", ADMIN_PASSWORD)
        trader = Client(url).login("crash-trader", "pw-crash-trader")
        resumed = trader.session(session["id"])
        assert resumed["status"] == "running", f"seed {seed}"
        for n in range(kill_at + 1, kill_at + 4):
            cycle(admin, n, 100 + n)
            eventually(lambda n=n: trader.session(session["id"]), lambda s, n=n: s["cycles"] >= n)
        final = eventually(
            lambda: decisions(trader, session["id"]),
            lambda found: all(d["status"] != "pending" for d in found) and len(found) >= kill_at + 2,
        )

    placed = [d for d in final if d["status"] == "placed"]
    assert all(d["order_id"] is not None for d in placed), f"seed {seed}"
    with capture_logs():
        records = list(read_records(data / "journal"))
    accepted: Counter[str] = Counter(
        event.client_order_id
        for record in records
        for event in record.events
        if isinstance(event, OrderAccepted) and event.account_id == account_id and event.client_order_id
    )
    assert [coid for coid, count in accepted.items() if count > 1] == [], f"seed {seed}"
    assert set(accepted) == {d["client_order_id"] for d in placed}, f"seed {seed}"
    # the strategy continued its count across the kill: bar n is the decision of cycle n (buy odd, sell even)
    by_cycle: dict[int, Any] = {}
    for found in final:
        by_cycle.setdefault(found["cycle"], found)
    last = max(by_cycle)
    assert by_cycle[last]["action"] == ("buy" if last % 2 else "sell"), f"seed {seed}"
