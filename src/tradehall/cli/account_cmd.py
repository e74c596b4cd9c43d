"""Account commands: `account create|show|deposit|leverage|ledger` and `tiers`."""

from __future__ import annotations

from typing import Any

import typer

from tradehall.cli.common import (
    JSON_OPTION,
    api_command,
    api_errors,
    client_of,
    emit,
    next_page,
    positive,
    record,
    table,
)

account_app = typer.Typer(name="account", help="Accounts.", no_args_is_help=True)

ACCOUNT_KEYS = (
    "id",
    "kind",
    "currency",
    "status",
    "tier",
    "cost_basis",
    "balance",
    "available",
    "equity",
    "unrealized_pnl",
    "realized_pnl",
    "peak_equity",
    "drawdown",
)
RULE_KEYS = (
    "name",
    "starting_balance",
    "profit_target",
    "max_daily_loss",
    "max_total_loss",
    "drawdown_mode",
    "max_risk_per_trade",
    "max_leverage",
    "min_trading_days",
    "daily_reset_time",
    "timezone",
)


def _show_rules(rules: dict[str, Any]) -> None:
    """An assessment's tier rules, its floors (with the distance left to each) and its progress."""
    shown = dict(rules)
    if rules.get("allowed_markets") is not None:
        shown["allowed_markets"] = ", ".join(rules["allowed_markets"])
    record("rules", shown, (*RULE_KEYS, "allowed_markets"))
    floors = rules.get("floors") or {}
    distance = rules.get("distance") or {}
    table(
        "floors",
        ("floor", "level", "distance"),
        [[name, floors[name], distance.get(name)] for name in ("daily", "total") if name in floors],
    )
    progress = dict(rules.get("progress") or {})
    if progress:
        days = f"{progress.pop('trading_days', '?')} of {progress.pop('min_trading_days', '?')}"
        record("progress", progress | {"trading_days": days})


def _show_account(data: dict[str, Any]) -> None:
    record(f"account {data['id']}", data, ACCOUNT_KEYS)
    reason = data.get("status_reason")
    if isinstance(reason, dict):
        record("status reason", reason)
    table(
        "balances",
        ("currency", "total", "available", "held"),
        [[b["currency"], b["total"], b["available"], b["held"]] for b in data["balances"]],
    )
    if data.get("rules"):
        _show_rules(data["rules"])


@api_command(account_app, "create")
def account_create(
    ctx: typer.Context,
    currency: str = typer.Option("USD"),
    initial_balance: str | None = typer.Option(None, help="Self-funding, where configuration allows it."),
    tier: str | None = typer.Option(
        None, help="An assessment tier (see `tradehall tiers`): opens an assessment."
    ),
    cost_basis: str | None = typer.Option(
        None, "--cost-basis", help="fifo, lifo or average (the venue's default): the lots a sale closes."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Open a cash account, or an assessment account with --tier."""
    kind = "assessment" if tier else "cash"
    with api_errors():
        data = client_of(ctx).create_account(
            currency, kind=kind, initial_balance=initial_balance, tier=tier, cost_basis=cost_basis
        )
    emit(data, as_json, _show_account)


@api_command(account_app, "show")
def account_show(
    ctx: typer.Context,
    account_id: str | None = typer.Argument(None, help="An account id (default: all of yours)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show an account (an assessment's rules, floors and progress too), or list yours."""
    with api_errors():
        client = client_of(ctx)
        if account_id is not None:
            emit(client.account(account_id), as_json, _show_account)
            return
        data = client.accounts()
    emit(
        data,
        as_json,
        lambda d: table(
            "accounts",
            ("id", "kind", "currency", "status", "balance", "available", "equity"),
            [
                [a["id"], a["kind"], a["currency"], a["status"], a["balance"], a["available"], a["equity"]]
                for a in d["items"]
            ],
        ),
    )


@api_command(account_app, "deposit")
def account_deposit(
    ctx: typer.Context,
    account_id: str,
    amount: str = typer.Argument(..., callback=positive),
    currency: str | None = typer.Option(None),
    cost_price: str | None = typer.Option(
        None, help="what deposited units of a spot base cost (their basis); without it, none"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Deposit into an account (admin)."""
    with api_errors():
        data = client_of(ctx).deposit(account_id, amount, currency, cost_price)
    emit(data, as_json, _show_account)


@api_command(account_app, "leverage")
def account_leverage(
    ctx: typer.Context,
    account_id: str,
    market: str,
    leverage: str = typer.Argument(..., callback=positive),
    as_json: bool = JSON_OPTION,
) -> None:
    """Set the account's leverage on a perp market (capped by the market's and the tier's maximum)."""
    with api_errors():
        data = client_of(ctx).set_leverage(account_id, market, leverage)
    emit(
        data,
        as_json,
        lambda d: table(
            "leverage",
            ("account", "market", "leverage", "initial margin"),
            [[d["account_id"], d["market"], d["leverage"], d["initial_margin"]]],
        ),
    )


LEDGER_COLUMNS = ("at", "type", "amount", "currency", "balance after", "market", "order", "trade")


@api_command(account_app, "ledger")
def account_ledger(
    ctx: typer.Context,
    account_id: str,
    limit: int = typer.Option(50),
    cursor: str | None = typer.Option(None, help="The next page (from a previous answer)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every balance change of an account, newest first, with the running balance."""
    with api_errors():
        data = client_of(ctx).ledger(account_id, limit, cursor)

    def render(d: dict[str, Any]) -> None:
        table(
            f"ledger {account_id}",
            LEDGER_COLUMNS,
            [
                [
                    e["at"],
                    e["type"],
                    e["amount"],
                    e["currency"],
                    e["balance_after"],
                    e.get("market"),
                    e.get("order_id"),
                    e.get("trade_id"),
                ]
                for e in d["items"]
            ],
        )
        next_page(d)

    emit(data, as_json, render)


TIER_COLUMNS = (
    "name",
    "currency",
    "starting balance",
    "target",
    "max daily loss",
    "max total loss",
    "drawdown",
    "min days",
)


def tiers(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """The assessment tiers (public); limits are fractions of the starting balance ("0.05" = 5 %)."""
    with api_errors():
        data = client_of(ctx, auth=False).tiers()
    emit(
        data,
        as_json,
        lambda d: table(
            "tiers",
            TIER_COLUMNS,
            [
                [
                    t["name"],
                    t.get("currency"),
                    t["starting_balance"],
                    t["profit_target"],
                    t["max_daily_loss"],
                    t["max_total_loss"],
                    t["drawdown_mode"],
                    t["min_trading_days"],
                ]
                for t in d["items"]
            ],
        ),
    )
