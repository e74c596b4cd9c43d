"""A server with TRADEHALL_MARKETDATA_CONFIG: fake Binance and CoinGecko (tests/fakes, on 127.0.0.1)
set quotes and marks, a quote-venue order fills at the fake's price through the HTTP API, /ready and
`tradehall feeds status` show the feeds, and the quote venue's candles land in the read models."""

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
from tests.fakes.providers import BinanceState, serve_binance_rest, serve_coingecko
from tests.fakes.ws import FakeWsServer

pytestmark = pytest.mark.timeout(90)


def book_ticker(bid: str, ask: str) -> dict[str, object]:
    return {
        "stream": "btcusdt@bookTicker",
        "data": {"u": 1, "s": "BTCUSDT", "b": bid, "B": "1.5", "a": ask, "A": "2"},
    }


async def until(probe: Callable[[], Any], accept: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Calls the blocking `probe` in a thread (the fakes live on this loop) until `accept` holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(probe)
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        await asyncio.sleep(0.05)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeWsServer, FakeHttpServer, FakeHttpServer]]:
    ws, rest, gecko = FakeWsServer(), FakeHttpServer(), FakeHttpServer()
    for server in (ws, rest, gecko):
        await server.start()
    serve_binance_rest(rest, BinanceState())
    serve_coingecko(gecko, {"bitcoin": 67187.34})
    yield ws, rest, gecko
    for server in (ws, rest, gecko):
        await server.stop()


def write_config(path: Path, ws: FakeWsServer, rest: FakeHttpServer, gecko: FakeHttpServer) -> Path:
    config = {
        "crypto_assets": [{"coingecko_id": "bitcoin", "symbol": "BTC"}],
        "crypto_interval": 0.1,
        "binance_symbols": ["BTCUSDT"],
        "binance_streams": ["bookTicker"],
        "routes": [
            {"market": "BTC-Q", "sources": ["binance:btcusdt"], "commands": "both", "min_interval": 0},
            {"market": "BTC-M", "sources": ["coingecko:bitcoin/usd"], "commands": "mark", "min_interval": 0},
        ],
        "endpoints": {
            "coingecko_roots": [gecko.url],
            "binance_ws_root": ws.url,
            "binance_rest_root": rest.url,
        },
    }
    path.write_text(json.dumps(config))
    return path


async def test_fake_feeds_price_markets_and_a_quote_venue_order_fills_at_the_fakes_ask(
    fakes: tuple[FakeWsServer, FakeHttpServer, FakeHttpServer], tmp_path: Path
) -> None:
    ws, rest, gecko = fakes
    config = write_config(tmp_path / "marketdata.json", ws, rest, gecko)
    # start and stop the server off this loop: the fakes must keep answering (a close handshake too)
    context = running_server(tmp_path / "data", marketdata_config=config)
    server: Server = await asyncio.to_thread(context.__enter__)
    try:
        admin = server.admin()
        common = {"base": "BTC", "quote": "USD", "tick_size": "0.01", "lot_size": "0.001"}
        await asyncio.to_thread(
            admin.create_market, symbol="BTC-Q", kind="spot", venue="quote", slippage="0", **common
        )
        await asyncio.to_thread(admin.create_market, symbol="BTC-M", kind="perp", max_leverage="10", **common)
        await ws.wait_connected()
        await ws.push(book_ticker("67000.10000000", "67000.20000000"))
        await ws.push(book_ticker("67001.00000000", "67001.50000000"))

        def ticker(symbol: str) -> dict[str, Any]:
            return httpx.get(f"{server.url}/markets/{symbol}/ticker").json()  # type: ignore[no-any-return]

        quoted = await until(lambda: ticker("BTC-Q"), lambda t: t["mark"] == "67001.25")
        assert (quoted["bid"], quoted["ask"]) == ("67001", "67001.5")
        marked = await until(lambda: ticker("BTC-M"), lambda t: t["mark"] is not None)
        assert marked["mark"] == "67187.34"

        trader, account_id = await asyncio.to_thread(server.trader)
        order = await asyncio.to_thread(
            trader.place_order, account_id, "BTC-Q", "buy", "0.01", None, type="market"
        )
        assert order["status"] == "filled"
        fills = await asyncio.to_thread(trader.trades, account_id=account_id)
        assert [(f["price"], f["quantity"]) for f in fills["items"]] == [("67001.5", "0.01")]

        ready = httpx.get(f"{server.url}/ready").json()
        feeds = {feed["feed"]: feed for feed in ready["checks"]["feeds"]["feeds"]}
        assert set(feeds) == {"binance", "crypto_prices"}
        assert feeds["binance"]["connected"] is True
        assert ready["checks"]["bus"] == {"ok": True, "backend": "inproc"}
        # the CLI in its own process (this one's stdout also carries the server's log)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from tradehall.cli.main import app; app()",
            *("feeds", "status", "--url", server.url, "--json"),
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await process.communicate()
        assert process.returncode == 0, output
        rows = json.loads(output)
        assert [(row["feed"], row["healthy"]) for row in rows] == [("binance", True), ("crypto_prices", True)]
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'tradehall_feed_up{feed="binance"} 1.0' in metrics

        # the quote venue's candle: OHLC of the mids, no volume (quotes are not trades)
        def day() -> list[dict[str, Any]]:
            return httpx.get(f"{server.url}/markets/BTC-Q/candles", params={"interval": "1d"}).json()["items"]  # type: ignore[no-any-return]

        candles = await until(day, lambda items: bool(items) and items[-1]["close"] == "67001.25")
        assert candles[0]["volume"] == "0"
        assert [(c["open"], c["high"], c["low"], c["close"]) for c in candles] == [
            ("67000.15", "67001.25", "67000.15", "67001.25")
        ]
    finally:
        await asyncio.to_thread(context.__exit__, None, None, None)
