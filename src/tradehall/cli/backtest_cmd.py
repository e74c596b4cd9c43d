"""`tradehall backtest`: a strategy on recorded data through the engine, with a report directory.

Runs in this process (no server needed): `--data` names a CSV/Parquet OHLCV file or a feed recording;
without it, `--market` with `--from`/`--to` reads that market's candles from the configured database
(`TRADEHALL_DATABASE_URL` or the data dir's SQLite file). A `--param` with commas (`fast=5,10,20`) makes
a grid: every combination runs in its own process and the table ranks them by `--rank-by`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from tradehall.cli.common import EXIT_REFUSED, console, fail
from tradehall.domain.errors import TradehallError
from tradehall.service.settings import Settings
from tradehall.store.db import Store
from tradehall.strategies.backtest.config import BacktestSettings, FillModel, StrategyChoice
from tradehall.strategies.backtest.job import (
    BacktestRequest,
    candles,
    execute,
    market_spec,
    run_grid,
)
from tradehall.strategies.backtest.render import write_report

SHOWN = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor", "trades",
         "exposure", "fees")


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            fail(f"{what} {value!r} is not key=value", EXIT_REFUSED)
        out[key.strip()] = rest.strip()
    return out


def backtest(
    strategy: list[str] = typer.Option(..., "--strategy", "-s", help="A strategy name (repeat to combine)."),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="k=v for the first strategy, or name.k=v; k=1,2,3 makes a grid."
    ),
    weight: list[str] = typer.Option([], "--weight", help="name=weight for the combiner (default 1)."),
    data: Path | None = typer.Option(None, "--data", help="CSV/Parquet OHLCV or a feed recording."),
    market: str | None = typer.Option(None, "--market", help="The market (its candles without --data)."),
    start: str | None = typer.Option(None, "--from", help="RFC 3339 start (inclusive)."),
    end: str | None = typer.Option(None, "--to", help="RFC 3339 end (exclusive)."),
    interval: str | None = typer.Option(None, "--interval", help="Bar length, e.g. 1m."),
    setting: list[str] = typer.Option(
        [], "--setting", help="k=v: order_quantity, max_position_size, stop_loss_percent, ..."
    ),
    initial_balance: str = typer.Option("10000", "--initial-balance"),
    fill_model: str | None = typer.Option(
        None, "--fill-model", help="slippage=0.001,fee=0.001,latency_ms=1,spread=0,depth=0.1"
    ),
    tick_size: str | None = typer.Option(None, "--tick-size", help="A data file market's tick."),
    lot_size: str | None = typer.Option(None, "--lot-size", help="For a data file's market (default 1e-8)."),
    seed: int = typer.Option(0, "--seed"),
    report: Path | None = typer.Option(None, "--report", help="Directory for the report files."),
    rank_by: str = typer.Option("sharpe", "--rank-by", help="A grid's ranking metric."),
    workers: int | None = typer.Option(None, "--workers", help="A grid's processes (default: the cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics (or the grid) as JSON."),
) -> None:
    """Backtest strategies on recorded data through the same engine and fill model as paper trading."""
    try:
        names = list(strategy)
        parameters: dict[str, dict[str, Any]] = {name: {} for name in names}
        grid: dict[str, list[str]] = {}
        for key, value in _pairs(param, "--param").items():
            target, _, name = key.rpartition(".")
            target = target or names[0]
            if target not in parameters:
                fail(f"--param {key}: {target!r} is not one of the --strategy names", EXIT_REFUSED)
            if "," in value:
                if target != names[0]:
                    fail("a grid varies the first strategy's parameters", EXIT_REFUSED)
                grid[name] = [v.strip() for v in value.split(",") if v.strip()]
            else:
                parameters[target][name] = value
        weights = {k: float(v) for k, v in _pairs(weight, "--weight").items()}
        settings_given: dict[str, Any] = dict(_pairs(setting, "--setting"))
        settings_given["initial_balance"] = initial_balance
        if interval is not None:
            settings_given["interval"] = interval
        request_fields: dict[str, Any] = {}
        symbol = market or (data.stem.split(".")[0].upper() if data is not None else None)
        if symbol is None:
            fail("give --data PATH, or --market SYM with --from and --to", EXIT_REFUSED)
        ohlcv = None
        if data is None:
            config = Settings()
            store = Store.from_url(config.sqlalchemy_url)
            try:
                spec = store.call_sync(market_spec, symbol)
                if spec is None:
                    fail(f"no market {symbol!r} in {config.sqlalchemy_url}", EXIT_REFUSED)
                probe = BacktestRequest.parse(
                    {"strategies": names, "markets": [symbol], "start": start, "end": end}
                )
                ohlcv = store.call_sync(candles, symbol, interval or "1m", probe.start, probe.end)
            finally:
                store.close()
            request_fields["spec"] = spec
        body = {"strategies": names, "markets": [symbol], "start": start, "end": end}
        parsed = BacktestRequest.parse(body)
        request = BacktestRequest(
            strategies=tuple(
                StrategyChoice(name, weights.get(name, 1.0), parameters[name]) for name in names
            ),
            market=symbol,
            settings=BacktestSettings.parse(settings_given),
            fill_model=FillModel.parse(fill_model),
            seed=seed,
            data_path=data,
            start=parsed.start,
            end=parsed.end,
            tick_size=Decimal(tick_size) if tick_size else None,
            lot_size=Decimal(lot_size) if lot_size else None,
            **request_fields,
        )
        if grid:
            rows = run_grid(request, grid, rank_by=rank_by, workers=workers, ohlcv=ohlcv)
            _print_grid(rows, rank_by, as_json)
            best = next((row for row in rows if "metrics" in row), None)
            if report is not None and best is not None:
                first = request.strategies[0]
                chosen = replace(first, parameters={**first.parameters, **best["parameters"]})
                result, built = execute(replace(request, strategies=(chosen, *request.strategies[1:])),
                                        ohlcv=ohlcv)
                write_report(report, built, result.prices)
                (report / "grid.json").write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
                console.print(f"best of the grid reported in {report}")
            return
        result, built = execute(request, ohlcv=ohlcv)
    except TradehallError as error:
        fail(f"{error.code.value}: {error.detail}", EXIT_REFUSED)
    except ValueError as error:
        fail(str(error), EXIT_REFUSED)
    if report is not None:
        write_report(report, built, result.prices)
    if as_json:
        console.print_json(json.dumps(built["metrics"]))
    else:
        title = f"{', '.join(names)} on {symbol}: {result.bars} bars, {len(built['trades'])} trades"
        table = Table(title=title)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in built["metrics"].items():
            table.add_row(name, "n/a" if value is None else str(value))
        console.print(table)
        for warning in built["run"]["warnings"]:
            console.print(f"[yellow]warning:[/yellow] {warning}")
        if report is not None:
            console.print(f"report: {report / 'report.html'}")


def _print_grid(rows: list[dict[str, Any]], rank_by: str, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"grid ranked by {rank_by}")
    names = sorted({k for row in rows for k in row["parameters"]})
    for name in names:
        table.add_column(name)
    shown = (rank_by, *[m for m in SHOWN if m != rank_by])
    for metric in shown:
        table.add_column(metric, justify="right")
    for row in rows:
        values = [str(row["parameters"][n]) for n in names]
        if "metrics" in row:
            values += ["n/a" if row["metrics"][m] is None else str(row["metrics"][m]) for m in shown]
        else:
            values += [row["error"]] + [""] * (len(shown) - 1)
        table.add_row(*values)
    console.print(table)
