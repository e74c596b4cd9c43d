"""The whole CLI against a real server: every command of the API, exact values, the documented exit codes.

Each test creates its own market (through the CLI) so the prices and fees it checks are its own.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from click.testing import Result
from typer.testing import CliRunner

from tests.e2e.test_api_harness import ADMIN_PASSWORD, Server, free_port, running_server
from tradehall.cli import common
from tradehall.cli.main import app
from tradehall.client import Client

# no credentials from the environment of whoever runs the tests
CLEAN_ENV: dict[str, str | None] = dict.fromkeys(
    ("TRADEHALL_URL", "TRADEHALL_API_KEY", "TRADEHALL_TOKEN", "TRADEHALL_USER", "TRADEHALL_PASSWORD")
)
runner = CliRunner(env=CLEAN_ENV)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.__stderr__))
    width = common.console.width
    common.console.width = 220  # tables on one line each, whatever the terminal
    try:
        with running_server(tmp_path_factory.mktemp("cli_commands")) as running:
            yield running
    finally:
        common.console.width = width
        structlog.configure(**saved)


def admin_args(server: Server) -> list[str]:
    return ["--url", server.url, "--user", "admin", "--password", ADMIN_PASSWORD]


def cli(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return runner.invoke(app, list(args), env=env)


def cli_json(*args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def read_model(*args: str, until: Callable[[Any], bool] = lambda d: bool(d["items"])) -> Any:
    """A `--json` answer served from the read models, once `until` holds (at most 30 s).

    The server's read barrier waits at most 5 s for the projector; on a loaded machine it can take
    longer, so this polls (bounded) rather than trusting the timing."""
    deadline = time.monotonic() + 30.0
    while True:
        data = cli_json(*args)
        if until(data) or time.monotonic() > deadline:
            return data
        time.sleep(0.1)


def new_market(server: Server, kind: str = "perp", *extra: str) -> str:
    """A fresh market made with `market create` (maker fee 0.02 %, taker fee 0.1 %)."""
    symbol = f"C{uuid.uuid4().hex[:6].upper()}-{kind.upper()}"
    options = ["--max-leverage", "10"] if kind == "perp" else []
    created = cli_json(
        "market",
        "create",
        symbol,
        "--kind",
        kind,
        "--base",
        symbol.split("-")[0],
        "--tick-size",
        "0.5",
        "--lot-size",
        "0.001",
        "--maker-fee",
        "0.0002",
        "--taker-fee",
        "0.001",
        *options,
        *extra,
        *admin_args(server),
    )
    assert created["symbol"] == symbol
    return symbol


def trader(server: Server) -> tuple[str, str]:
    """A new user with a 100,000 USD cash account: (API key, account id)."""
    client, account_id = server.trader("100000")
    return client.create_api_key("cli")["api_key"], account_id


def as_user(server: Server, key: str) -> list[str]:
    return ["--url", server.url, "--api-key", key]


# ---- orders -----------------------------------------------------------------------------------------


def test_order_amend_then_cancel_all_by_market(server: Server) -> None:
    perp = new_market(server)
    spot = new_market(server, "spot")
    key, account = trader(server)
    me = as_user(server, key)
    first = cli_json("order", "place", account, perp, "buy", "0.01", "--price", "40000", *me)
    assert (first["status"], first["price"], first["quantity"]) == ("open", "40000", "0.01")

    amended = cli("order", "amend", first["id"], "--price", "39999.5", "--quantity", "0.02", *me)
    assert amended.exit_code == 0, amended.output
    assert "39999.5" in amended.output and "0.02" in amended.output
    shown = Client(server.url, api_key=key).order(first["id"])
    assert (shown["price"], shown["quantity"], shown["status"]) == ("39999.5", "0.02", "open")

    second = cli_json("order", "place", account, perp, "sell", "0.005", "--price", "60000", *me)
    other = cli_json("order", "place", account, spot, "buy", "0.01", "--price", "100", *me)
    on_perp = cli_json("order", "cancel-all", account, "--market", perp, *me)
    assert sorted((o["id"], o["status"]) for o in on_perp["items"]) == sorted(
        [(first["id"], "cancelled"), (second["id"], "cancelled")]
    )
    rest = cli("order", "cancel-all", account, *me)
    assert rest.exit_code == 0, rest.output
    assert "cancelled 1 order(s)" in rest.output
    assert other["id"] in rest.output
    assert Client(server.url, api_key=key).orders(account)["items"] == []


def test_amend_needs_something_to_change(server: Server) -> None:
    key, _account = trader(server)
    result = cli("order", "amend", "1", *as_user(server, key))
    assert result.exit_code == common.EXIT_REFUSED
    shown = " ".join(result.output.split())  # the console may wrap the line
    assert (
        "nothing to amend: give --price, --quantity, --stop-price, --trail-percent or --trail-price" in shown
    )


def test_place_passes_expiry_stops_and_bracket_prices(server: Server) -> None:
    perp = new_market(server)
    key, account = trader(server)
    me = as_user(server, key)
    expire = (datetime.now(UTC) + timedelta(days=3650)).replace(microsecond=0).isoformat()
    gtd = cli_json(
        "order", "place", account, perp, "buy", "0.01", "--price", "40000", "--expire-at", expire, *me
    )
    assert (gtd["time_in_force"], gtd["status"]) == ("gtd", "open")
    # with no trade yet there is no last price, so a stop waits (pending_trigger)
    stop = cli_json(
        "order", "place", account, perp, "sell", "0.01", "--type", "stop", "--stop-price", "30000", *me
    )
    assert (stop["type"], stop["status"], stop["stop_price"]) == ("stop", "pending_trigger", "30000")
    bracket = cli_json(
        "order", "place", account, perp, "buy", "0.01", "--price", "40000",
        "--stop-loss", "39000", "--take-profit", "42000", *me,
    )  # fmt: skip
    assert (bracket["status"], bracket["price"]) == ("open", "40000")
    assert (bracket["order_class"], bracket["take_profit"], bracket["stop_loss"], bracket["legs"]) == (
        "bracket",
        {"limit_price": "42000"},
        {"stop_price": "39000", "limit_price": None},
        [],  # the exits are placed when the entry fills
    )
    oto = cli(
        "order", "place", account, perp, "buy", "0.01", "--price", "40000", "--order-class", "oto",
        "--stop-loss", "39000", "--stop-loss-limit", "38900", *me,
    )  # fmt: skip
    assert oto.exit_code == 0, oto.output
    assert "oto: stop_loss 39000 limit 38900" in oto.output
    refused = cli(
        "order", "place", account, perp, "sell", "0.01", "--order-class", "oco",
        "--take-profit", "42000", "--stop-loss", "39000", *me,
    )  # fmt: skip
    assert refused.exit_code == common.EXIT_REFUSED
    assert "422 invalid_order" in refused.output  # an oco needs a position to exit


def test_place_passes_the_trigger_and_amend_moves_the_stop_price(server: Server) -> None:
    perp = new_market(server)
    key, account = trader(server)
    me = as_user(server, key)
    args = ["order", "place", account, perp, "sell", "0.01", "--type", "stop", "--stop-price", "30000"]
    placed = cli_json(*args, "--trigger", "mark", *me)
    assert (placed["status"], placed["trigger"]) == ("pending_trigger", "mark")
    moved = cli("order", "amend", placed["id"], "--stop-price", "31000", "--json", *me)
    assert moved.exit_code == 0, moved.output
    assert (json.loads(moved.output)["stop_price"], json.loads(moved.output)["status"]) == (
        "31000",
        "pending_trigger",
    )
    table = cli("order", "amend", placed["id"], "--stop-price", "32000", *me)
    assert table.exit_code == 0, table.output
    assert "32000" in table.output  # the stop column appears for a stop
    wrong = cli(*args, "--trigger", "sometimes", *me)
    assert wrong.exit_code == common.EXIT_REFUSED
    assert "422 invalid_order" in wrong.output


def test_place_a_trailing_stop_and_re_trail_it(server: Server) -> None:
    perp = new_market(server)
    server.admin().set_price(perp, "50000")  # the mark
    key, account = trader(server)
    me = as_user(server, key)
    args = ["order", "place", account, perp, "sell", "0.01", "--type", "trailing_stop", "--trigger", "mark"]
    placed = cli_json(*args, "--trail-percent", "1.5", *me)
    assert (placed["type"], placed["status"], placed["trail_percent"]) == (
        "trailing_stop",
        "pending_trigger",
        "1.5",
    )
    assert (placed["hwm"], placed["stop_price"]) == ("50000", "49250")  # 50,000 x 0.985
    table = cli("order", "amend", placed["id"], "--trail-price", "1000", *me)
    assert table.exit_code == 0, table.output
    assert "hwm" in table.output and "49000" in table.output  # the hwm and stop columns of a trailing stop
    shown = cli_json("order", "list", "--account-id", account, *me)
    assert [(o["trail_price"], o["stop_price"]) for o in shown["items"]] == [("1000", "49000")]
    refused = cli(*args, "--trail-percent", "1", "--trail-price", "5", *me)
    assert refused.exit_code == common.EXIT_REFUSED
    assert "422 invalid_order" in refused.output


# ---- positions, fills, market data ------------------------------------------------------------------


def test_trade_then_close_position_with_fees_trades_ticker_candles_and_book(server: Server) -> None:
    perp = new_market(server)
    maker_key, maker = trader(server)
    taker_key, taker = trader(server)
    cli_json("order", "place", maker, perp, "sell", "0.01", "--price", "50000", *as_user(server, maker_key))
    bought = cli_json("order", "place", taker, perp, "buy", "0.01", *as_user(server, taker_key))
    assert (bought["type"], bought["status"], bought["average_price"], bought["fees"]) == (
        "market",
        "filled",
        "50000",
        "0.50",
    )

    fills = read_model("trades", "--account-id", taker, *as_user(server, taker_key))["items"]
    assert [(f["account_id"], f["side"], f["price"], f["quantity"], f["fee"]) for f in fills] == [
        (taker, "buy", "50000", "0.01", "0.50")
    ]
    table = cli("trades", *as_user(server, taker_key))
    assert table.exit_code == 0, table.output
    row = next(line for line in table.output.splitlines() if bought["id"] in line)
    assert taker in row and "50000" in row and "0.50" in row and "taker" in row

    ticker = cli_json("ticker", perp, "--url", server.url)
    assert (ticker["symbol"], ticker["last"], ticker["ask"], ticker["volume_24h"]) == (
        perp,
        "50000",
        None,
        "0.01",
    )
    shown = cli("ticker", perp, "--url", server.url)
    assert shown.exit_code == 0 and "50000" in shown.output

    candles = read_model("candles", perp, "--interval", "1m", "--url", server.url)["items"]
    assert [(c["open"], c["high"], c["low"], c["close"], c["volume"]) for c in candles] == [
        ("50000", "50000", "50000", "50000", "0.01")
    ]
    assert "50000" in cli("candles", perp, "--url", server.url).output

    cli_json("order", "place", maker, perp, "buy", "0.01", "--price", "49000", *as_user(server, maker_key))
    book = cli("book", perp, "--once", "--url", server.url)
    assert book.exit_code == 0, book.output
    assert "last 50000" in book.output and "49000" in book.output
    assert cli_json("book", perp, "--url", server.url)["last"] == "50000"

    closed = cli_json("position", "close", perp, taker, *as_user(server, taker_key))
    assert (closed["side"], closed["status"], closed["average_price"], closed["fees"]) == (
        "sell",
        "filled",
        "49000",
        "0.49",
    )
    assert cli_json("positions", "--account-id", taker, *as_user(server, taker_key))["items"] == []
    account = Client(server.url, api_key=taker_key).account(taker)
    assert account["balance"] == "99989.01"  # 100,000 - 10 (the loss) - 0.50 - 0.49 (fees)


def test_leverage_set_capped_and_refused(server: Server) -> None:
    perp = new_market(server)
    key, account = trader(server)
    me = as_user(server, key)
    data = cli_json("account", "leverage", account, perp, "5", *me)
    assert data == {"account_id": account, "market": perp, "leverage": "5.00", "initial_margin": "0.2"}
    table = cli("account", "leverage", account, perp, "4", *me)
    assert table.exit_code == 0 and "0.25" in table.output
    too_high = cli("account", "leverage", account, perp, "20", *me)
    assert too_high.exit_code == common.EXIT_REFUSED
    assert "Traceback" not in too_high.output
    negative = cli("account", "leverage", account, perp, "-2", *me)
    assert negative.exit_code == common.EXIT_REFUSED
    assert "must be a positive number, got -2" in negative.output


# ---- accounts, tiers, markets -----------------------------------------------------------------------


def test_tiers_are_public(server: Server) -> None:
    items = {t["name"]: t for t in cli_json("tiers", "--url", server.url)["items"]}
    tier = items["ftmo-2step-10k"]
    assert (
        tier["starting_balance"],
        tier["profit_target"],
        tier["max_daily_loss"],
        tier["max_total_loss"],
    ) == (
        "10000",
        "0.10",
        "0.05",
        "0.10",
    )
    table = cli("tiers", "--url", server.url)
    row = next(line for line in table.output.splitlines() if "ftmo-2step-10k" in line)
    assert "10000" in row and "static" in row


def test_account_show_prints_an_assessments_rules_floors_and_progress(server: Server) -> None:
    key, _cash = trader(server)
    me = as_user(server, key)
    opened = cli_json("account", "create", "--tier", "ftmo-2step-10k", *me)
    assert (opened["kind"], opened["balance"], opened["rules"]["floors"]) == (
        "assessment",
        "10000.00",
        {"daily": "9500.00", "total": "9000.00"},
    )
    shown = cli("account", "show", opened["id"], *me)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()

    def line_of(*words: str) -> str:
        return next(line for line in lines if all(word in line for word in words))

    assert "ftmo-2step-10k" in line_of("name")
    assert "0.10" in line_of("profit_target")
    assert "500.00" in line_of("daily", "9500.00")  # floor and distance
    assert "1000.00" in line_of("total", "9000.00")
    assert "11000.00" in line_of("target_equity")
    assert "1000.00" in line_of("profit_needed")
    assert "0 of 4" in line_of("trading_days", " of ")


def test_market_create_quote_venue_with_its_fields(server: Server) -> None:
    symbol = f"Q{uuid.uuid4().hex[:6].upper()}-PERP"
    close = (datetime.now(UTC) + timedelta(days=3650)).replace(microsecond=0)
    args = [
        "market",
        "create",
        symbol,
        "--kind",
        "perp",
        "--venue",
        "quote",
        "--base",
        "QX",
        "--tick-size",
        "0.01",
        "--lot-size",
        "0.001",
        "--max-leverage",
        "5",
        "--slippage",
        "0.002",
        "--latency-ms",
        "25",
        "--latency-jitter-ms",
        "15",
        "--quote-max-age-ms",
        "5000",
        "--max-order-notional",
        "250000",
        "--max-position",
        "12",
        "--price-band",
        "0.05",
        "--funding-interval-seconds",
        "28800",
        "--funding-rate",
        "0.0001",
        "--close-time",
        close.isoformat(),
        *admin_args(server),
    ]
    data = cli_json(*args)
    keys = ("venue", "slippage", "latency_ms", "latency_jitter_ms", "quote_max_age_ms")
    assert {key: data[key] for key in keys} == {
        "venue": "quote",
        "slippage": "0.002",
        "latency_ms": 25,
        "latency_jitter_ms": 15,
        "quote_max_age_ms": 5000,
    }
    assert (data["max_order_notional"], data["max_position"], data["price_band"]) == ("250000", "12", "0.05")
    assert (data["funding_interval_seconds"], data["funding_rate"]) == (28800, "0.0001")
    assert datetime.fromisoformat(data["close_time"]) == close
    table = cli("market", "list", "--url", server.url)
    row = next(line for line in table.output.splitlines() if symbol in line)
    assert "quote" in [cell.strip() for cell in row.split("│")]  # the venue column


# ---- ledger and API keys (endpoints of other items of the issue) ------------------------------------


def _has_route(server: Server, method: str, path: str) -> bool:
    """Whether the server's OpenAPI document lists the operation (an endpoint of another item)."""
    paths = httpx.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    return method.lower() in paths.get(path, {})


