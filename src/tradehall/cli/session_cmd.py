"""Live trading sessions: `session start|list|show|pause|resume|stop`.

`session start ACCOUNT --market BTC-USD --strategy sma_crossover --param sma_crossover.fast=10
--setting stop_loss_percent=2` starts one; `show` prints the session with its latest decisions
(`--signals` adds its signals, `--performance` the report's metrics).
"""

from __future__ import annotations

import json
from typing import Any

import typer

from tradehall.cli.common import (
    JSON_OPTION,
    api_command,
    api_errors,
    client_of,
    emit,
    fail,
    next_page,
    record,
    table,
)

session_app = typer.Typer(name="session", help="Live trading sessions.", no_args_is_help=True)

SESSION_KEYS = ("id", "account_id", "status", "status_reason", "cycles", "created_at", "updated_at")
EXIT_USAGE = 2


def _value(raw: str) -> Any:
    """A command-line value as JSON when it parses (numbers, true/false), else the string itself;
    decimals stay strings ("2" -> "2" for settings that take decimal strings is done by the server)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"{what} takes key=value, not {item!r}", EXIT_USAGE)
        pairs.append((key.strip(), value.strip()))
    return pairs


def strategies_of(names: list[str], weights: list[str], params: list[str]) -> list[dict[str, Any]]:
    """`--strategy` names (with `--weight name=w`, `--param name.key=value`, or `key=value` when there
    is one strategy) as the API's `strategies` list."""
    entries: dict[str, dict[str, Any]] = {name: {"name": name, "parameters": {}} for name in names}
    for name, weight in _pairs(weights, "--weight"):
        if name not in entries:
            fail(f"--weight names {name!r}, which is not a --strategy", EXIT_USAGE)
        entries[name]["weight"] = weight
    for key, value in _pairs(params, "--param"):
        name, dot, param = key.rpartition(".")
        if not dot:
            if len(entries) != 1:
                fail("with several strategies, --param takes strategy.key=value", EXIT_USAGE)
            name, param = names[0], key
        if name not in entries:
            fail(f"--param names {name!r}, which is not a --strategy", EXIT_USAGE)
        entries[name]["parameters"][param] = _value(value)
    return list(entries.values())


def settings_of(items: list[str]) -> dict[str, Any]:
    """`--setting key=value`: booleans and integers as JSON, everything else (decimals) as strings."""
    settings: dict[str, Any] = {}
    for key, value in _pairs(items, "--setting"):
        parsed = _value(value)
        settings[key] = parsed if isinstance(parsed, bool | int) and not isinstance(parsed, float) else value
    return settings


def _show(data: dict[str, Any]) -> None:
    record(f"session {data['id']}", data, SESSION_KEYS)
    table("markets", ("market",), [[market] for market in data["markets"]])
    table(
        "strategies",
        ("name", "weight", "parameters"),
        [[s["name"], s.get("weight"), json.dumps(s.get("parameters") or {})] for s in data["strategies"]],
    )
    record("settings", {k: v for k, v in data["settings"].items() if v is not None})


def _list(data: dict[str, Any]) -> None:
    table(
        "sessions",
        ("id", "account", "status", "markets", "strategies", "cycles", "created_at"),
        [
            [
                s["id"],
                s["account_id"],
                s["status"],
                ", ".join(s["markets"]),
                ", ".join(x["name"] for x in s["strategies"]),
                s["cycles"],
                s["created_at"],
            ]
            for s in data["items"]
        ],
    )
    next_page(data)


