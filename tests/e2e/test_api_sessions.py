"""Live sessions through a real server: start one over HTTP, see its bars become signals (also on the
WebSocket `signals` and `sessions` channels), its decision become an order with its exits, pause and
resume it, restart the server and see it carry on where it stopped, stop it; and every refusal.

The server runs on the manual clock (TRADEHALL_CLOCK=manual): a cycle ends when `POST /admin/clock`
moves time past it, prices come from `POST /admin/markets/{s}/price`. The session works on the
journal's records asynchronously, so the test waits on what the API shows (`cycles`), with a deadline.
The demo's simulated feed drives a session in `test_a_session_on_the_demo_simulated_feed_signals`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_api_harness import running_server
from tradehall.client import ApiError, Client, Stream
from tradehall.marketdata.config import MarketDataConfig, RouteConfig, SimulatedInstrumentConfig
from tradehall.marketdata.router import CommandKind

STRATEGIES = Path(__file__).parents[1] / "data" / "strategies"
START = (datetime.now(UTC) + timedelta(days=400)).replace(second=0, microsecond=0)


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def eventually(read: Callable[[], Any], check: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    """Reads until `check` holds: the session works on durable records in its own task."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if check(value):
            return value
        assert time.monotonic() < deadline, value
        time.sleep(0.02)


def refused(call: Callable[[], Any]) -> tuple[int, str, str]:
    with pytest.raises(ApiError) as error:
        call()
    return error.value.status, error.value.code, error.value.detail


def quote_market(admin: Client) -> None:
    admin.create_market(
        symbol="SIM-USD",
        kind="spot",
        venue="quote",
        base="SIM",
        quote="USD",
        tick_size="0.01",
        lot_size="0.001",
        slippage="0",
    )


class Cycles:
    """Moves the manual clock cycle by cycle (60 s from START), with a fresh quote 5 s before each end."""

    def __init__(self, admin: Client) -> None:
        self.admin = admin

    def run(self, trader: Client, session_id: str, n: int, mid: str | None) -> dict[str, Any]:
        if mid is not None:
            self.admin.move_clock(set_to=rfc3339(START + timedelta(seconds=n * 60 - 5)))
            price = float(mid)
            self.admin.set_price("SIM-USD", mid, bid=f"{price - 0.05:.2f}", ask=f"{price + 0.05:.2f}")
        self.admin.move_clock(set_to=rfc3339(START + timedelta(seconds=n * 60)))
        if mid is None:
            return trader.session(session_id)  # type: ignore[no-any-return]
        return eventually(lambda: trader.session(session_id), lambda s: s["cycles"] >= n)  # type: ignore[no-any-return]


def decisions(trader: Client, session_id: str) -> list[dict[str, Any]]:
    return list(reversed(trader.session_decisions(session_id)["items"]))


SETTINGS = {
    "interval_seconds": 60,
    "max_position_size": "1000",
    "stop_loss_percent": "2",
    "take_profit_percent": "4",
    "trailing_stop_percent": "1",
}


