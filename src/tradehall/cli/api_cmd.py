"""Users and API keys (created on the database; keys listed and revoked over HTTP) and the live book.

Markets, accounts and orders have their own modules (market_cmd, account_cmd, order_cmd)."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

import typer
from rich.live import Live
from rich.table import Table

from tradehall.cli.common import (
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    JSON_OPTION,
    api_command,
    api_errors,
    client_of,
    connection,
    console,
    emit,
    fail,
    table,
)

user_app = typer.Typer(name="user", help="Users (written to the database directly).", no_args_is_help=True)
apikey_app = typer.Typer(
    name="apikey",
    help="API keys: create writes to the database directly; list and revoke go over HTTP.",
    no_args_is_help=True,
)


# ---- users and API keys: directly on the read-model database --------------------------------------


def _store() -> Any:
    from tradehall.service.settings import Settings
    from tradehall.store import Store, upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    return Store.from_url(settings.sqlalchemy_url)


@user_app.command("create")
def user_create(
    username: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, help="The user's password."),
    admin: bool = typer.Option(False, "--admin", help="Give the user the admin role."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a user (trader, or admin with --admin)."""
    from tradehall.api.auth import hash_password
    from tradehall.domain.errors import TradehallError
    from tradehall.store import repositories as repo

    store = _store()
    try:
        user = store.call_sync(
            repo.create_user, username, hash_password(password), "admin" if admin else "trader"
        )
    except TradehallError as error:
        fail(f"{error.code}: {error.detail}", EXIT_REFUSED)
    finally:
        store.close()
    data = {"user_id": user.id, "username": user.username, "role": user.role}
    emit(
        data,
        as_json,
        lambda d: console.print(f"created {d['role']} [bold]{d['username']}[/bold] ({d['user_id']})"),
    )


@apikey_app.command("create")
def apikey_create(
    username: str,
    label: str | None = typer.Option(None, help="A label for the key."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create an API key for USERNAME; the key is printed once and stored hashed."""
    from tradehall.api.auth import hash_api_key, new_api_key
    from tradehall.store import repositories as repo

    store = _store()
    try:
        user = store.call_sync(repo.find_user_by_username, username)
        if user is None:
            fail(f"no user {username!r}", EXIT_REFUSED)
        key = new_api_key()
        row = store.call_sync(repo.create_api_key, user.id, hash_api_key(key), label)
    finally:
        store.close()
    data = {"key_id": row.id, "api_key": key}
    emit(
        data, as_json, lambda d: console.print(f"key {d['key_id']}: [bold]{d['api_key']}[/bold] (shown once)")
    )


@api_command(apikey_app, "list")
def apikey_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Your API keys (over HTTP, as the authenticated user); secrets are never shown."""
    with api_errors():
        data = client_of(ctx).api_keys()
    emit(
        data,
        as_json,
        lambda d: table(
            "API keys",
            ("key_id", "label", "created_at", "last_used_at", "expires_at", "scopes"),
            [
                [
                    k["key_id"],
                    k.get("label"),
                    k.get("created_at"),
                    k.get("last_used_at"),
                    k.get("expires_at"),
                    ",".join(k.get("scopes") or []),
                ]
                for k in d["items"]
            ],
        ),
    )


@api_command(apikey_app, "revoke")
def apikey_revoke(ctx: typer.Context, key_id: str) -> None:
    """Delete one of your API keys (over HTTP); it stops working at once."""
    with api_errors():
        client_of(ctx).delete_api_key(key_id)
    console.print(f"key {key_id} revoked")


# ---- the live book ----------------------------------------------------------------------------------


class Ladder:
    """An L2 book kept from a WebSocket snapshot plus its sequenced deltas."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.sequence = 0
        self.last_trade: str | None = None

    def apply(self, message: dict[str, Any]) -> bool:
        """Applies a book message; False on a sequence gap (resubscribe)."""
        data = message["data"]
        if message["type"] == "snapshot":
            self.bids = dict(data["bids"])
            self.asks = dict(data["asks"])
        else:
            if message["sequence"] != self.sequence + 1:
                return False
            for side, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
                for price, quantity in levels:
                    if Decimal(quantity) == 0:
                        side.pop(price, None)
                    else:
                        side[price] = quantity
        self.sequence = message["sequence"]
        return True

    def render(self, depth: int) -> Table:
        view = Table(title=f"{self.symbol}  seq {self.sequence}  last {self.last_trade or '-'}")
        view.add_column("bid size", justify="right", style="green")
        view.add_column("bid", justify="right", style="bold green")
        view.add_column("ask", justify="left", style="bold red")
        view.add_column("ask size", justify="left", style="red")
        bids = sorted(self.bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)[:depth]
        asks = sorted(self.asks.items(), key=lambda kv: Decimal(kv[0]))[:depth]
        for index in range(max(len(bids), len(asks))):
            bid = bids[index] if index < len(bids) else ("", "")
            ask = asks[index] if index < len(asks) else ("", "")
            view.add_row(bid[1], bid[0], ask[0], ask[1])
        return view


async def _watch(url: str, symbol: str, depth: int, seconds: float | None, last: str | None) -> None:
    from tradehall.client import AsyncClient

    client = AsyncClient(url)
    ladder = Ladder(symbol)
    ladder.last_trade = last
    loop = asyncio.get_running_loop()
    async with client.stream() as stream:
        await stream.subscribe([f"book:{symbol}", f"trades:{symbol}"])
        deadline = None if seconds is None else loop.time() + seconds  # counted once subscribed
        with Live(ladder.render(depth), console=console, refresh_per_second=8) as live:
            while deadline is None or loop.time() < deadline:
                try:
                    message = await stream.next(timeout=1.0)
                except TimeoutError:
                    continue
                channel = message.get("channel", "")
                if message.get("op") == "error":
                    fail(f"{message.get('code')}: {message.get('message')}", EXIT_REFUSED)
                if channel.startswith("book:") and not ladder.apply(message):
                    await stream.unsubscribe([f"book:{symbol}"])
                    await stream.subscribe([f"book:{symbol}"])
                elif channel.startswith("trades:"):
                    ladder.last_trade = message["data"]["price"]
                live.update(ladder.render(depth))
    await client.aclose()


def book(
    ctx: typer.Context,
    symbol: str,
    depth: int = typer.Option(10, help="Levels per side."),
    seconds: float | None = typer.Option(None, help="Stop after this many seconds (default: Ctrl-C)."),
    once: bool = typer.Option(False, "--once", help="Print the REST book once instead of the live ladder."),
    as_json: bool = JSON_OPTION,
) -> None:
    """A live order-book ladder redrawn from the WebSocket (snapshot, then sequenced updates).

    The title shows the book sequence and the last trade price (from the ticker, then each trade)."""
    client = client_of(ctx, auth=False)
    with api_errors():
        last = client.ticker(symbol).get("last")
        if once or as_json:
            data = client.book(symbol, depth) | {"last": last}
    if once or as_json:
        ladder = Ladder(symbol)
        ladder.apply({"type": "snapshot", "sequence": data["sequence"], "data": data})
        ladder.last_trade = last
        emit(data, as_json, lambda _d: console.print(ladder.render(depth)))
        return
    with contextlib.suppress(KeyboardInterrupt), api_errors():
        try:
            asyncio.run(_watch(connection(ctx).url, symbol, depth, seconds, last))
        except OSError as error:
            fail(f"WebSocket: {error}", EXIT_UNREACHABLE)