@api_command(session_app, "start")
def session_start(
    ctx: typer.Context,
    account_id: str,
    market: list[str] = typer.Option(..., "--market", help="A market to trade (repeat for several)."),
    strategy: list[str] = typer.Option(..., "--strategy", help="A strategy by name (repeat for several)."),
    weight: list[str] = typer.Option([], "--weight", help="name=weight of a strategy's vote (default 1)."),
    param: list[str] = typer.Option([], "--param", help="[strategy.]key=value of a strategy parameter."),
    setting: list[str] = typer.Option(
        [],
        "--setting",
        help="key=value: interval_seconds, event_driven, order_type, max_positions, max_position_size, "
        "min_confidence, stop_loss_percent, take_profit_percent, trailing_stop_percent, max_drawdown, "
        "weekly_target, order_quantity, risk_per_trade, allow_short.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Start a trading session on one of your accounts."""
    strategies = strategies_of(strategy, weight, param)
    with api_errors():
        data = client_of(ctx).start_session(account_id, market, strategies, settings_of(setting))
    emit(data, as_json, _show)


@api_command(session_app, "list")
def session_list(
    ctx: typer.Context,
    account_id: str | None = typer.Option(None, "--account", help="Only this account's sessions."),
    limit: int = typer.Option(50),
    cursor: str | None = typer.Option(None, help="The next page (from a previous answer)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Your sessions, newest first."""
    with api_errors():
        data = client_of(ctx).sessions(account_id, limit, cursor)
    emit(data, as_json, _list)


@api_command(session_app, "show")
def session_show(
    ctx: typer.Context,
    session_id: str,
    decisions: int = typer.Option(10, help="How many of the latest decisions to show."),
    signals: int = typer.Option(0, help="How many of the latest signals to show."),
    orders: int = typer.Option(0, help="How many of the latest orders the session placed to show."),
    performance: bool = typer.Option(False, "--performance", help="Also the report's metrics."),
    as_json: bool = JSON_OPTION,
) -> None:
    """A session, its latest decisions (with vetoes and orders), signals, orders and performance."""
    with api_errors():
        client = client_of(ctx)
        data: dict[str, Any] = {"session": client.session(session_id)}
        if decisions > 0:
            data["decisions"] = client.session_decisions(session_id, limit=decisions)["items"]
        if signals > 0:
            data["signals"] = client.session_signals(session_id, limit=signals)["items"]
        if orders > 0:
            data["orders"] = client.session_orders(session_id, limit=orders)["items"]
        if performance:
            data["performance"] = client.session_performance(session_id)

    def render(shown: dict[str, Any]) -> None:
        _show(shown["session"])
        if "decisions" in shown:
            table(
                "decisions",
                (
                    "at",
                    "market",
                    "action",
                    "confidence",
                    "quantity",
                    "status",
                    "vetoed_by",
                    "order",
                    "reason",
                ),
                [
                    [
                        d["at"],
                        d["market"],
                        d["action"],
                        d["confidence"],
                        d.get("quantity"),
                        d["status"],
                        d.get("vetoed_by"),
                        d.get("order_id"),
                        d.get("error") or d["reason"],
                    ]
                    for d in shown["decisions"]
                ],
            )
        if "signals" in shown:
            table(
                "signals",
                ("at", "strategy", "market", "action", "confidence", "price", "reason"),
                [
                    [
                        s["at"],
                        s["strategy"],
                        s["market"],
                        s["action"],
                        s["confidence"],
                        s.get("price"),
                        s["reason"],
                    ]
                    for s in shown["signals"]
                ],
            )
        if "orders" in shown:
            table(
                "orders",
                ("id", "market", "side", "type", "quantity", "status", "filled", "avg", "legs"),
                [
                    [o["id"], o["market"], o["side"], o["type"], o["quantity"], o["status"],
                     o["filled_quantity"], o.get("average_price"), len(o.get("legs") or [])]
                    for o in shown["orders"]
                ],
            )  # fmt: skip
        if "performance" in shown:
            record("performance", shown["performance"].get("metrics") or {})

    emit(data, as_json, render)


def _control(ctx: typer.Context, session_id: str, action: str, as_json: bool) -> None:
    with api_errors():
        client = client_of(ctx)
        operation = {
            "pause": client.pause_session,
            "resume": client.resume_session,
            "stop": client.stop_session,
        }[action]
        data = operation(session_id)
    emit(data, as_json, _show)


@api_command(session_app, "pause")
def session_pause(ctx: typer.Context, session_id: str, as_json: bool = JSON_OPTION) -> None:
    """Pause: strategies keep seeing bars, nothing they decide is sent."""
    _control(ctx, session_id, "pause", as_json)


@api_command(session_app, "resume")
def session_resume(ctx: typer.Context, session_id: str, as_json: bool = JSON_OPTION) -> None:
    """Resume a paused session."""
    _control(ctx, session_id, "resume", as_json)


@api_command(session_app, "stop")
def session_stop(ctx: typer.Context, session_id: str, as_json: bool = JSON_OPTION) -> None:
    """Stop a session for good (its orders, exits and positions stay)."""
    _control(ctx, session_id, "stop", as_json)
