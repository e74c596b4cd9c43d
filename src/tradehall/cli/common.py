"""What the API commands share: one set of connection options, exit codes, output, error handling.

The connection options (`--url`, `--api-key`, `--token`, `--user`, `--password`) are declared once
(`_CONNECTION_FIELDS`). The root callback takes them before the command (`tradehall --url … order list`)
and `api_command` adds them to each API command too, so the flags also work after it
(`tradehall order list --url …`): the value given after the command wins, then the one before it,
then the `TRADEHALL_*` environment variables. The merged `Connection` is the command context's `obj`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand

from tradehall.client import ApiError, Client

# Recent Typer carries its own copy of Click (`typer._click`), older Typer uses `click`: the usage error
# must be the class of the copy Typer uses, so it is taken from the package of Typer's Command.
_CLICK = TyperCommand.__mro__[1].__module__.rsplit(".", 1)[0]
_click_errors: Any = importlib.import_module(f"{_CLICK}.exceptions")

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)

# ---- exit codes: the one table (docs/api.md "CLI" and `tradehall --help` show it) --------------------

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a health or integrity check found a problem (feeds, journal verify, cluster status)
EXIT_REFUSED = 2  # bad input, missing or rejected credentials, or the API refused (4xx)
EXIT_SERVER = 3  # the server failed (5xx) or answered something that is not the API
EXIT_UNREACHABLE = 4  # cannot connect to the server (or the bus)

EXIT_CODES = (
    (EXIT_OK, "ok"),
    (EXIT_CHECK_FAILED, "a check found a problem (feeds status, journal verify, cluster status)"),
    (EXIT_REFUSED, "bad input, missing or rejected credentials, or refused by the API (4xx)"),
    (EXIT_SERVER, "server error (5xx)"),
    (EXIT_UNREACHABLE, "cannot connect"),
)

DEFAULT_URL = "http://127.0.0.1:8000"

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")


def fail(message: str, code: int) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


# ---- the connection ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the server is and how to authenticate; `client()` builds the SDK client from it."""

    url: str = DEFAULT_URL
    api_key: str | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None

    def client(self, *, auth: bool = True) -> Client:
        """A client; with `auth`, credentials are required (API key, token, or a login)."""
        client = Client(self.url, api_key=self.api_key, token=self.token)
        if auth and not (self.api_key or self.token):
            if not self.user or not self.password:
                fail(
                    "credentials needed: --api-key, --token, or --user and --password "
                    "(or TRADEHALL_API_KEY, TRADEHALL_TOKEN, TRADEHALL_USER/TRADEHALL_PASSWORD)",
                    EXIT_REFUSED,
                )
            with api_errors():
                client.login(self.user, self.password)
        return client


# name, flag, environment variable, help
_CONNECTION_FIELDS = (
    ("url", "--url", "TRADEHALL_URL", "Server URL."),
    ("api_key", "--api-key", "TRADEHALL_API_KEY", "API key."),
    ("token", "--token", "TRADEHALL_TOKEN", "A bearer token from POST /auth/token."),
    ("user", "--user", "TRADEHALL_USER", "Username (with --password: logs in)."),
    ("password", "--password", "TRADEHALL_PASSWORD", "Password."),
)
CONNECTION_NAMES = tuple(field[0] for field in _CONNECTION_FIELDS)


def _connection_parameters(*, root: bool) -> list[inspect.Parameter]:
    """The connection options, once. The root's read the environment; a command's only override them."""
    return [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                DEFAULT_URL if root and name == "url" else None,
                flag,
                envvar=envvar if root else None,
                help=text if root else f"{text} Also before the command, or env {envvar}.",
                rich_help_panel="Connection",
            ),
            annotation=str if root and name == "url" else str | None,
        )
        for name, flag, envvar, text in _CONNECTION_FIELDS
    ]


def _with_connection(func: Callable[..., Any], *, root: bool) -> Callable[..., Any]:
    """`func` with the connection options added to its signature (Typer builds options from it); the
    wrapper merges the given ones into the context's `Connection` and calls `func` without them."""
    extra = _connection_parameters(root=root)
    signature = inspect.signature(func, eval_str=True)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name, None) for name in CONNECTION_NAMES}
        ctx = kwargs.get("ctx")
        if ctx is not None:
            given = {name: value for name, value in values.items() if value is not None}
            ctx.obj = replace(connection(ctx), **given)
        return func(*args, **kwargs)

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *extra]
    )
    wrapper.__annotations__ = {**func.__annotations__, **{p.name: p.annotation for p in extra}}
    return wrapper


def _root(ctx: typer.Context) -> None:
    """A self-hostable trading engine."""


