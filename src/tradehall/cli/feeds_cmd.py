"""`tradehall feeds status`: the market-data feeds as the running server reports them in /ready."""

from __future__ import annotations

import json
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from tradehall.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_SERVER,
    EXIT_UNREACHABLE,
    JSON_OPTION,
    api_command,
    connection,
    fail,
)

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
