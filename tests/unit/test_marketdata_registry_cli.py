"""Feed registry for /ready and the `tradehall feeds status` command."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tradehall.cli import feeds_cmd
from tradehall.cli.main import app
from tradehall.marketdata.registry import FeedRegistry
from tradehall.marketdata.simulated import SimulatedFeed, SimulatedInstrument


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def sim(name: str, clock: FakeClock) -> SimulatedFeed:
    spec = SimulatedInstrument("SIM", start=Decimal("100"), tick=Decimal("0.01"))
    return SimulatedFeed([spec], lambda _: None, seed=1, clock=clock, name=name)


def test_registry_reports_each_feed_and_readiness() -> None:
    clock = FakeClock()
    fresh, silent = sim("sim_a", clock), sim("sim_b", clock)
    registry = FeedRegistry([silent, fresh], max_message_age_seconds=10)
    with pytest.raises(ValueError, match="sim_a"):
        registry.add(sim("sim_a", clock))
    fresh.set_connected(True, "stream")
    fresh.step(ts=1)
    clock.now += 3
    good, report = registry.ready_check()
    assert good is False
    assert [
        (row["feed"], row["healthy"], row["last_message_age_seconds"], row["messages"]) for row in report
    ] == [
        ("sim_a", True, 3.0, 1),
        ("sim_b", False, None, 0),
    ]
    assert report[0]["circuit"] == "closed" and report[0]["mode"] == "stream"
    silent.set_connected(False, "polling")  # stream down, REST fallback delivering: degraded, still healthy
    silent.step(ts=2)
    assert registry.ready_check()[0] is True
    clock.now += 11
    assert registry.ready_check()[0] is False
    fresh.step(ts=3)
    silent.step(ts=4)
    silent.set_connected(False, "stopped")
    assert [row["healthy"] for row in registry.ready_check()[1]] == [True, False]


READY = {
    "status": "ready",
    "checks": {
        "feeds": [
            {
                "feed": "binance",
                "connected": True,
                "mode": "stream",
                "circuit": "closed",
                "last_message_age_seconds": 0.25,
                "messages": 120,
                "errors": 1,
                "detail": {},
                "healthy": True,
            },
            {
                "feed": "kalshi",
                "connected": False,
                "mode": "polling",
                "circuit": "open",
                "last_message_age_seconds": None,
                "messages": 0,
                "errors": 7,
                "detail": {},
                "healthy": False,
            },
        ]
    },
}


def fake_get(body: Any, status: int = 200) -> Any:
    def get(url: str, timeout: float) -> httpx.Response:
        assert url == "http://example.test/ready"
        return httpx.Response(status, json=body, request=httpx.Request("GET", url))

    return get


def test_feeds_status_prints_a_table_and_fails_when_a_feed_is_unhealthy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feeds_cmd.httpx, "get", fake_get(READY, 503))
    result = CliRunner().invoke(app, ["feeds", "status", "--url", "http://example.test"])
    assert result.exit_code == 1
    assert "binance" in result.output and "kalshi" in result.output and "0.2s" in result.output


def test_feeds_status_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds_cmd.httpx, "get", fake_get(READY))
    result = CliRunner().invoke(app, ["feeds", "status", "--url", "http://example.test", "--json"])
    assert result.exit_code == 0
    assert [row["feed"] for row in json.loads(result.output)] == ["binance", "kalshi"]


def test_feeds_status_without_feeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds_cmd.httpx, "get", fake_get({"status": "ready", "checks": {}}))
    result = CliRunner().invoke(app, ["feeds", "status", "--url", "http://example.test"])
    assert result.exit_code == 0
    assert "no market-data feeds" in result.output


def test_feeds_status_when_the_server_is_down() -> None:
    result = CliRunner().invoke(app, ["feeds", "status", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 4


def test_feed_rows_accepts_a_dict_keyed_by_feed() -> None:
    rows = feeds_cmd.feed_rows({"checks": {"feeds": {"binance": {"connected": True}}}})
    assert rows == [{"feed": "binance", "connected": True}]


def test_feed_rows_reads_the_ready_shape_of_the_api() -> None:
    registry = FeedRegistry([sim("sim_a", FakeClock())])
    ok, feeds = registry.ready_check()
    body = {"status": "not_ready", "checks": {"feeds": {"ok": ok, "feeds": feeds}}}
    rows = feeds_cmd.feed_rows(json.loads(json.dumps(body)))
    assert [(row["feed"], row["healthy"], row["mode"]) for row in rows] == [("sim_a", False, "stopped")]
