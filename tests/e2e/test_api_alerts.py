"""The trading monitor through a real server: a flood of refused orders fires an alert that reaches
GET /alerts, /ready, GET /alerts/rules and the admin WebSocket channel `alerts`, then resolves.

The server's monitor loop is off (interval 0) and its clock is the test's: each evaluation is one
`tick()` run on the server's loop, so nothing waits on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tests.fakes.http_server import FakeHttpServer, Request, Response
from tradehall.api.monitor import MonitorRuntime
from tradehall.cli.main import app as cli_app
from tradehall.client import ApiError, AsyncClient

RULES = """
builtins = false

[[rules]]
name = "order_failure_rate_high"
metric = "order_failure_ratio"
condition = ">"
threshold = 0.01
window = "1m"
severity = "critical"
cooldown = "10m"
description = "More than 1 % of orders refused"
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000_000.0  # 2001-09-09T01:46:40Z: long before any real start

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("alerts")
    rules = data_dir / "alerts.toml"
    rules.write_text(RULES)
    with running_server(data_dir, monitor_interval_seconds=0, monitor_rules_file=rules) as live:
        create_demo_markets(live.admin())
        yield live


async def tick(server: Server) -> list[tuple[str, str]]:
    runtime: MonitorRuntime = server.app.state.monitor
    assert runtime.loop is not None
    future = asyncio.run_coroutine_threadsafe(runtime.monitor.tick(), runtime.loop)
    changes = await asyncio.wrap_future(future)
    return [(alert.rule, alert.status) for alert in changes]


async def test_refused_orders_fire_and_resolve_an_alert_everywhere(server: Server, tmp_path: Path) -> None:
    runtime: MonitorRuntime = server.app.state.monitor
    clock = Clock()
    runtime.monitor.clock = clock
    admin = server.admin()
    trader, account_id = server.trader(funded="10")
    assert await tick(server) == []  # the baseline
    assert admin.alerts()["items"] == []
    for bad in ({"rule": "Not A Rule"}, {"status": "open"}, {"cursor": "nope"}):
        with pytest.raises(ApiError) as refused_query:
            admin.alerts(**bad)
        assert (refused_query.value.status, refused_query.value.code) == (400, "invalid_request"), bad
    rules = admin.alert_rules()
    assert rules["health"] == "HEALTHY"
    listed = [
        (r["name"], r["metric"], r["threshold"], r["window_seconds"], r["firing"]) for r in rules["items"]
    ]
    assert listed == [("order_failure_rate_high", "order_failure_ratio", 0.01, 60.0, False)]

    async with AsyncClient(server.url).stream() as anonymous:
        await anonymous.send({"op": "subscribe", "channels": ["alerts"]})
        refused = await anonymous.next()
        assert (refused["code"], refused["channel"]) == ("unauthorized", "alerts")
    async with AsyncClient(server.url, token=trader.auth_token).stream() as outsider:
        await outsider.send({"op": "subscribe", "channels": ["alerts"]})
        refused = await outsider.next()
        assert (refused["code"], refused["channel"], refused["message"]) == (
            "forbidden", "alerts", "alerts is for admins"
        )
    with pytest.raises(ApiError) as denied:
        trader.alerts()
    assert (denied.value.status, denied.value.code) == (403, "forbidden")

    async with AsyncClient(server.url, token=admin.auth_token).stream() as stream:
        await stream.auth()
        assert (await stream.subscribe(["alerts"]))["channels"] == ["alerts"]
        snapshot = await stream.next()
        assert (snapshot["channel"], snapshot["type"], snapshot["data"]) == ("alerts", "snapshot", [])

        for _ in range(4):  # a flood of refused orders: 10 USD buys no bitcoin at 1000
            with pytest.raises(ApiError) as error:
                trader.place_order(account_id, "BTC-USD", "buy", "1", price="1000")
            assert error.value.code == "insufficient_balance"
        clock.now += 10
        assert await tick(server) == [("order_failure_rate_high", "firing")]
        update = await stream.next()
        assert (update["channel"], update["type"]) == ("alerts", "update")
        fired = update["data"]
        assert (fired["rule"], fired["severity"], fired["status"], fired["value"], fired["resolved_at"]) == (
            "order_failure_rate_high", "critical", "firing", 1.0, None
        )
        assert fired["started_at"] == "2001-09-09T01:46:50Z"
        assert admin.alerts()["items"] == [fired]
        ready = httpx.get(server.url + "/ready", timeout=10)
        assert ready.status_code == 200  # CRITICAL is reported, not a reason to leave the load balancer
        assert ready.json()["checks"]["monitor"] == {
            "ok": False, "health": "CRITICAL", "firing": ["order_failure_rate_high"], "rules": 1
        }
        assert admin.alert_rules()["items"][0]["firing"] is True
        status = CliRunner().invoke(
            cli_app, ["monitor", "status", "--json", "--url", server.url, "--token", admin.auth_token]
        )
        assert status.exit_code == 0, status.output
        assert '"health": "CRITICAL"' in status.output

        clock.now += 61  # no order within the last minute: nothing to judge
        assert await tick(server) == [("order_failure_rate_high", "resolved")]
        update = await stream.next()
        resolved = update["data"]
        assert (resolved["id"], resolved["status"], resolved["resolved_at"]) == (
            fired["id"], "resolved", "2001-09-09T01:47:51Z"
        )
        assert admin.alerts()["items"] == [resolved]
        assert admin.alerts(status="firing")["items"] == []
        assert admin.alert_rules()["health"] == "HEALTHY"


