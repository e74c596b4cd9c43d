"""A real tradehall server (uvicorn, journal, SQLite read models) on 127.0.0.1 in a thread, for e2e tests.

No tests here: the e2e modules import `running_server` and the helpers.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from tradehall.api import create_app
from tradehall.api.server import uvicorn_config
from tradehall.client import Client
from tradehall.service.settings import Settings

ADMIN_PASSWORD = "admin-password-for-tests"
JWT_SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    settings: Settings
    app: Any

    def admin(self) -> Client:
        return Client(self.url).login("admin", ADMIN_PASSWORD)

    def trader(self, funded: str | None = "100000") -> tuple[Client, str]:
        """A new registered user with one USD cash account (self-funded); returns (client, account id)."""
        name = "t" + uuid.uuid4().hex[:12]
        anonymous = Client(self.url)
        anonymous.register(name, "pw-" + name)
        client = Client(self.url).login(name, "pw-" + name)
        account = client.create_account("USD", initial_balance=funded)
        return client, account["id"]


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "fsync": "none",
        "admin_password": ADMIN_PASSWORD,
        "jwt_secret": JWT_SECRET,
        "rate_limit_per_second": 0,
        "login_tarpit_seconds": 0,  # tests of the throttle read exact Retry-After values at once
        # argon2's default costs take hundreds of ms of CPU in a nice-19 thread: on a loaded machine
        # a login waited longer than the client's timeout; these take about a millisecond
        "password_hash_memory_kib": 1024,
        "password_hash_time_cost": 1,
        "ws_connects_per_second_per_ip": 0,  # every test connects from 127.0.0.1
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running_server(data_dir: Path, **overrides: Any) -> Iterator[Server]:
    settings = make_settings(data_dir, **overrides)
    app = create_app(settings)
    port = free_port()
    # the product's own uvicorn configuration (read deadlines, frame and head limits), as `tradehall serve`
    server = uvicorn.Server(uvicorn_config(app, settings, host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}", settings, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def create_demo_markets(admin: Client) -> None:
    admin.create_market(
        symbol="BTC-USD",
        kind="spot",
        base="BTC",
        quote="USD",
        tick_size="0.5",
        lot_size="0.001",
        taker_fee="0.001",
    )
    admin.create_market(
        symbol="BTC-PERP",
        kind="perp",
        base="BTC",
        quote="USD",
        tick_size="0.5",
        lot_size="0.001",
        max_leverage="10",
    )
    admin.create_market(
        symbol="FED-CUT",
        kind="binary",
        base="FED-CUT",
        quote="USD",
        tick_size="0.01",
        lot_size="1",
    )