async def _drain(stream: Stream, until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while not until(seen):
        message = await stream.next(timeout=10)
        if message.get("channel") in ("sessions", "signals"):
            seen.append(message)
    return seen


async def test_a_session_through_the_api_signals_orders_pauses_restarts_and_stops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    overrides = {"clock": "manual", "clock_tick_seconds": 0, "strategies_dir": STRATEGIES}
    with running_server(data, **overrides) as server:
        admin = server.admin()
        admin.move_clock(set_to=rfc3339(START))
        quote_market(admin)
        trader, account_id = server.trader()
        token = trader.auth_token
        async with Stream(server.url, token=token) as stream:
            await stream.auth()
            assert (await stream.subscribe(["sessions", "signals"]))["channels"] == ["sessions", "signals"]
            body = {"name": "scripted", "parameters": {"script": "buy@2,sell@4"}}
            session = await asyncio.to_thread(trader.start_session, account_id, ["SIM-USD"], [body], SETTINGS)
            assert (session["status"], session["markets"], session["cycles"]) == ("running", ["SIM-USD"], 0)
            assert session["strategies"] == [
                {"name": "scripted", "weight": "1", "parameters": body["parameters"]}
            ]
            assert session["settings"]["stop_loss_percent"] == "2"
            assert session["settings"]["interval_seconds"] == 60
            session_id = session["id"]
            cycles = Cycles(admin)
            await asyncio.to_thread(cycles.run, trader, session_id, 1, "100")
            await asyncio.to_thread(cycles.run, trader, session_id, 2, "101")
            messages = await _drain(
                stream,
                lambda seen: any(m["data"].get("event") == "cycle" and m["data"]["cycle"] == 2 for m in seen),
            )
        signals = [m["data"] for m in messages if m["channel"] == "signals"]
        assert [(s["action"], s["price"], s["session_id"], s["account_id"]) for s in signals] == [
            ("hold", "100", session_id, account_id),
            ("buy", "101", session_id, account_id),
        ]
        created = [m["data"] for m in messages if m["data"].get("event") == "status"]
        assert [(s["id"], s["status"]) for s in created] == [(session_id, "running")]
        cycle_events = [m["data"] for m in messages if m["data"].get("event") == "cycle"]
        assert [(c["cycle"], c["bars"], c["signals"], c["orders"]) for c in cycle_events] == [
            (1, 1, 1, 0),
            (2, 1, 1, 1),
        ]

        rest_signals = trader.session_signals(session_id)["items"]
        assert [(s["strategy"], s["action"], s["confidence"], s["reason"]) for s in rest_signals] == [
            ("scripted", "buy", "1", "bar 2"),
            ("scripted", "hold", "1", "bar 1"),
        ]
        entry = eventually(lambda: decisions(trader, session_id), lambda d: len(d) == 3)
        assert [(d["action"], d["status"], d["reason"]) for d in entry] == [
            ("hold", "hold", "no majority"),
            ("buy", "placed", "scripted: bar 2"),
            ("sell", "placed", "trailing stop exit"),
        ]
        buy = trader.order(entry[1]["order_id"])
        assert (buy["status"], buy["side"], buy["filled_quantity"], buy["average_price"]) == (
            "filled",
            "buy",
            "9.9",
            "101.05",
        )
        assert buy["client_order_id"] == entry[1]["client_order_id"]
        # the session's stop-loss and take-profit (2 % and 4 % of the decision's 101) as the bracket's exits
        assert buy["order_class"] == "bracket"
        assert (buy["stop_loss"], buy["take_profit"]) == (
            {"stop_price": "98.98", "limit_price": None},
            {"limit_price": "105.04"},
        )
        legs = [
            (leg["type"], leg["side"], leg["quantity"], leg["price"], leg["stop_price"], leg["status"])
            for leg in buy["legs"]
        ]
        assert legs == [
            ("limit", "sell", "9.9", "105.04", None, "open"),
            ("stop", "sell", "9.9", None, "98.98", "pending_trigger"),
        ]
        assert buy["client_order_id"].startswith(session_id)
        trailing = trader.order(entry[2]["order_id"])
        assert (trailing["type"], trailing["status"], trailing["trail_percent"], trailing["quantity"]) == (
            "trailing_stop",
            "pending_trigger",
            "1",
            "9.9",
        )
        assert trailing["client_order_id"] == buy["client_order_id"] + "-t"

        paused = trader.pause_session(session_id)
        assert (paused["status"], paused["status_reason"]) == ("paused", "paused by the user")
        Cycles(admin).run(trader, session_id, 3, "102")  # bar 3 while paused: seen, not acted on
        assert len(decisions(trader, session_id)) == 3
        assert trader.resume_session(session_id)["status"] == "running"

    # a restart: the session comes back running, its strategy rebuilt from the stored bars (bar 4 next)
    with running_server(data, **overrides) as server:
        admin = server.admin()
        trader = Client(server.url, token=token)
        assert trader.session(session_id)["status"] == "running"
        Cycles(admin).run(trader, session_id, 4, "103")
        after = eventually(lambda: decisions(trader, session_id), lambda d: len(d) == 4)
        sell = after[3]
        assert (sell["action"], sell["status"], sell["reason"]) == ("sell", "placed", "scripted: bar 4")
        assert trader.order(sell["order_id"])["filled_quantity"] == "9.9"
        assert trader.order(entry[2]["order_id"])["status"] == "cancelled"  # the exits went with the position
        assert [leg["status"] for leg in trader.order(entry[1]["order_id"])["legs"]] == [
            "cancelled",
            "cancelled",
        ]
        assert trader.positions(account_id)["items"] == []
        placed = trader.session_orders(session_id)["items"]
        assert [(o["id"], o["type"], o["side"], o["status"]) for o in placed] == [
            (sell["order_id"], "market", "sell", "filled"),
            (entry[2]["order_id"], "trailing_stop", "sell", "cancelled"),
            (entry[1]["order_id"], "market", "buy", "filled"),
        ]
        assert len(placed[2]["legs"]) == 2
        report = trader.session_performance(session_id)
        assert [
            (t["market"], t["side"], t["quantity"], t["entry_price"], t["exit_price"], t["pnl"])
            for t in report["trades"]
        ] == [("SIM-USD", "long", "9.9", "101.05", "102.95", "18.81")]
        metrics = report["metrics"]
        assert (metrics["trades"], metrics["win_rate"], metrics["annualization"]) == (1, "1.0", 365)
        assert metrics["fees"] == "2.03" and metrics["exposure"] is None  # 0.1 % taker on each side
        assert report["open_trades"] == []
        assert [point[1] for point in report["equity"]][:2] == ["100000.00", "100000.00"]
        stopped = trader.stop_session(session_id)
        assert (stopped["status"], stopped["status_reason"]) == ("stopped", "stopped by the user")
        assert refused(lambda: trader.resume_session(session_id))[:2] == (409, "conflict")
        assert refused(lambda: trader.pause_session(session_id))[:2] == (409, "conflict")
        listed = trader.sessions()["items"]
        assert [(s["id"], s["status"]) for s in listed] == [(session_id, "stopped")]
        metrics = httpx.get(f"{server.url}/metrics").text
        # one registry per process: this test's two servers share it, so the counts are the sum of both
        placed = f'tradehall_session_orders_total{{result="placed",session="{session_id}"}} 3.0'
        assert placed in metrics
        assert f'tradehall_session_signals_total{{action="buy",session="{session_id}"}} 1.0' in metrics
        assert f'tradehall_session_cycle_seconds_count{{session="{session_id}"}} 4.0' in metrics
        assert f'tradehall_session_running{{session="{session_id}"}} 0.0' in metrics


def test_sessions_refuse_bad_input_and_other_users(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", strategies_dir=STRATEGIES) as server:
        admin = server.admin()
        quote_market(admin)
        trader, account_id = server.trader()
        other, other_account = server.trader()
        good = [{"name": "scripted"}]
        assert refused(lambda: trader.start_session(other_account, ["SIM-USD"], good)) == (
            403,
            "forbidden",
            f"account {other_account} belongs to another user",
        )
        assert refused(lambda: trader.start_session("acc_nope", ["SIM-USD"], good))[:2] == (404, "not_found")
        assert refused(lambda: trader.start_session(account_id, ["NOPE-USD"], good)) == (
            404,
            "not_found",
            "market NOPE-USD not found",
        )
        assert refused(lambda: trader.start_session(account_id, ["SIM-USD"], [{"name": "nope"}])) == (
            400,
            "invalid_request",
            "strategies[0].name: no strategy named 'nope'",
        )
        assert refused(
            lambda: trader.start_session(account_id, ["SIM-USD"], good, {"max_drawdown": "1.5"})
        ) == (400, "invalid_request", "settings.max_drawdown must be in (0, 1], not '1.5'")
        assert refused(lambda: trader.start_session(account_id, [], good))[:2] == (400, "invalid_request")
        assert trader.sessions()["items"] == []
        session = trader.start_session(account_id, ["SIM-USD"], good)
        assert refused(lambda: other.session(session["id"]))[:2] == (403, "forbidden")
        assert refused(lambda: other.stop_session(session["id"]))[:2] == (403, "forbidden")
        assert refused(lambda: other.session_decisions(session["id"]))[:2] == (403, "forbidden")
        assert refused(lambda: trader.session("ses_000000000000"))[:2] == (404, "not_found")
        assert refused(lambda: Client(server.url).session(session["id"]))[:2] == (401, "unauthorized")
        assert other.sessions()["items"] == []
        assert [s["id"] for s in admin.sessions(account_id)["items"]] == [session["id"]]


def _demo_feed(path: Path) -> Path:
    config = MarketDataConfig(
        simulated=[SimulatedInstrumentConfig(name="SIM-USD", start="100", tick="0.01", step_ticks=20.0)],
        simulated_seed=11,
        simulated_interval=0.02,
        routes=[RouteConfig(market="SIM-USD", sources=["simulated:SIM-USD"], commands=CommandKind.QUOTE)],
    )
    path.write_text(config.model_dump_json())
    return path


def test_a_session_on_the_demo_simulated_feed_signals(tmp_path: Path) -> None:
    """The demo's simulated feed quoting a paper market; a one-second, then an event-driven session."""
    feed = _demo_feed(tmp_path / "feed.json")
    with running_server(tmp_path / "data", marketdata_config=feed) as server:
        admin = server.admin()
        quote_market(admin)
        trader, account_id = server.trader()
        strategies = [{"name": "sma_crossover", "parameters": {"fast": 2, "slow": 3}}]
        timed = trader.start_session(account_id, ["SIM-USD"], strategies, {"interval_seconds": 1})
        driven = trader.start_session(account_id, ["SIM-USD"], strategies, {"event_driven": True})
        for session in (timed, driven):
            found = eventually(
                lambda s=session: trader.session_signals(s["id"])["items"],
                lambda items: len(items) >= 2,
                timeout=30,
            )
            assert {item["strategy"] for item in found} == {"sma_crossover"}
            assert all(item["market"] == "SIM-USD" and item["price"] is not None for item in found)
        assert eventually(lambda: trader.session(timed["id"])["cycles"], lambda n: n >= 2, timeout=30) >= 2
