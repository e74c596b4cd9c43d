"""Order commands: `order place|amend|cancel|cancel-all|list`, `positions`, `position close`, `trades`."""

from __future__ import annotations

from typing import Any

import typer

from tradehall.cli.common import (
    EXIT_REFUSED,
    JSON_OPTION,
    api_command,
    api_errors,
    client_of,
    console,
    emit,
    fail,
    next_page,
    positive,
    table,
)

order_app = typer.Typer(name="order", help="Orders.", no_args_is_help=True)
position_app = typer.Typer(name="position", help="Positions.", no_args_is_help=True)

ORDER_COLUMNS = ("id", "market", "side", "type", "quantity", "price", "status", "filled", "avg", "fees")


def _order_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            o["id"],
            o["market"],
            o["side"],
            o["type"],
            o["quantity"],
            o.get("price"),
            o["status"],
            o["filled_quantity"],
            o.get("average_price"),
            o["fees"],
        ]
        for o in items
    ]


def _order_table(title: str, items: list[dict[str, Any]]) -> None:
    """The orders; `stop` and `hwm` columns when one has a stop price or a trailing stop's watermark, a
    `reason` column when one has a reason."""
    columns: list[str] = list(ORDER_COLUMNS)
    rows = _order_rows(items)
    if any(o.get("stop_price") for o in items):
        columns.insert(6, "stop")
        for row, order in zip(rows, items, strict=True):
            row.insert(6, order.get("stop_price"))
    if any(o.get("hwm") for o in items):
        columns.insert(6, "hwm")
        for row, order in zip(rows, items, strict=True):
            row.insert(6, order.get("hwm"))
    if any(o.get("cancel_reason") or o.get("reject_reason") for o in items):
        columns.append("reason")
        for row, order in zip(rows, items, strict=True):
            row.append(order.get("cancel_reason") or order.get("reject_reason"))
    table(title, columns, rows)


def _show_order(data: dict[str, Any]) -> None:
    _order_table("order", [data])
    if data.get("order_class") not in (None, "simple"):
        exits = []
        if data.get("take_profit"):
            exits.append(f"take_profit {data['take_profit']['limit_price']}")
        if data.get("stop_loss"):
            stop = data["stop_loss"]
            limit = f" limit {stop['limit_price']}" if stop.get("limit_price") else ""
            exits.append(f"stop_loss {stop['stop_price']}{limit}")
        console.print(f"{data['order_class']}: " + ", ".join(exits))
    if data.get("legs"):
        _order_table("legs", data["legs"])


