"""The live demo against a real server: a `simulated` feed prices the markets through the market-data
router (seen in /ready and the feed metrics), the bots keep every open book two-sided and leave a
settled market alone, a restart keeps the demo user's cash account and API key, and the banner fits
an 80-column terminal."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.cells import cell_len
from rich.console import Console

from tests.e2e.test_api_harness import free_port
from tradehall.cli.demo_cmd import DemoBots, banner, run_demo
from tradehall.cli.feeds_cmd import feed_rows
from tradehall.service.demo import DEMO_USER, DemoInfo, DemoState, feed_config_path, state_path
from tradehall.service.settings import Settings

ADMIN_PASSWORD = "demo-admin"
MARKETS = ["BTC-USD", "BTC-PERP", "ETH-PERP", "FED-CUT-DEC"]


def demo_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, fsync="none", admin_password=ADMIN_PASSWORD, jwt_secret="s" * 40)


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds (a bound, not a wait for luck)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def with_demo(
    data_dir: Path, body: Callable[[str, DemoInfo, DemoBots], Awaitable[None]], *, seed: int = 11
) -> DemoInfo:
    """Runs the demo on a free port while `body` watches it, then stops it cleanly."""
    port = free_port()
    stop = asyncio.Event()
    ready: asyncio.Queue[DemoInfo] = asyncio.Queue()
    bots = DemoBots(seed, 0.2)
    demo = asyncio.create_task(
        run_demo(
            demo_settings(data_dir),
            port=port,
            seed_value=seed,
            interval=0.2,
            on_ready=ready.put_nowait,
            bots=bots,
            until=stop,
            duration=120.0,
        )
    )
    try:
        info = await asyncio.wait_for(ready.get(), 60.0)
        await body(f"http://127.0.0.1:{port}", info, bots)
    finally:
        stop.set()
        result = await demo
    return result


async def admin_token(http: httpx.AsyncClient) -> dict[str, str]:
    response = await http.post("/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_demo_markets_are_priced_by_the_simulated_feed_and_two_sided(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def body(url: str, info: DemoInfo, bots: DemoBots) -> None:
        async with httpx.AsyncClient(base_url=url) as http:

            async def two_sided() -> bool:
                for symbol in MARKETS:
                    book = (await http.get(f"/markets/{symbol}/book")).json()
                    if not (book["bids"] and book["asks"]):
                        return False
                return True

            await until(two_sided, "every demo book two-sided")
            ready = (await http.get("/ready")).json()
            seen["ready"] = ready
            first = (await http.get("/markets/BTC-PERP")).json()["mark_price"]

            async def mark_moved() -> bool:
                return bool((await http.get("/markets/BTC-PERP")).json()["mark_price"] != first)

            await until(mark_moved, "the simulated feed to move the BTC-PERP mark")
            seen["metrics"] = (await http.get("/metrics")).text
            seen["accounts"] = (await http.get("/accounts", headers={"X-API-Key": info.demo_api_key})).json()

    info = await with_demo(tmp_path, body)
    assert info.markets == MARKETS
    assert info.demo_api_key.startswith("th_")
    assert seen["ready"]["checks"]["feeds"]["ok"] is True
    rows = feed_rows(seen["ready"])  # what `tradehall feeds status` shows
    assert [row["feed"] for row in rows] == ["simulated"]
    assert rows[0]["healthy"] is True and rows[0]["connected"] is True and rows[0]["messages"] > 0
    assert re.search(r'tradehall_feed_messages_total\{feed="simulated"\} [1-9]', seen["metrics"])
    assert 'tradehall_feed_up{feed="simulated"} 1.0' in seen["metrics"]
    # the feed's configuration is a real market-data config routing every demo market as its mark
    config = json.loads(feed_config_path(tmp_path).read_text())
    assert [i["name"] for i in config["simulated"]] == MARKETS
    assert [(r["market"], r["sources"], r["commands"]) for r in config["routes"]] == [
        (m, [f"simulated:{m}"], "mark") for m in MARKETS
    ]
    account = seen["accounts"]["items"][0]
    assert account["id"] == info.demo_account and account["kind"] == "cash"
    assert account["balance"] == "100000.00"
    assert list((tmp_path / "snapshots").glob("*.snap")), "a clean stop writes a snapshot"


def api_key_count(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "tradehall.sqlite3") as db:
        row = db.execute(
            "SELECT count(*) FROM api_keys JOIN users ON users.id = api_keys.user_id"
            " WHERE users.username = ?",
            (DEMO_USER,),
        ).fetchone()
    return int(row[0])


async def test_a_restart_keeps_the_demo_cash_account_the_api_key_and_the_marks(tmp_path: Path) -> None:
    async def first_run(url: str, info: DemoInfo, bots: DemoBots) -> None:
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": info.demo_api_key}) as http:
            # the newcomer's case: the demo user opens an assessment account (which later failed)
            tier = (await http.get("/tiers")).json()["items"][0]["name"]
            created = await http.post(
                "/accounts", json={"kind": "assessment", "currency": "USD", "tier": tier}
            )
            assert created.status_code == 201, created.text

        async def bots_priced() -> bool:
            return len(bots.marks) == len(MARKETS)

        await until(bots_priced, "a bot round on every market")

    keys_seen: dict[str, Any] = {}

    async def second_run(url: str, info: DemoInfo, bots: DemoBots) -> None:
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": info.demo_api_key}) as http:
            response = await http.get(f"/accounts/{info.demo_account}")
            keys_seen["status"] = response.status_code
            keys_seen["kind"] = response.json()["kind"]

    info1 = await with_demo(tmp_path, first_run)
    assert api_key_count(tmp_path) == 1
    saved = DemoState.load(state_path(tmp_path))
    assert (saved.account_id, saved.api_key) == (info1.demo_account, info1.demo_api_key)
    assert set(saved.marks) == set(MARKETS)
    assert oct(state_path(tmp_path).stat().st_mode & 0o777) == "0o600"

    info2 = await with_demo(tmp_path, second_run)
    assert info2.demo_account == info1.demo_account
    assert info2.demo_api_key == info1.demo_api_key and info2.api_key_reused
    assert not info1.api_key_reused
    assert api_key_count(tmp_path) == 1
    assert keys_seen == {"status": 200, "kind": "cash"}
    # the walk went on from the marks the first run saved
    starts = {i["name"]: i["start"] for i in json.loads(feed_config_path(tmp_path).read_text())["simulated"]}
    assert starts == saved.marks

    # a lost state file: the cash account is still found (never the assessment); the key is new
    state_path(tmp_path).write_text("not json")
    info3 = await with_demo(tmp_path, second_run)
    assert info3.demo_account == info1.demo_account
    assert not info3.api_key_reused and api_key_count(tmp_path) == 2
    assert keys_seen == {"status": 200, "kind": "cash"}


async def test_the_bots_stop_trading_a_settled_market(tmp_path: Path) -> None:
    symbol = "FED-CUT-DEC"
    seen: dict[str, Any] = {}

    async def body(url: str, info: DemoInfo, bots: DemoBots) -> None:
        stats = bots.stats

        async def quoting() -> bool:
            return stats.placed[symbol] > 0

        await until(quoting, "the maker quoting the binary market")
        async with httpx.AsyncClient(base_url=url) as http:
            headers = await admin_token(http)
            settled = await http.post(
                f"/admin/markets/{symbol}/settle", json={"outcome": "yes"}, headers=headers
            )
            assert settled.status_code == 200, settled.text
            settled_round = stats.rounds

            def rounds_after(count: int) -> Callable[[], Awaitable[bool]]:
                async def done() -> bool:
                    return stats.rounds >= settled_round + count

                return done

            # a round in flight at the settlement may still have placed orders; the next one must not
            await until(rounds_after(2), "two bot rounds after the settlement")
            before = (stats.placed[symbol], sum(n for (m, _), n in stats.refused.items() if m == symbol))
            btc_before = stats.placed["BTC-PERP"]
            await until(rounds_after(6), "four more bot rounds")
            seen["after"] = (
                stats.placed[symbol],
                sum(n for (m, _), n in stats.refused.items() if m == symbol),
            )
            seen["before"] = before
            seen["btc"] = (btc_before, stats.placed["BTC-PERP"])
            seen["paused"] = dict(stats.paused)
            book = (await http.get(f"/markets/{symbol}/book")).json()
            seen["book"] = (book["bids"], book["asks"])

    await with_demo(tmp_path, body)
    assert seen["after"] == seen["before"], "no order placed or refused on the settled market"
    assert seen["paused"] == {symbol: "settled"}
    assert seen["book"] == ([], [])
    btc_before, btc_after = seen["btc"]
    assert btc_after > btc_before, "the other markets keep trading"


def render(info: DemoInfo) -> list[str]:
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(banner(info, 123456))
    return console.export_text().rstrip("\n").split("\n")


@pytest.mark.parametrize("reused", [False, True])
def test_the_banner_fits_80_columns_and_says_how_to_run_the_cli(tmp_path: Path, reused: bool) -> None:
    key = "th_" + "K" * 43
    info = DemoInfo(
        url="http://127.0.0.1:65535",
        admin_user="admin",
        admin_password="admin",
        demo_user="demo",
        demo_password="demo-password",
        demo_account="acc_0123456789abcdef0123",
        demo_api_key=key,
        markets=MARKETS,
        api_key_reused=reused,
        data_dir=tmp_path / ("a-long-directory-name" * 6),
    )
    lines = render(info)
    assert max(cell_len(line) for line in lines) <= 80, "\n".join(lines)
    text = "\n".join(lines)
    assert ".venv/bin/tradehall account show acc_0123456789abcdef0123" in text
    assert f"export TRADEHALL_API_KEY={key}" in text
    assert "export TRADEHALL_URL=http://127.0.0.1:65535" in text
    assert "account    acc_0123456789abcdef0123 (cash, USD)" in text
    assert ("kept from the last run" in text) is reused


@pytest.mark.slow
def test_tradehall_demo_prints_a_fitting_banner_and_serves_on_uvloop(tmp_path: Path) -> None:
    """The command itself, in a process of its own: a wide terminal must not make the banner wider."""
    port = free_port()
    env = {**os.environ, "COLUMNS": "200", "TRADEHALL_ADMIN_PASSWORD": ADMIN_PASSWORD}
    script = "import typer; from tradehall.cli.demo_cmd import demo; typer.run(demo)"
    args = ["--port", str(port), "--data-dir", str(tmp_path), "--duration", "1", "--interval", "0.2"]
    done = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    framed = [line for line in output.splitlines() if line[:1] in "╭│╰"]
    assert len(framed) > 10, output
    assert max(cell_len(line) for line in framed) <= 80, output
    assert ".venv/bin/tradehall book BTC-PERP" in output
    assert re.search(r"demo_serving .*loop=uvloop", output), output
    assert "demo stopped" in output
