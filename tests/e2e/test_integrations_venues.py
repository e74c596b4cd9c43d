"""A server whose market-data configuration runs the OKX and Bybit feeds against fake venues
(tests/fakes/venues.py): each prices its own quote-venue market of one instrument
(`BTC-USD.OKX`, `BTC-USD.BYBIT`), orders fill at each venue's ask with that market's fee, and
/ready, /metrics and `tradehall feeds status` show both feeds."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_api_harness import Server, running_server
from tests.fakes.http_server import FakeHttpServer
from tests.fakes.venues import FakeBybit, FakeOkx, FakeVenueBook
from tests.fakes.ws import FakeWsServer

pytestmark = pytest.mark.timeout(90)


async def until(probe: Callable[[], Any], accept: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(probe)
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        await asyncio.sleep(0.05)


@pytest.fixture
async def venues() -> AsyncIterator[tuple[FakeOkx, FakeBybit]]:
    servers = [FakeWsServer(), FakeHttpServer(), FakeWsServer(), FakeHttpServer()]
    for server in servers:
        await server.start()
    okx = FakeOkx(servers[1], servers[0], "BTC-USDT", FakeVenueBook({"67000.1": "2"}, {"67000.3": "1.5"}))  # type: ignore[arg-type]
    bybit = FakeBybit(
        servers[3], servers[2], "BTCUSDT", FakeVenueBook({"67000.00": "3"}, {"67000.20": "0.7"})
    )  # type: ignore[arg-type]
    yield okx, bybit
    for server in servers:
        await server.stop()


async def test_okx_and_bybit_price_their_venue_markets_and_show_in_ready(
    venues: tuple[FakeOkx, FakeBybit], tmp_path: Path
) -> None:
    okx, bybit = venues
    config = {
        "okx_instruments": ["BTC-USDT"],
        "okx_channels": ["books", "trades"],
        "okx_verify_checksum": True,
        "bybit_symbols": ["BTCUSDT"],
        "routes": [
            {"market": "BTC-USD.OKX", "sources": ["okx:BTC-USDT"], "min_interval": 0},
            {"market": "BTC-USD.BYBIT", "sources": ["bybit:BTCUSDT"], "min_interval": 0},
        ],
        "endpoints": {
            "okx_ws_url": okx.ws.url,
            "okx_rest_root": okx.http.url,
            "bybit_ws_root": bybit.ws.url,
            "bybit_rest_root": bybit.http.url,
        },
    }
    path = tmp_path / "marketdata.json"
    path.write_text(json.dumps(config))
    context = running_server(tmp_path / "data", marketdata_config=path)
    server: Server = await asyncio.to_thread(context.__enter__)
    try:
        admin = server.admin()
        common = {
            "kind": "spot",
            "base": "BTC",
            "quote": "USD",
            "lot_size": "0.001",
            "venue": "quote",
            "slippage": "0",
        }
        await asyncio.to_thread(
            admin.create_market,
            symbol="BTC-USD.OKX",
            instrument="BTC-USD",
            tick_size="0.1",
            taker_fee="0.0008",
            **common,
        )
        await asyncio.to_thread(
            admin.create_market,
            symbol="BTC-USD.BYBIT",
            instrument="BTC-USD",
            tick_size="0.01",
            taker_fee="0.001",
            **common,
        )
        await okx.ws.wait_connected()
        await bybit.ws.wait_connected()
        # the snapshots came before the markets existed: move each book once
        await okx.update("bid", "67000.2", "1")
        await bybit.delta("bid", "67000.10", "1")

        def ticker(symbol: str) -> dict[str, Any]:
            return httpx.get(f"{server.url}/markets/{symbol}/ticker").json()  # type: ignore[no-any-return]

        quoted = await until(lambda: ticker("BTC-USD.OKX"), lambda t: t["bid"] == "67000.2")
        assert quoted["ask"] == "67000.3"
        quoted = await until(lambda: ticker("BTC-USD.BYBIT"), lambda t: t["bid"] == "67000.1")
        assert quoted["ask"] == "67000.2"

        trader, account_id = await asyncio.to_thread(server.trader)
        for market in ("BTC-USD.OKX", "BTC-USD.BYBIT"):
            order = await asyncio.to_thread(
                trader.place_order, account_id, market, "buy", "0.01", None, type="market"
            )
            assert order["status"] == "filled", order
        fills = await asyncio.to_thread(trader.trades, account_id=account_id)
        by_market = {f["market"]: (f["price"], f["quantity"], f["fee"]) for f in fills["items"]}
        # 0.01 x 67,000.3 = 670.003: 0.08 % = 0.536 → 0.54; 0.01 x 67,000.2 = 670.002: 0.1 % → 0.68
        assert by_market == {
            "BTC-USD.OKX": ("67000.3", "0.01", "0.54"),
            "BTC-USD.BYBIT": ("67000.2", "0.01", "0.68"),
        }

        ready = httpx.get(f"{server.url}/ready").json()
        feeds = {feed["feed"]: feed for feed in ready["checks"]["feeds"]["feeds"]}
        assert set(feeds) == {"okx", "bybit"}
        assert (feeds["okx"]["connected"], feeds["okx"]["mode"]) == (True, "stream")
        assert feeds["bybit"]["ignored"]["subscribe"] == 1
        assert feeds["okx"]["errors"] == 0  # every checksum matched
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from tradehall.cli.main import app; app()",
            *("feeds", "status", "--url", server.url, "--json"),
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await process.communicate()
        assert process.returncode == 0, output
        assert sorted((row["feed"], row["healthy"]) for row in json.loads(output)) == [
            ("bybit", True),
            ("okx", True),
        ]
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'tradehall_feed_up{feed="okx"} 1.0' in metrics
        assert 'tradehall_feed_up{feed="bybit"} 1.0' in metrics
    finally:
        await asyncio.to_thread(context.__exit__, None, None, None)