def test_a_critical_health_fails_readiness_when_configured_and_a_restart_resolves_it(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text(RULES)
    with running_server(
        tmp_path, monitor_interval_seconds=0, monitor_rules_file=rules, monitor_critical_not_ready=True
    ) as live:
        runtime: MonitorRuntime = live.app.state.monitor
        clock = Clock()
        runtime.monitor.clock = clock
        assert runtime.loop is not None
        asyncio.run_coroutine_threadsafe(runtime.monitor.tick(), runtime.loop).result(10)
        create_demo_markets(live.admin())
        trader, account_id = live.trader(funded="10")
        for _ in range(2):
            with pytest.raises(ApiError):
                trader.place_order(account_id, "BTC-USD", "buy", "1", price="1000")
        clock.now += 5
        asyncio.run_coroutine_threadsafe(runtime.monitor.tick(), runtime.loop).result(10)
        ready = httpx.get(live.url + "/ready", timeout=10)
        assert (ready.status_code, ready.json()["checks"]["monitor"]["health"]) == (503, "CRITICAL")
        [fired] = live.admin().alerts()["items"]
        assert fired["status"] == "firing"
    with running_server(tmp_path, monitor_interval_seconds=0, monitor_rules_file=rules) as again:
        # a new process starts with nothing firing: what the last one left firing is resolved at start
        [left] = again.admin().alerts()["items"]
        assert (left["id"], left["status"]) == (fired["id"], "resolved")
        assert left["resolved_at"] is not None and left["resolved_at"] > fired["started_at"]


async def test_a_hanging_webhook_receiver_leaves_the_server_responsive(tmp_path: Path) -> None:
    receiver = await FakeHttpServer().start()
    arrived = asyncio.Event()
    release = asyncio.Event()

    def hang(request: Request) -> Response:
        arrived.set()
        return Response(hold=release)

    receiver.route("/hook", hang)
    rules = tmp_path / "alerts.toml"
    rules.write_text(RULES)
    try:
        with running_server(
            tmp_path / "data",
            monitor_interval_seconds=0,
            monitor_rules_file=rules,
            alert_webhooks=[receiver.url + "/hook"],
            alert_webhook_timeout_seconds=60,
        ) as live:
            runtime: MonitorRuntime = live.app.state.monitor
            clock = Clock()
            runtime.monitor.clock = clock
            assert await tick(live) == []
            create_demo_markets(live.admin())
            trader, account_id = live.trader(funded="10")
            with pytest.raises(ApiError):
                trader.place_order(account_id, "BTC-USD", "buy", "1", price="1000")
            clock.now += 5
            assert await tick(live) == [("order_failure_rate_high", "firing")]
            await asyncio.wait_for(arrived.wait(), 10)  # the POST is in and its answer never comes
            async with httpx.AsyncClient(base_url=live.url, timeout=5) as http:
                assert (await http.get("/health")).status_code == 200
            order = trader.place_order(account_id, "BTC-USD", "buy", "0.001", price="1000")
            assert order["status"] == "open"
            assert [a["status"] for a in live.admin().alerts()["items"]] == ["firing"]
            clock.now += 61
            assert await tick(live) == [("order_failure_rate_high", "resolved")]  # the monitor goes on
            assert runtime.webhooks.queue.qsize() == 1  # the resolution waits behind the hanging POST
            release.set()
    finally:
        release.set()
        await receiver.stop()
