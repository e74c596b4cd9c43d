"""`tradehall feeds status`: the market-data feeds as the running server reports them in /ready;
`tradehall feeds config FILE`: what a market-data configuration would run, checked without connecting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from tradehall.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_REFUSED,
    EXIT_SERVER,
    EXIT_UNREACHABLE,
    JSON_OPTION,
    api_command,
    connection,
    fail,
)
from tradehall.marketdata.config import MarketDataConfig

feeds_app = typer.Typer(name="feeds", help="Market-data feeds.", no_args_is_help=True)
console = Console()


def feed_rows(ready: dict[str, Any]) -> list[dict[str, Any]]:
    """The feeds of a /ready body (`checks.feeds`: a list of feed dicts, or a dict keyed by feed)."""
    feeds = (ready.get("checks") or {}).get("feeds") or []
    if isinstance(feeds, dict):
        inner = feeds.get("feeds")
        feeds = (
            inner
            if isinstance(inner, list)
            else [{"feed": name, **value} for name, value in feeds.items() if isinstance(value, dict)]
        )
    return [row for row in feeds if isinstance(row, dict)]


def _age(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}s"


@api_command(feeds_app, "status")
def status(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Connected, mode, breaker state, last message age and counters of every configured feed."""
    url = connection(ctx).url
    try:
        response = httpx.get(f"{url.rstrip('/')}/ready", timeout=5.0)
    except httpx.ConnectError:
        fail("cannot connect to the server (is `tradehall serve` running? see --url)", EXIT_UNREACHABLE)
    except httpx.HTTPError as error:
        fail(f"HTTP error: {error}", EXIT_UNREACHABLE)
    if response.status_code not in (200, 503):
        fail(f"/ready answered HTTP {response.status_code}", EXIT_SERVER)
    try:
        rows = feed_rows(response.json())
    except ValueError:
        fail("/ready did not answer JSON", EXIT_SERVER)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("the server reports no market-data feeds")
        return
    table = Table(title="feeds")
    for column in ("feed", "healthy", "connected", "mode", "circuit", "last message", "messages", "errors"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.get("feed", "?")),
            "-" if "healthy" not in row else ("yes" if row["healthy"] else "[red]no[/red]"),
            "yes" if row.get("connected") else "[red]no[/red]",
            str(row.get("mode", "")),
            str(row.get("circuit", "")),
            _age(row.get("last_message_age_seconds")),
            str(row.get("messages", 0)),
            str(row.get("errors", 0)),
        )
    console.print(table)
    if any(row.get("healthy") is False for row in rows):
        raise typer.Exit(EXIT_CHECK_FAILED)


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


@feeds_app.command("config")
def config(
    path: Path = typer.Argument(..., help="a market-data configuration (.toml or .json)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Validate a market-data configuration and list its feeds (instruments, hosts, channels) and
    routes, without connecting to any provider. Exit 2 when the file is missing or invalid."""
    try:
        loaded = MarketDataConfig.load(path)
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror or error}", EXIT_REFUSED)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'config'}: {item['msg']}"
            for item in error.errors()
        )
        fail(f"invalid market-data configuration: {problems}", EXIT_REFUSED)
    except ValueError as error:  # TOML syntax
        fail(f"invalid market-data configuration: {error}", EXIT_REFUSED)
    summary = loaded.describe()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    feeds = Table(title="feeds")
    for column in ("feed", "instruments", "hosts", "options"):
        feeds.add_column(column)
    for feed in summary["feeds"]:
        options = {k: v for k, v in feed.items() if k not in ("feed", "instruments", "hosts")}
        feeds.add_row(
            str(feed["feed"]),
            ", ".join(_strings(feed["instruments"])),
            "\n".join(_strings(feed["hosts"])),
            json.dumps(options) if options else "",
        )
    console.print(feeds)
    routes = Table(title="routes")
    for column in ("market", "sources", "commands"):
        routes.add_column(column)
    for route in summary["routes"]:
        routes.add_row(str(route["market"]), " > ".join(_strings(route["sources"])), str(route["commands"]))
    console.print(routes)