def test_ledger_lists_balance_changes_newest_first(server: Server) -> None:
    if not _has_route(server, "GET", "/accounts/{account_id}/ledger"):
        pytest.skip("GET /accounts/{id}/ledger is not in this server yet")
    key, account = trader(server)
    cli_json("account", "deposit", account, "250", *admin_args(server))
    ledger = ("account", "ledger", account, *as_user(server, key))
    items = read_model(*ledger, until=lambda d: len(d["items"]) >= 2)["items"]
    assert [(e["type"], e["amount"], e["currency"], e["balance_after"]) for e in items[:2]] == [
        ("deposit", "250.00", "USD", "100250.00"),
        ("deposit", "100000.00", "USD", "100000.00"),
    ]
    table = cli("account", "ledger", account, *as_user(server, key))
    assert "100250.00" in table.output


def test_apikey_list_shows_keys_without_secrets(server: Server) -> None:
    if not _has_route(server, "GET", "/auth/api-keys"):
        pytest.skip("GET /auth/api-keys is not in this server yet")
    client, _account = server.trader()
    created = client.create_api_key("cli-list")
    listed = cli_json("apikey", "list", *as_user(server, created["api_key"]))["items"]
    assert [(k["key_id"], k["label"]) for k in listed] == [(created["key_id"], "cli-list")]
    assert created["api_key"] not in json.dumps(listed)
    revoked = cli("apikey", "revoke", created["key_id"], *as_user(server, created["api_key"]))
    assert revoked.exit_code == 0, revoked.output


