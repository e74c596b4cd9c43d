"""Market commands: `market list|create|halt|resume|settle|void`, `ticker SYM`, `candles SYM`."""

from __future__ import annotations

from typing import Any

import typer

from tradehall.cli.common import JSON_OPTION, api_command, api_errors, client_of, console, emit, record, table

market_app = typer.Typer(name="market", help="Markets.", no_args_is_help=True)

MARKET_COLUMNS = (
    "symbol",
    "instrument",
    "kind",
    "venue",
    "status",
    "base",
    "quote",
    "tick",
    "lot",
    "mark",
    "last",
)

# the quote-venue and risk fields of a market spec, shown (and settable) beside the basics
LIMIT_FIELDS = (
    "slippage",
    "latency_ms",
    "latency_jitter_ms",
    "quote_max_age_ms",
    "max_order_notional",
    "max_position",
    "price_band",
    "funding_interval_seconds",
    "funding_rate",
    "close_time",
)


def _market_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            m["symbol"],
            m.get("instrument", m["symbol"]),
            m["kind"],
            m.get("venue"),
            m["status"],
            m["base"],
            m["quote"],
            m["tick_size"],
            m["lot_size"],
            m.get("mark_price"),
            m.get("last_price"),
        ]
        for m in items
    ]


def _show_market(data: dict[str, Any]) -> None:
    table("market", MARKET_COLUMNS, _market_rows([data]))
    fields = LIMIT_FIELDS if data.get("venue") == "quote" else LIMIT_FIELDS[4:]  # quote-only ones first
    limits = {key: data[key] for key in fields if data.get(key) not in (None, 0)}
    if limits:
        record("limits", limits)


@api_command(market_app, "list")
def market_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List markets (public)."""
    with api_errors():
        data = client_of(ctx, auth=False).markets()
    emit(data, as_json, lambda d: table("markets", MARKET_COLUMNS, _market_rows(d["items"])))


@api_command(market_app, "create")
def market_create(
    ctx: typer.Context,
    symbol: str,
    kind: str = typer.Option(..., help="spot, perp or binary."),
    base: str = typer.Option(...),
    quote: str = typer.Option("USD"),
    tick_size: str = typer.Option(...),
    lot_size: str = typer.Option(...),
    venue: str | None = typer.Option(None, help="book (default: an order book) or quote (fills at a quote)."),
    min_quantity: str | None = typer.Option(None),
    max_quantity: str | None = typer.Option(None),
    maker_fee: str | None = typer.Option(None, help='A decimal fraction: "0.001" = 0.1 %.'),
    taker_fee: str | None = typer.Option(None, help='A decimal fraction: "0.001" = 0.1 %.'),
    max_leverage: str | None = typer.Option(None, help="Perp only."),
    initial_margin: str | None = typer.Option(None, help="Perp only, a fraction of the notional."),
    maintenance_margin: str | None = typer.Option(None, help="Perp only, a fraction of the notional."),
    fee_model: str = typer.Option("proportional", help="proportional, or quadratic (binary)."),
    slippage: str | None = typer.Option(None, help="Quote venue: a fraction added against the taker."),
    latency_ms: int | None = typer.Option(None, help="Quote venue: simulated fill latency."),
    latency_jitter_ms: int | None = typer.Option(
        None, help="Quote venue: up to this much more latency per order (seeded, replayable)."
    ),
    quote_max_age_ms: int | None = typer.Option(None, help="Quote venue: refuse fills on older quotes."),
    max_order_notional: str | None = typer.Option(None, help="Largest notional of one order."),
    max_position: str | None = typer.Option(None, help="Largest position (base units)."),
    price_band: str | None = typer.Option(None, help="A fraction around the reference price."),
    funding_interval_seconds: int | None = typer.Option(None, help="Perp: seconds between fundings."),
    funding_rate: str | None = typer.Option(None, help="Perp: the rate of each funding."),
    close_time: str | None = typer.Option(None, help="RFC 3339: when the market closes."),
    instrument: str | None = typer.Option(
        None, help="The instrument listed (default: the symbol); name the market <instrument>.<VENUE>."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a market (admin); `--venue quote` fills against the injected or fed quote."""
    with api_errors():
        data = client_of(ctx).create_market(
            symbol=symbol,
            kind=kind,
            venue=venue,
            base=base,
            quote=quote,
            tick_size=tick_size,
            lot_size=lot_size,
            min_quantity=min_quantity,
            max_quantity=max_quantity,
            maker_fee=maker_fee,
            taker_fee=taker_fee,
            max_leverage=max_leverage,
            initial_margin=initial_margin,
            maintenance_margin=maintenance_margin,
            fee_model=fee_model,
            slippage=slippage,
            latency_ms=latency_ms,
            latency_jitter_ms=latency_jitter_ms,
            quote_max_age_ms=quote_max_age_ms,
            max_order_notional=max_order_notional,
            max_position=max_position,
            price_band=price_band,
            funding_interval_seconds=funding_interval_seconds,
            funding_rate=funding_rate,
            close_time=close_time,
            instrument=instrument,
        )
    emit(data, as_json, _show_market)


