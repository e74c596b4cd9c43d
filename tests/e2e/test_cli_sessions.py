"""`tradehall session start|list|show|pause|resume|stop` against a real server (manual clock)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from tests.e2e.test_api_harness import running_server
from tests.e2e.test_api_sessions import START, STRATEGIES, eventually, quote_market, rfc3339
from tests.e2e.test_cli_commands import cli, cli_json
from tradehall.cli import common
from tradehall.cli.common import EXIT_REFUSED


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    """The server runs in this process: its logs go to stderr, not into the CLI's captured output."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.__stderr__))
    width = common.console.width
    common.console.width = 220
    try:
        yield
    finally:
        common.console.width = width
        structlog.configure(**saved)


def test_the_session_commands(tmp_path: Path, quiet_logs: None) -> None:
    overrides = {"clock": "manual", "clock_tick_seconds": 0, "strategies_dir": STRATEGIES}
    with running_server(tmp_path / "data", **overrides) as server:
        admin = server.admin()
        admin.move_clock(set_to=rfc3339(START + timedelta(days=1)))
        quote_market(admin)
        client, account_id = server.trader()
        key = client.create_api_key("cli")["api_key"]
        user = ["--url", server.url, "--api-key", key]
        started = cli_json(
            "session", "start", account_id, "--market", "SIM-USD", "--strategy", "scripted",
            "--param", "script=buy@1", "--setting", "interval_seconds=60",
            "--setting", "max_position_size=1000", "--setting", "stop_loss_percent=2",
            "--setting", "allow_short=false", *user,
        )  # fmt: skip
        assert (started["status"], started["markets"]) == ("running", ["SIM-USD"])
        [strategy] = started["strategies"]
        assert strategy == {"name": "scripted", "weight": "1", "parameters": {"script": "buy@1"}}
        settings = started["settings"]
        assert (settings["interval_seconds"], settings["stop_loss_percent"]) == (60, "2")
        assert settings["allow_short"] is False
        session_id = started["id"]

        # a cycle: the clock runs from the session's start (START + 1 day) in 60 s steps
        cycles_start = START + timedelta(days=1)
        admin.move_clock(set_to=rfc3339(cycles_start + timedelta(seconds=55)))
        admin.set_price("SIM-USD", "100", bid="99.95", ask="100.05")
        admin.move_clock(set_to=rfc3339(cycles_start + timedelta(seconds=60)))

        listed = cli_json("session", "list", *user)
        assert [s["id"] for s in listed["items"]] == [session_id]
        show = eventually(
            lambda: cli_json(
                "session", "show", session_id, "--signals", "5", "--orders", "5", "--performance", *user
            ),
            lambda shown: len(shown["decisions"]) == 1 and shown["decisions"][0]["status"] == "placed",
        )
        assert show["session"]["id"] == session_id and show["session"]["cycles"] == 1
        assert [(s["action"], s["reason"]) for s in show["signals"]] == [("buy", "bar 1")]
        [order] = show["orders"]
        # a stop-loss alone: an entry with one exit (oto)
        assert (order["side"], order["status"], order["order_class"]) == ("buy", "filled", "oto")
        assert [(leg["type"], leg["stop_price"]) for leg in order["legs"]] == [("stop", "98")]
        assert "metrics" in show["performance"] and show["performance"]["metrics"]["annualization"] == 365
        table = cli("session", "show", session_id, *user)
        assert table.exit_code == 0, table.output
        assert session_id in table.output and "scripted" in table.output

        assert cli_json("session", "pause", session_id, *user)["status"] == "paused"
        assert cli_json("session", "resume", session_id, *user)["status"] == "running"
        assert cli_json("session", "stop", session_id, *user)["status"] == "stopped"
        refused = cli("session", "resume", session_id, *user)
        assert refused.exit_code == EXIT_REFUSED
        assert f"409 conflict: session {session_id} is stopped" in refused.output
        start = ("session", "start", account_id, "--market", "SIM-USD", "--strategy", "scripted")
        bad = cli(*start, "--param", "x", *user)
        assert bad.exit_code == EXIT_REFUSED and "--param takes key=value, not 'x'" in bad.output
        unknown = cli(
            "session", "start", account_id, "--market", "SIM-USD", "--strategy", "scripted",
            "--setting", "stop_loss_percnt=2", *user,
        )  # fmt: skip
        assert unknown.exit_code == EXIT_REFUSED
        assert "400 invalid_request: unknown setting(s) ['stop_loss_percnt']" in unknown.output
