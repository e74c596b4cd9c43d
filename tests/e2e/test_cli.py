"""The `tradehall` CLI against a real server: tables, --json, clear errors and exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
import structlog
from typer.testing import CliRunner

from tests.e2e.test_api_harness import ADMIN_PASSWORD, Server, create_demo_markets, free_port, running_server
from tradehall.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # the server runs in this process: its logs go to stderr, not into the CLI output under test
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.__stderr__))
    try:
        with running_server(tmp_path_factory.mktemp("cli")) as running:
            create_demo_markets(running.admin())
            yield running
    finally:
        structlog.configure(**saved)


def admin_args(server: Server) -> list[str]:
    return ["--url", server.url, "--user", "admin", "--password", ADMIN_PASSWORD]


def test_market_list_as_table_and_json(server: Server) -> None:
    table = runner.invoke(app, ["market", "list", "--url", server.url])
    assert table.exit_code == 0
    assert "BTC-PERP" in table.output
    as_json = runner.invoke(app, ["market", "list", "--url", server.url, "--json"])
    assert as_json.exit_code == 0
    symbols = {m["symbol"] for m in json.loads(as_json.output)["items"]}
    assert {"BTC-USD", "BTC-PERP", "FED-CUT"} <= symbols


def test_user_and_api_key_created_on_the_database_then_used_over_http(server: Server) -> None:
    env = {"TRADEHALL_DATA_DIR": str(server.settings.data_dir)}
    created = runner.invoke(app, ["user", "create", "cli_user", "--password", "pw-cli", "--json"], env=env)
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["role"] == "trader"
    again = runner.invoke(app, ["user", "create", "cli_user", "--password", "pw-cli"], env=env)
    assert again.exit_code == 2
    assert "conflict" in again.output
    key = runner.invoke(app, ["apikey", "create", "cli_user", "--json"], env=env)
    api_key = json.loads(key.output)["api_key"]
    opened = runner.invoke(
        app,
        [
            "account",
            "create",
            "--initial-balance",
            "1000",
            "--url",
            server.url,
            "--api-key",
            api_key,
            "--json",
        ],
    )
    assert opened.exit_code == 0, opened.output
    account_id = json.loads(opened.output)["id"]
    placed = runner.invoke(
        app,
        [
            "order",
            "place",
            account_id,
            "BTC-PERP",
            "buy",
            "0.001",
            "--price",
            "1000",
            "--url",
            server.url,
            "--api-key",
            api_key,
            "--json",
        ],
    )
    assert placed.exit_code == 0, placed.output
    order = json.loads(placed.output)
    listed = runner.invoke(app, ["order", "list", "--url", server.url, "--api-key", api_key])
    assert order["id"] in listed.output
    cancelled = runner.invoke(
        app, ["order", "cancel", order["id"], "--url", server.url, "--api-key", api_key, "--json"]
    )
    assert cancelled.exit_code == 0
    assert json.loads(cancelled.output)["status"] == "cancelled"


def test_refusals_print_one_line_and_exit_non_zero(server: Server) -> None:
    result = runner.invoke(app, ["market", "halt", "NOPE", *admin_args(server)])
    assert result.exit_code == 2
    assert "404 not_found" in result.output
    assert "Traceback" not in result.output
    bad_login = runner.invoke(
        app, ["positions", "--url", server.url, "--user", "admin", "--password", "wrong"]
    )
    assert bad_login.exit_code == 2
    assert "401 unauthorized" in bad_login.output


def test_no_server_is_exit_code_4() -> None:
    result = runner.invoke(app, ["market", "list", "--url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 4
    assert "cannot connect" in result.output


def test_admin_market_lifecycle_from_the_cli(server: Server) -> None:
    halted = runner.invoke(app, ["market", "halt", "FED-CUT", *admin_args(server)])
    assert halted.exit_code == 0
    assert "halted" in halted.output
    resumed = runner.invoke(app, ["market", "resume", "FED-CUT", *admin_args(server), "--json"])
    assert json.loads(resumed.output)["status"] == "open"


def test_book_once_prints_the_ladder(server: Server) -> None:
    result = runner.invoke(app, ["book", "BTC-USD", "--once", "--url", server.url, "--json"])
    assert result.exit_code == 0
    assert set(json.loads(result.output)) >= {"symbol", "sequence", "bids", "asks"}
