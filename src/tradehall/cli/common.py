"""What the API commands share: connection options, output (Rich tables or --json), error handling."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table

from tradehall.client import ApiError, Client

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")

URL_OPTION = typer.Option(
    os.environ.get("TRADEHALL_URL", "http://127.0.0.1:8000"), "--url", help="Server URL (env TRADEHALL_URL)."
)
API_KEY_OPTION = typer.Option(
    None, "--api-key", envvar="TRADEHALL_API_KEY", help="API key (env TRADEHALL_API_KEY)."
)
USER_OPTION = typer.Option(None, "--user", envvar="TRADEHALL_USER", help="Username (env TRADEHALL_USER).")
PASSWORD_OPTION = typer.Option(
    None, "--password", envvar="TRADEHALL_PASSWORD", help="Password (env TRADEHALL_PASSWORD)."
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@contextmanager
def api_errors() -> Iterator[None]:
    """Turns API refusals and connection problems into one readable line and a non-zero exit code."""
    try:
        yield
    except ApiError as error:
        fail(f"{error.status} {error.code}: {error.detail}", 2 if error.status < 500 else 3)
    except httpx.ConnectError:
        fail("cannot connect to the server (is `tradehall serve` running? see --url)", 4)
    except httpx.HTTPError as error:
        fail(f"HTTP error: {error}", 4)


def connect(
    url: str, api_key: str | None, user: str | None, password: str | None, *, auth: bool = True
) -> Client:
    client = Client(url, api_key=api_key)
    if auth and not api_key:
        if not user or not password:
            fail("credentials needed: --api-key, or --user and --password (or TRADEHALL_API_KEY)")
        with api_errors():
            client.login(user, password)
    return client


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        render(data)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    view = Table(title=title, show_lines=False)
    for column in columns:
        justify = "right" if column in NUMERIC else "left"
        view.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        view.add_row(*("" if value is None else str(value) for value in row))
    console.print(view)


NUMERIC = frozenset(
    {
        "price",
        "quantity",
        "filled",
        "fee",
        "fees",
        "balance",
        "available",
        "equity",
        "held",
        "total",
        "avg entry",
        "mark",
        "unrealized",
        "realized",
        "tick",
        "lot",
        "bid",
        "ask",
        "last",
        "size",
    }
)


def record(title: str, data: dict[str, Any], keys: Sequence[str] | None = None) -> None:
    view = Table(title=title, show_header=False)
    view.add_column("field")
    view.add_column("value")
    for key in keys or list(data):
        value = data.get(key)
        if isinstance(value, list | dict):
            continue
        view.add_row(key, "" if value is None else str(value))
    console.print(view)