def test_apikey_revoke_stops_the_key(server: Server) -> None:
    client, _account = server.trader()
    keep = client.create_api_key("keep")["api_key"]
    gone = client.create_api_key("gone")
    revoked = cli("apikey", "revoke", gone["key_id"], *as_user(server, keep))
    assert revoked.exit_code == 0, revoked.output
    assert f"key {gone['key_id']} revoked" in revoked.output
    refused = cli("account", "show", *as_user(server, gone["api_key"]))
    assert refused.exit_code == common.EXIT_REFUSED
    assert "401 unauthorized" in refused.output


# ---- exit codes, bad input, connection options ------------------------------------------------------


def test_negative_or_zero_quantity_is_a_clear_error_with_exit_code_2(server: Server) -> None:
    key, account = trader(server)
    for quantity in ("-1", "-0.5", "0"):
        result = cli("order", "place", account, "BTC-PERP", "buy", quantity, *as_user(server, key))
        assert result.exit_code == common.EXIT_REFUSED, result.output
        assert f"must be a positive number, got {quantity}" in result.output
        assert "No such option" not in result.output
    typo = cli("order", "place", account, "BTC-PERP", "buy", "1", "--pricee", "5", *as_user(server, key))
    assert typo.exit_code == common.EXIT_REFUSED
    assert "No such option: --pricee" in typo.output
    not_a_number = cli("order", "place", account, "BTC-PERP", "buy", "lots", *as_user(server, key))
    assert not_a_number.exit_code == common.EXIT_REFUSED
    assert "'lots' is not a number" in not_a_number.output


