"""The live demo: seeded markets, users and bots keep every book two-sided and trading."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.e2e.test_api_harness import free_port
from tradehall.service.demo import DemoInfo, run_demo
from tradehall.service.settings import Settings


async def test_demo_serves_two_sided_moving_markets_and_stops_cleanly(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, fsync="none", admin_password="demo-admin", jwt_secret="s" * 40)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    seen: dict[str, object] = {}

    def on_ready(info: DemoInfo) -> None:
        seen["info"] = info

    async def observe() -> None:
        while "info" not in seen:
            await asyncio.sleep(0.1)
        await asyncio.sleep(4.0)
        async with httpx.AsyncClient(base_url=url) as client:
            for symbol in ("BTC-USD", "BTC-PERP", "ETH-PERP", "FED-CUT-DEC"):
                book = (await client.get(f"/markets/{symbol}/book")).json()
                seen[symbol] = book
            key = seen["info"].demo_api_key  # type: ignore[attr-defined]
            seen["account"] = (await client.get("/accounts", headers={"X-API-Key": key})).json()
            seen["ticker"] = (await client.get("/markets/BTC-PERP/ticker")).json()

    watcher = asyncio.create_task(observe())
    info = await run_demo(settings, port=port, seed_value=11, interval=0.3, on_ready=on_ready, duration=7.0)
    await watcher
    assert info.markets == ["BTC-USD", "BTC-PERP", "ETH-PERP", "FED-CUT-DEC"]
    assert info.demo_api_key.startswith("th_")
    for symbol in info.markets:
        book = seen[symbol]
        assert isinstance(book, dict)
        assert book["bids"] and book["asks"], symbol
        assert book["sequence"] > 1
    ticker = seen["ticker"]
    assert isinstance(ticker, dict) and ticker["last"] is not None
    account = seen["account"]
    assert isinstance(account, dict) and account["items"][0]["balance"] == "100000.00"
    snapshots = list((tmp_path / "snapshots").glob("*.snap"))
    assert snapshots, "a clean stop writes a snapshot"
