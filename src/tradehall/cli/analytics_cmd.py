"""Execution analytics commands: `analytics order ID` and `analytics execution --group-by ...`."""

from __future__ import annotations

from typing import Any

import typer

from tradehall.cli.common import JSON_OPTION, api_command, api_errors, client_of, emit, record, table

analytics_app = typer.Typer(name="analytics", help="Execution analytics (TCA).", no_args_is_help=True)

EXECUTION_KEYS = (
    "order_id",
    "market",
    "venue",
    "side",
    "quantity",
    "filled_quantity",
    "average_price",
    "arrival_mid",
    "arrival_slippage_bps",
    "vwap",
    "vwap_slippage_bps",
    "decision_price",
    "implementation_shortfall_bps",
    "fill_ratio",
    "fees",
    "time_to_fill_seconds",
    "markouts_bps",
)
GROUP_COLUMNS = (
    "key",
    "orders",
    "fill",
    "notional",
    "fees",
    "arrival",
    "vwap",
    "shortfall",
    "1s",
    "10s",
    "60s",
)


@api_command(analytics_app, "order")
def analytics_order(ctx: typer.Context, order_id: str, as_json: bool = JSON_OPTION) -> None:
    """One order's execution figures (bps: a cost is negative)."""
    with api_errors():
        data = client_of(ctx).order_execution(order_id)
    emit(data, as_json, lambda d: record(f"execution of order {order_id}", d, EXECUTION_KEYS))


def _rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            g["key"],
            g["orders"],
            g["fill_ratio"],
            g["notional"],
            g["fees"],
            g["arrival_slippage_bps"],
            g["vwap_slippage_bps"],
            g["implementation_shortfall_bps"],
            *(g["markouts_bps"][h] for h in ("1s", "10s", "60s")),
        ]
        for g in items
    ]


@api_command(analytics_app, "execution")
def analytics_execution(
    ctx: typer.Context,
    group_by: str = typer.Option("venue", help="venue, market, account, session or day."),
    account_id: str | None = typer.Option(None, help="One account (default: all of yours)."),
    market: str | None = typer.Option(None, help="One market."),
    start: str | None = typer.Option(None, help="RFC 3339: orders accepted from then."),
    end: str | None = typer.Option(None, help="RFC 3339: orders accepted before then."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Execution analytics grouped: slippages in bps weighted by notional, markouts by quantity."""
    with api_errors():
        data = client_of(ctx).execution_analytics(group_by, account_id, market, start, end)
    emit(data, as_json, lambda d: table(f"execution by {group_by}", GROUP_COLUMNS, _rows(d["items"])))