@api_command(order_app, "place")
def order_place(
    ctx: typer.Context,
    account_id: str,
    market: str,
    side: str = typer.Argument(..., help="buy or sell; long or short (perp); yes or no (binary)."),
    quantity: str = typer.Argument(..., callback=positive, help="A positive quantity in base units."),
    price: str | None = typer.Option(None, callback=positive, help="Limit price (none: a market order)."),
    order_type: str | None = typer.Option(
        None,
        "--type",
        help="market, limit, stop, stop_limit or trailing_stop (default: limit with --price, else market).",
    ),
    tif: str | None = typer.Option(
        None, "--tif", help="gtc, ioc, fok, day or gtd (default gtc; gtd with --expire-at)."
    ),
    expire_at: str | None = typer.Option(None, help="RFC 3339: when a gtd order expires."),
    stop_price: str | None = typer.Option(None, callback=positive, help="A stop's trigger price."),
    trigger: str | None = typer.Option(
        None, help="The price a stop watches: last, mark or bid_ask (default: the venue's)."
    ),
    trail_percent: str | None = typer.Option(
        None, callback=positive, help="A trailing stop's trail in percent of its watermark (1.5 = 1.5 %)."
    ),
    trail_price: str | None = typer.Option(
        None, callback=positive, help="A trailing stop's trail as a price distance."
    ),
    activation_price: str | None = typer.Option(
        None, callback=positive, help="A trailing stop starts trailing once its trigger price reaches this."
    ),
    order_class: str | None = typer.Option(
        None,
        help="simple, bracket (an entry with both exits), oto (an entry with one exit) or oco (an exit"
        " pair for an open position: the order is its take-profit). Default: bracket with both"
        " --take-profit and --stop-loss, oto with one, else simple.",
    ),
    stop_loss: str | None = typer.Option(
        None,
        callback=positive,
        help="The stop-loss exit's stop price: placed when the entry fills, sized to its fills (it also"
        " sets the risk per trade).",
    ),
    stop_loss_limit: str | None = typer.Option(
        None, callback=positive, help="Makes the stop-loss exit a stop-limit at this price."
    ),
    take_profit: str | None = typer.Option(
        None,
        callback=positive,
        help="The take-profit exit's limit price: placed when the entry fills, sized to its fills.",
    ),
    post_only: bool = typer.Option(False),
    reduce_only: bool = typer.Option(False),
    client_order_id: str | None = typer.Option(None),
    venue: str | None = typer.Option(
        None, help="smart: MARKET names an instrument and the order is routed across its venues."
    ),
    decision_price: str | None = typer.Option(
        None, callback=positive, help="The price the order was decided at (implementation shortfall)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Place an order; with --take-profit and/or --stop-loss, an entry whose exits are placed when it fills
    (one cancels the other), or with --order-class oco an exit pair for an open position; with --venue
    smart, a parent order split across the venues of an instrument."""
    if stop_loss_limit is not None and stop_loss is None:
        raise typer.BadParameter("--stop-loss-limit needs --stop-loss")
    if order_class == "oco" and order_type is None:
        order_type = "limit"  # an oco is its take-profit: a limit at that price
    if expire_at is not None and tif is None:
        tif = "gtd"
    extra: dict[str, Any] = {
        "time_in_force": tif,
        "expire_at": expire_at,
        "stop_price": stop_price,
        "trigger": trigger,
        "trail_percent": trail_percent,
        "trail_price": trail_price,
        "activation_price": activation_price,
        "order_class": order_class,
        "stop_loss": stop_loss
        if stop_loss is None or stop_loss_limit is None
        else {"stop_price": stop_loss, "limit_price": stop_loss_limit},
        "take_profit": take_profit,
        "client_order_id": client_order_id,
        "post_only": True if post_only else None,
        "reduce_only": True if reduce_only else None,
        "venue": venue,
        "decision_price": decision_price,
    }
    with api_errors():
        data = client_of(ctx).place_order(
            account_id,
            market,
            side,
            quantity,
            price,
            order_type,
            **{k: v for k, v in extra.items() if v is not None},
        )
    emit(data, as_json, _show_order)


@api_command(order_app, "amend")
def order_amend(
    ctx: typer.Context,
    order_id: str,
    price: str | None = typer.Option(None, callback=positive, help="The new limit price (loses priority)."),
    quantity: str | None = typer.Option(
        None, callback=positive, help="The new total, filled included (down keeps priority)."
    ),
    stop_price: str | None = typer.Option(None, callback=positive, help="Moves an untriggered stop."),
    trail_percent: str | None = typer.Option(
        None, callback=positive, help="Re-trails an untriggered trailing stop (percent of its watermark)."
    ),
    trail_price: str | None = typer.Option(
        None, callback=positive, help="Re-trails an untriggered trailing stop (a price distance)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Amend an open order's price or quantity (or an untriggered stop's stop price or trail)."""
    if all(value is None for value in (price, quantity, stop_price, trail_percent, trail_price)):
        fail(
            "nothing to amend: give --price, --quantity, --stop-price, --trail-percent or --trail-price",
            EXIT_REFUSED,
        )
    with api_errors():
        data = client_of(ctx).amend_order(
            order_id,
            price=price,
            quantity=quantity,
            stop_price=stop_price,
            trail_percent=trail_percent,
            trail_price=trail_price,
        )
    emit(data, as_json, _show_order)


@api_command(order_app, "cancel")
def order_cancel(ctx: typer.Context, order_id: str, as_json: bool = JSON_OPTION) -> None:
    """Cancel an open order."""
    with api_errors():
        data = client_of(ctx).cancel_order(order_id)
    emit(data, as_json, _show_order)


@api_command(order_app, "cancel-all")
def order_cancel_all(
    ctx: typer.Context,
    account_id: str,
    market: str | None = typer.Option(None, help="Only this market's orders."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Cancel every open order of an account (on one market with --market)."""
    with api_errors():
        data = client_of(ctx).cancel_all(account_id, market)

    def render(d: dict[str, Any]) -> None:
        _order_table("cancelled orders", d["items"])
        console.print(f"cancelled {len(d['items'])} order(s)")

    emit(data, as_json, render)


@api_command(order_app, "list")
def order_list(
    ctx: typer.Context,
    account_id: str | None = typer.Option(None),
    market: str | None = typer.Option(None),
    status: str = typer.Option("open", help="open, closed or all."),
    limit: int = typer.Option(100),
    cursor: str | None = typer.Option(None, help="The next page (from a previous answer)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List orders (newest first)."""
    with api_errors():
        data = client_of(ctx).orders(account_id, market, status, limit, cursor)

    def render(d: dict[str, Any]) -> None:
        _order_table(f"{status} orders", d["items"])
        next_page(d)

    emit(data, as_json, render)


POSITION_COLUMNS = (
    "account",
    "market",
    "side",
    "quantity",
    "avg entry",
    "mark",
    "unrealized",
    "realized",
    "liq",
)


def positions(
    ctx: typer.Context, account_id: str | None = typer.Option(None), as_json: bool = JSON_OPTION
) -> None:
    """Open positions, valued at the mark."""
    with api_errors():
        data = client_of(ctx).positions(account_id)
    emit(
        data,
        as_json,
        lambda d: table(
            "positions",
            POSITION_COLUMNS,
            [
                [
                    p["account_id"],
                    p["market"],
                    p["side"],
                    p["quantity"],
                    p.get("average_entry_price"),
                    p.get("mark_price"),
                    p["unrealized_pnl"],
                    p["realized_pnl"],
                    p.get("liquidation_price"),
                ]
                for p in d["items"]
            ],
        ),
    )


@api_command(position_app, "close")
def position_close(ctx: typer.Context, market: str, account_id: str, as_json: bool = JSON_OPTION) -> None:
    """Close the account's position on MARKET with a market order; prints that order."""
    with api_errors():
        data = client_of(ctx).close_position(market, account_id)
    emit(data, as_json, _show_order)


FILL_COLUMNS = ("executed_at", "account", "market", "side", "price", "quantity", "fee", "liquidity", "order")


def trades(
    ctx: typer.Context,
    account_id: str | None = typer.Option(None),
    market: str | None = typer.Option(None),
    limit: int = typer.Option(50),
    cursor: str | None = typer.Option(None, help="The next page (from a previous answer)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Your fills, newest first."""
    with api_errors():
        data = client_of(ctx).trades(account_id, market, limit, cursor)

    def render(d: dict[str, Any]) -> None:
        table(
            "fills",
            FILL_COLUMNS,
            [
                [
                    f["executed_at"],
                    f.get("account_id", account_id),
                    f["market"],
                    f["side"],
                    f["price"],
                    f["quantity"],
                    f["fee"],
                    f["liquidity"],
                    f["order_id"],
                ]
                for f in d["items"]
            ],
        )
        next_page(d)

    emit(data, as_json, render)
