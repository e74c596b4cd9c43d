"""Freqtrade, unchanged, trades on tradehall through ccxt's `alpaca` exchange and the Alpaca surface.

Freqtrade is installed from PyPI by this test into a virtualenv of its own, outside the repository:
`~/.cache/tradehall-freqtrade/<version>` (kept between runs). Against `tradehall demo` (the simulated
feed prices the markets, the demo bots trade, so 1-minute candles exist), `freqtrade trade` runs the tiny
strategy of `tests/e2e/freqtrade/tradehall_tiny.py` (enter once, exit at once) until its trade is closed,
within a bounded time; then tradehall's own API must show exactly that entry and that exit, filled, with
the fills Freqtrade recorded.

CI runs it (it is in the suite); on a laptop `TRADEHALL_SKIP_FREQTRADE=1` (or `-m "not freqtrade"`) skips
it: the install takes minutes and about a gigabyte.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_api_harness import free_port
from tradehall.client import Client

FREQTRADE_VERSION = "2026.9"
ADMIN_PASSWORD = "freqtrade-admin-password"
STRATEGY_DIR = Path(__file__).parent / "freqtrade"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.freqtrade,
    pytest.mark.skipif(
        os.environ.get("TRADEHALL_SKIP_FREQTRADE") == "1",
        reason="TRADEHALL_SKIP_FREQTRADE=1: Freqtrade needs its own virtualenv (minutes, ~1 GB); CI runs it",
    ),
]


def freqtrade_venv() -> Path:
    """The cached virtualenv with Freqtrade `FREQTRADE_VERSION`, created on first use (a venv's scripts
    name their interpreter by path, so it is built where it stays; `installed` marks a finished install)."""
    root = Path(os.environ.get("TRADEHALL_FREQTRADE_CACHE", Path.home() / ".cache" / "tradehall-freqtrade"))
    venv = root / FREQTRADE_VERSION
    marker = venv / "installed"
    if marker.exists():
        return venv
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"freqtrade=={FREQTRADE_VERSION}"],
        check=True,
        timeout=1800,
    )
    marker.write_text(FREQTRADE_VERSION + "\n")
    return venv


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tradehall demo` (simulated feed, market-making bots) on a free port; its URL."""
    data_dir = tmp_path_factory.mktemp("freqtrade-demo")
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "TRADEHALL_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "TRADEHALL_JWT_SECRET": "freqtrade-test-secret-" + "x" * 32,
            "TRADEHALL_FSYNC": "none",
        }
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tradehall.cli.main import app; app()",
            "demo",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--interval",
            "0.5",
        ],
        env=env,
        stdout=(data_dir / "demo.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded CI machine takes its time to import and seed
        while True:
            try:
                markets = httpx.get(url + "/markets", timeout=2).json()["items"]
                if any(market["symbol"] == "BTC-USD" for market in markets):
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            assert process.poll() is None and time.monotonic() < deadline, (
                "tradehall demo did not start:\n" + ((data_dir / "demo.log").read_text()[-3000:])
            )
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for_candles(url: str, deadline: float) -> None:
    """Until the demo's trades have made a 1-minute candle that has closed (Freqtrade drops the open one)."""
    while True:
        candles = httpx.get(url + "/markets/BTC-USD/candles", params={"interval": "1m"}).json()["items"]
        if len(candles) >= 2:
            return
        assert time.monotonic() < deadline, "the demo made no closed 1-minute candle"
        time.sleep(1)


def config(url: str, key_id: str, secret: str, workdir: Path) -> dict[str, Any]:
    base = url + "/alpaca"
    return {
        "max_open_trades": 1,
        "stake_currency": "USD",
        "stake_amount": 200,
        "dry_run": False,
        "trading_mode": "spot",
        "timeframe": "1m",
        "minimal_roi": {"0": 100},
        "stoploss": -0.99,
        "exchange": {
            "name": "alpaca",
            "key": key_id,
            "secret": secret,
            "ccxt_config": {"enableRateLimit": False, "urls": {"api": {"trader": base, "market": base}}},
            "ccxt_async_config": {
                "enableRateLimit": False,
                "urls": {"api": {"trader": base, "market": base}},
            },
            "pair_whitelist": ["BTC/USD"],
            "pair_blacklist": [],
        },
        "pairlists": [{"method": "StaticPairList"}],
        "entry_pricing": {"price_side": "other", "use_order_book": False, "price_last_balance": 0.0},
        "exit_pricing": {"price_side": "other", "use_order_book": False},
        "order_types": {
            "entry": "market",
            "exit": "market",
            "stoploss": "market",
            "stoploss_on_exchange": False,
        },
        "unfilledtimeout": {"entry": 1, "exit": 1, "unit": "minutes"},
        "internals": {"process_throttle_secs": 1, "heartbeat_interval": 0},
        "db_url": f"sqlite:///{workdir / 'trades.sqlite'}",
        "user_data_dir": str(workdir / "user_data"),
        "strategy": "TradehallTiny",
        "strategy_path": str(STRATEGY_DIR),
        "initial_state": "running",
        "bot_name": "tradehall",
        "telegram": {"enabled": False, "token": "", "chat_id": ""},
    }


def closed_trades(database: Path) -> list[tuple[Any, ...]]:
    if not database.exists():
        return []
    with sqlite3.connect(database) as connection:
        try:
            return connection.execute(
                "SELECT id, pair, amount, open_rate, close_rate, is_open FROM trades WHERE is_open = 0"
            ).fetchall()
        except sqlite3.OperationalError:  # Freqtrade has not created its tables yet
            return []


def test_freqtrade_opens_and_closes_a_trade_and_tradehall_shows_its_orders(demo: str, tmp_path: Path) -> None:
    venv = freqtrade_venv()
    admin = Client(demo).login("admin", ADMIN_PASSWORD)
    admin.create_user("freqtrader", "freqtrader-password")
    trader = Client(demo).login("freqtrader", "freqtrader-password")
    account = trader.create_account("USD")["id"]
    admin.deposit(account, "10000")
    key = trader.create_api_key("freqtrade", account_id=account)
    deadline = time.monotonic() + 360
    wait_for_candles(demo, deadline)
    (tmp_path / "user_data").mkdir()
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config(demo, key["key_id"], key["api_key"], tmp_path)))
    log_path = tmp_path / "freqtrade.log"
    with log_path.open("wb") as log:
        bot = subprocess.Popen(
            [
                str(venv / "bin" / "freqtrade"),
                "trade",
                "--config",
                str(config_path),
                "--logfile",
                str(log_path),
            ],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            while not closed_trades(tmp_path / "trades.sqlite"):
                assert bot.poll() is None, "freqtrade stopped:\n" + log_path.read_text()[-4000:]
                assert time.monotonic() < deadline, (
                    "no closed trade in time:\n" + log_path.read_text()[-4000:]
                )
                time.sleep(1)
        finally:
            bot.send_signal(signal.SIGINT)
            try:
                bot.wait(60)
            except subprocess.TimeoutExpired:
                bot.kill()
    [(_, pair, amount, open_rate, close_rate, _)] = closed_trades(tmp_path / "trades.sqlite")
    assert pair == "BTC/USD"
    orders = trader.orders(account_id=account, status="all")["items"]
    assert [(order["side"], order["type"], order["status"]) for order in orders] == [
        ("sell", "market", "filled"),
        ("buy", "market", "filled"),
    ]
    sell, buy = orders
    assert Decimal(buy["filled_quantity"]) == Decimal(sell["filled_quantity"]) == Decimal(str(amount))
    assert Decimal(buy["average_price"]) == Decimal(str(open_rate))
    assert Decimal(sell["average_price"]) == Decimal(str(close_rate))
    fills = trader.trades(account_id=account)["items"]
    assert {fill["order_id"] for fill in fills} == {buy["id"], sell["id"]}
    assert sum(Decimal(fill["quantity"]) for fill in fills if fill["side"] == "buy") == Decimal(str(amount))
    assert all(
        client_id.startswith("ccxt_") for client_id in (buy["client_order_id"], sell["client_order_id"])
    )