def test_missing_credentials_exit_with_the_documented_code(server: Server) -> None:
    result = cli("account", "show", "--url", server.url)
    assert result.exit_code == common.EXIT_REFUSED == 2
    assert "credentials needed" in result.output
    assert "Traceback" not in result.output


def test_exit_codes_for_refusals_and_no_server(server: Server) -> None:
    not_found = cli("ticker", "NOPE-X", "--url", server.url)
    assert not_found.exit_code == 2
    assert "404 not_found" in not_found.output
    down = cli("tiers", "--url", f"http://127.0.0.1:{free_port()}")
    assert down.exit_code == 4
    assert "cannot connect" in down.output
    helped = cli("--help")
    assert helped.exit_code == 0
    assert "Exit codes: 0 ok" in " ".join(helped.output.split())


def test_connection_options_before_the_command_from_the_environment_and_after_it(server: Server) -> None:
    key, account = trader(server)
    before = cli("--url", server.url, "--api-key", key, "account", "show", account, "--json")
    assert before.exit_code == 0, before.output
    assert json.loads(before.output)["id"] == account
    from_env = cli(
        "account", "show", account, "--json", env={"TRADEHALL_URL": server.url, "TRADEHALL_API_KEY": key}
    )
    assert json.loads(from_env.output)["id"] == account
    # the option after the command wins over the one before it, which wins over the environment
    down = f"http://127.0.0.1:{free_port()}"
    after = cli("--url", down, "account", "show", account, "--url", server.url, "--api-key", key, "--json")
    assert after.exit_code == 0, after.output
    over_env = cli("--url", down, "tiers", env={"TRADEHALL_URL": server.url})
    assert over_env.exit_code == 4
    token = Client(server.url).login("admin", ADMIN_PASSWORD).auth_token
    assert token is not None
    with_token = cli("--token", token, "--url", server.url, "market", "halt", "NOPE-Y")
    assert with_token.exit_code == 2
    assert "404 not_found" in with_token.output  # authenticated (not 401), then the market is unknown