def _market_action(ctx: typer.Context, action: str, symbol: str, as_json: bool, **extra: str) -> None:
    with api_errors():
        data = getattr(client_of(ctx), action)(symbol, **extra)
    emit(data, as_json, lambda d: console.print(f"{d['symbol']} is now [bold]{d['status']}[/bold]"))


@api_command(market_app, "halt")
def market_halt(ctx: typer.Context, symbol: str, as_json: bool = JSON_OPTION) -> None:
    """Halt a market (only cancels accepted)."""
    _market_action(ctx, "halt_market", symbol, as_json)


@api_command(market_app, "resume")
def market_resume(ctx: typer.Context, symbol: str, as_json: bool = JSON_OPTION) -> None:
    """Reopen a halted market."""
    _market_action(ctx, "resume_market", symbol, as_json)


@api_command(market_app, "settle")
def market_settle(
    ctx: typer.Context,
    symbol: str,
    outcome: str = typer.Option(..., help="yes or no."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Settle a binary market on its outcome."""
    _market_action(ctx, "settle_market", symbol, as_json, outcome=outcome)


@api_command(market_app, "void")
def market_void(ctx: typer.Context, symbol: str, as_json: bool = JSON_OPTION) -> None:
    """Void a binary market: every position refunded at cost."""
    _market_action(ctx, "void_market", symbol, as_json)


TICKER_KEYS = ("symbol", "bid", "ask", "last", "mark", "volume_24h", "sequence")


def ticker(ctx: typer.Context, symbol: str, as_json: bool = JSON_OPTION) -> None:
    """Best bid and ask, last trade, mark and 24 h volume of a market (public)."""
    with api_errors():
        data = client_of(ctx, auth=False).ticker(symbol)
    emit(data, as_json, lambda d: record(f"ticker {symbol}", d, TICKER_KEYS))


def candles(
    ctx: typer.Context,
    symbol: str,
    interval: str = typer.Option("1m", help="1m, 5m, 15m, 1h or 1d."),
    start: str | None = typer.Option(None, help="RFC 3339, inclusive."),
    end: str | None = typer.Option(None, help="RFC 3339."),
    limit: int | None = typer.Option(None, help="At most this many candles."),
    cursor: str | None = typer.Option(None, help="The next page (from a previous answer)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """OHLCV candles of a market, oldest first (public)."""
    with api_errors():
        data = client_of(ctx, auth=False).candles(symbol, interval, start, end, limit, cursor)
    emit(
        data,
        as_json,
        lambda d: table(
            f"{symbol} {interval}",
            ("t", "open", "high", "low", "close", "volume"),
            [[c["t"], c["open"], c["high"], c["low"], c["close"], c["volume"]] for c in d["items"]],
        ),
    )