root_callback = _with_connection(_root, root=True)
"""The root's callback: `tradehall --url … COMMAND` stores the connection for every command below."""


def connection(ctx: typer.Context) -> Connection:
    """The connection of this command (its own options, the root's, the environment, the defaults)."""
    found = ctx.find_object(Connection)
    if found is not None:
        return found
    # a command invoked without the root group (a sub-app on its own): the environment, then defaults
    given = {
        name: os.environ[envvar]
        for name, _flag, envvar, _text in _CONNECTION_FIELDS
        if os.environ.get(envvar)
    }
    return Connection(**given)


def exit_codes_epilog() -> str:
    return "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES) + "."


# a negative number given as an argument (`order place … buy -1`), not an option
_NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ApiCommand(TyperCommand):
    """A command that takes negative numbers as arguments.

    Click reads `-1` as an option; these commands let unknown `-…` tokens through as arguments
    (`ignore_unknown_options`) after checking that each one is a number, so `buy -1` reaches the
    command (which refuses it clearly) while a mistyped option is still "No such option".
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = dict(kwargs.pop("context_settings", None) or {})
        settings.setdefault("ignore_unknown_options", True)
        super().__init__(*args, context_settings=settings, **kwargs)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        self._refuse_unknown_options(ctx, args)
        return super().parse_args(ctx, args)

    def _refuse_unknown_options(self, ctx: Any, args: list[str]) -> None:
        takes_value: dict[str, bool] = {}
        for param in self.get_params(ctx):
            if getattr(param, "param_type_name", "") == "option":
                flag = bool(getattr(param, "is_flag", False) or getattr(param, "count", False))
                for name in (*param.opts, *param.secondary_opts):
                    takes_value[name] = not flag
        tokens = iter(args)
        for token in tokens:
            if token == "--":
                return
            if not token.startswith("-") or token == "-" or _NEGATIVE_NUMBER.fullmatch(token):
                continue
            name = token.split("=", 1)[0]
            if name not in takes_value:
                close = difflib.get_close_matches(name, list(takes_value))
                raise _click_errors.NoSuchOption(name, possibilities=close, ctx=ctx)
            if takes_value[name] and "=" not in token:
                next(tokens, None)


def api_command(app: typer.Typer, name: str | None = None) -> Callable[[F], F]:
    """Registers an API command: it gets the connection options and takes negative numbers as arguments.

    The command function has a `ctx: typer.Context` parameter; `client_of(ctx)` is its client.
    """

    def register(func: F) -> F:
        app.command(name, cls=ApiCommand)(_with_connection(func, root=False))
        return func

    return register


def client_of(ctx: typer.Context, *, auth: bool = True) -> Client:
    """The SDK client of this command's connection (public endpoints: `auth=False`)."""
    return connection(ctx).client(auth=auth)


# ---- input checks -----------------------------------------------------------------------------------


def positive(value: str | None) -> str | None:
    """A Typer callback: a decimal string > 0 (a quantity, a price), refused here with exit code 2."""
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not a number") from None
    if not number.is_finite() or number <= 0:
        raise typer.BadParameter(f"must be a positive number, got {value}")
    return value


# ---- errors and output ------------------------------------------------------------------------------


@contextmanager
def api_errors() -> Iterator[None]:
    """Turns API refusals and connection problems into one readable line and the documented exit code."""
    try:
        yield
    except ApiError as error:
        code = EXIT_REFUSED if error.status < 500 else EXIT_SERVER
        fail(f"{error.status} {error.code}: {error.detail}", code)
    except httpx.ConnectError:
        fail("cannot connect to the server (is `tradehall serve` running? see --url)", EXIT_UNREACHABLE)
    except httpx.HTTPError as error:
        fail(f"HTTP error: {error}", EXIT_UNREACHABLE)


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        render(data)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    view = Table(title=title, show_lines=False)
    for column in columns:
        justify = "right" if column in NUMERIC else "left"
        # ids, symbols and times are never folded: a narrow terminal narrows the other columns
        view.add_column(column, justify=justify, no_wrap=column in UNBROKEN)  # type: ignore[arg-type]
    for row in rows:
        view.add_row(*("" if value is None else str(value) for value in row))
    console.print(view)


UNBROKEN = frozenset(
    {"id", "symbol", "market", "account", "order", "trade", "key_id", "at", "executed_at", "t", "name"}
)
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
        "amount",
        "balance after",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "floor",
        "distance",
        "starting balance",
        "target",
        "max daily loss",
        "max total loss",
        "leverage",
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


def next_page(data: dict[str, Any]) -> None:
    """Says how to get the next page of a cursor-paginated answer, when there is one."""
    cursor = data.get("next_cursor")
    if cursor:
        console.print(f"more: --cursor {cursor}")