def test_live_book_starts_from_the_ticker_last_and_stops_after_seconds(server: Server) -> None:
    perp = new_market(server)
    maker_key, maker = trader(server)
    taker_key, taker = trader(server)
    cli_json("order", "place", maker, perp, "sell", "0.02", "--price", "51000", *as_user(server, maker_key))
    cli_json("order", "place", taker, perp, "buy", "0.01", *as_user(server, taker_key))
    live = cli("book", perp, "--seconds", "0.5", "--url", server.url)
    assert live.exit_code == 0, live.output
    assert "last 51000" in live.output and "0.01" in live.output  # the rest of the ask: 0.02 - 0.01


def test_a_smart_order_and_its_execution_analytics(server: Server) -> None:
    base = f"S{uuid.uuid4().hex[:5].upper()}"
    instrument = f"{base}-USD"
    for symbol, fee in ((instrument, "0.002"), (f"{instrument}.OKX", "0.0005")):
        extra = [] if symbol == instrument else ["--instrument", instrument]
        cli_json(
            "market",
            "create",
            symbol,
            "--kind",
            "spot",
            "--base",
            base,
            "--tick-size",
            "0.01",
            "--lot-size",
            "0.0001",
            "--taker-fee",
            fee,
            *extra,
            *admin_args(server),
        )
    maker_key, maker = trader(server)
    taker_key, taker = trader(server)
    server.admin().deposit(maker, "10", currency=base)
    cli_json(
        "order", "place", maker, instrument, "sell", "0.5", "--price", "100", *as_user(server, maker_key)
    )
    cli_json("order", "place", maker, instrument, "buy", "0.5", "--price", "99", *as_user(server, maker_key))
    parent = cli_json(
        "order",
        "place",
        taker,
        instrument,
        "buy",
        "0.2",
        "--price",
        "101",
        "--venue",
        "smart",
        "--decision-price",
        "99.9",
        *as_user(server, taker_key),
    )
    assert (parent["venue"], parent["status"], parent["filled_quantity"]) == ("smart", "filled", "0.2")
    [child] = parent["children"]
    figures = cli_json("analytics", "order", child["id"], *as_user(server, taker_key))
    # -(100 / 99.5 - 1) x 10^4 and -(100 / 99.9 - 1) x 10^4
    assert (figures["arrival_slippage_bps"], figures["implementation_shortfall_bps"]) == ("-50.25", "-10.01")
    groups = cli_json("analytics", "execution", "--group-by", "market", *as_user(server, taker_key))["items"]
    assert [(g["key"], g["orders"], g["notional"]) for g in groups] == [(instrument, 1, "20")]
    table = cli("analytics", "execution", *as_user(server, taker_key))
    assert table.exit_code == 0 and "TRADEHALL" in table.output and "-50.25" in table.output
