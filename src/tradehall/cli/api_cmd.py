"""API commands: users and API keys (on the database), markets, accounts, orders, positions, trades, book."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

import typer
from rich.live import Live
from rich.table import Table

from tradehall.cli.common import (
    API_KEY_OPTION,
    JSON_OPTION,
    PASSWORD_OPTION,
    URL_OPTION,
    USER_OPTION,
    api_errors,
    connect,
    console,
    emit,
    fail,
    record,
    table,
)

user_app = typer.Typer(name="user", help="Users (written to the database directly).", no_args_is_help=True)
apikey_app = typer.Typer(
    name="apikey", help="API keys (written to the database directly).", no_args_is_help=True
)
market_app = typer.Typer(name="market", help="Markets.", no_args_is_help=True)
account_app = typer.Typer(name="account", help="Accounts.", no_args_is_help=True)
order_app = typer.Typer(name="order", help="Orders.", no_args_is_help=True)


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
        fail(f"{error.code}: {error.detail}", 2)
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
            fail(f"no user {username!r}", 2)
        key = new_api_key()
        row = store.call_sync(repo.create_api_key, user.id, hash_api_key(key), label)
    finally:
        store.close()
    data = {"key_id": row.id, "api_key": key}
    emit(
        data, as_json, lambda d: console.print(f"key {d['key_id']}: [bold]{d['api_key']}[/bold] (shown once)")
    )


# ---- markets ----------------------------------------------------------------------------------------

MARKET_COLUMNS = ("symbol", "kind", "status", "base", "quote", "tick", "lot", "mark", "last")


def _market_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            m["symbol"],
            m["kind"],
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


@market_app.command("list")
def market_list(url: str = URL_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List markets (public)."""
    with api_errors():
        data = connect(url, None, None, None, auth=False).markets()
    emit(data, as_json, lambda d: table("markets", MARKET_COLUMNS, _market_rows(d["items"])))


@market_app.command("create")
def market_create(
    symbol: str,
    kind: str = typer.Option(..., help="spot, perp or binary."),
    base: str = typer.Option(...),
    quote: str = typer.Option("USD"),
    tick_size: str = typer.Option(...),
    lot_size: str = typer.Option(...),
    maker_fee: str | None = typer.Option(None),
    taker_fee: str | None = typer.Option(None),
    max_leverage: str | None = typer.Option(None, help="Perp only."),
    fee_model: str = typer.Option("proportional", help="proportional, or quadratic (binary)."),
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a market (admin)."""
    with api_errors():
        data = connect(url, api_key, user, password).create_market(
            symbol=symbol,
            kind=kind,
            base=base,
            quote=quote,
            tick_size=tick_size,
            lot_size=lot_size,
            maker_fee=maker_fee,
            taker_fee=taker_fee,
            max_leverage=max_leverage,
            fee_model=fee_model,
        )
    emit(data, as_json, lambda d: table("market", MARKET_COLUMNS, _market_rows([d])))


def _market_action(
    action: str,
    symbol: str,
    url: str,
    api_key: str | None,
    user: str | None,
    password: str | None,
    as_json: bool,
    **extra: str,
) -> None:
    with api_errors():
        client = connect(url, api_key, user, password)
        data = getattr(client, action)(symbol, **extra)
    emit(data, as_json, lambda d: console.print(f"{d['symbol']} is now [bold]{d['status']}[/bold]"))


@market_app.command("halt")
def market_halt(
    symbol: str,
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Halt a market (only cancels accepted)."""
    _market_action("halt_market", symbol, url, api_key, user, password, as_json)


@market_app.command("resume")
def market_resume(
    symbol: str,
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Reopen a halted market."""
    _market_action("resume_market", symbol, url, api_key, user, password, as_json)


@market_app.command("settle")
def market_settle(
    symbol: str,
    outcome: str = typer.Option(..., help="yes or no."),
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Settle a binary market on its outcome."""
    _market_action("settle_market", symbol, url, api_key, user, password, as_json, outcome=outcome)


@market_app.command("void")
def market_void(
    symbol: str,
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Void a binary market: every position refunded at cost."""
    _market_action("void_market", symbol, url, api_key, user, password, as_json)


# ---- accounts ---------------------------------------------------------------------------------------

ACCOUNT_KEYS = (
    "id",
    "kind",
    "currency",
    "status",
    "balance",
    "available",
    "equity",
    "unrealized_pnl",
    "realized_pnl",
    "drawdown",
)


def _show_account(data: dict[str, Any]) -> None:
    record(f"account {data['id']}", data, ACCOUNT_KEYS)
    table(
        "balances",
        ("currency", "total", "available", "held"),
        [[b["currency"], b["total"], b["available"], b["held"]] for b in data["balances"]],
    )


@account_app.command("create")
def account_create(
    currency: str = typer.Option("USD"),
    initial_balance: str | None = typer.Option(None, help="Self-funding, where configuration allows it."),
    tier: str | None = typer.Option(None, help="An assessment tier (see GET /tiers): opens an assessment."),
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Open a cash account, or an assessment account with --tier."""
    kind = "assessment" if tier else "cash"
    with api_errors():
        data = connect(url, api_key, user, password).create_account(
            currency, kind=kind, initial_balance=initial_balance, tier=tier
        )
    emit(data, as_json, _show_account)


@account_app.command("show")
def account_show(
    account_id: str | None = typer.Argument(None, help="An account id (default: all of yours)."),
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show an account, or list yours."""
    with api_errors():
        client = connect(url, api_key, user, password)
        if account_id is None:
            data = client.accounts()
            emit(
                data,
                as_json,
                lambda d: table(
                    "accounts",
                    ("id", "currency", "status", "balance", "available", "equity"),
                    [
                        [a["id"], a["currency"], a["status"], a["balance"], a["available"], a["equity"]]
                        for a in d["items"]
                    ],
                ),
            )
            return
        data = client.account(account_id)
    emit(data, as_json, _show_account)


@account_app.command("deposit")
def account_deposit(
    account_id: str,
    amount: str,
    currency: str | None = typer.Option(None),
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Deposit into an account (admin)."""
    with api_errors():
        data = connect(url, api_key, user, password).deposit(account_id, amount, currency)
    emit(data, as_json, _show_account)


# ---- orders, positions, trades ----------------------------------------------------------------------

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


@order_app.command("place")
def order_place(
    account_id: str,
    market: str,
    side: str,
    quantity: str,
    price: str | None = typer.Option(None, help="Limit price (none: a market order)."),
    order_type: str | None = typer.Option(None, "--type", help="market, limit, stop or stop_limit."),
    tif: str | None = typer.Option(None, "--tif", help="gtc, ioc, fok, day or gtd."),
    stop_price: str | None = typer.Option(None),
    post_only: bool = typer.Option(False),
    reduce_only: bool = typer.Option(False),
    client_order_id: str | None = typer.Option(None),
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Place an order."""
    extra: dict[str, Any] = {
        "time_in_force": tif,
        "stop_price": stop_price,
        "client_order_id": client_order_id,
    }
    if post_only:
        extra["post_only"] = True
    if reduce_only:
        extra["reduce_only"] = True
    with api_errors():
        data = connect(url, api_key, user, password).place_order(
            account_id,
            market,
            side,
            quantity,
            price,
            order_type,
            **{k: v for k, v in extra.items() if v is not None},
        )
    emit(data, as_json, lambda d: table("order", ORDER_COLUMNS, _order_rows([d])))


@order_app.command("cancel")
def order_cancel(
    order_id: str,
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Cancel an open order."""
    with api_errors():
        data = connect(url, api_key, user, password).cancel_order(order_id)
    emit(data, as_json, lambda d: table("order", ORDER_COLUMNS, _order_rows([d])))


@order_app.command("list")
def order_list(
    account_id: str | None = typer.Option(None),
    market: str | None = typer.Option(None),
    status: str = typer.Option("open", help="open, closed or all."),
    limit: int = typer.Option(100),
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List orders (newest first)."""
    with api_errors():
        data = connect(url, api_key, user, password).orders(account_id, market, status, limit)
    emit(data, as_json, lambda d: table(f"{status} orders", ORDER_COLUMNS, _order_rows(d["items"])))


def positions(
    account_id: str | None = typer.Option(None),
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Open positions, valued at the mark."""
    with api_errors():
        data = connect(url, api_key, user, password).positions(account_id)
    emit(
        data,
        as_json,
        lambda d: table(
            "positions",
            ("account", "market", "side", "quantity", "avg entry", "mark", "unrealized", "realized"),
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
                ]
                for p in d["items"]
            ],
        ),
    )


def trades(
    account_id: str | None = typer.Option(None),
    market: str | None = typer.Option(None),
    limit: int = typer.Option(50),
    url: str = URL_OPTION,
    api_key: str | None = API_KEY_OPTION,
    user: str | None = USER_OPTION,
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Your fills, newest first."""
    with api_errors():
        data = connect(url, api_key, user, password).trades(account_id, market, limit)
    emit(
        data,
        as_json,
        lambda d: table(
            "fills",
            ("executed_at", "market", "side", "price", "quantity", "fee", "liquidity", "order"),
            [
                [
                    f["executed_at"],
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
        ),
    )


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


async def _watch(url: str, symbol: str, depth: int, seconds: float | None) -> None:
    from tradehall.client import AsyncClient

    client = AsyncClient(url)
    ladder = Ladder(symbol)
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    async with client.stream() as stream:
        await stream.subscribe([f"book:{symbol}", f"trades:{symbol}"])
        with Live(ladder.render(depth), console=console, refresh_per_second=8) as live:
            while deadline is None or loop.time() < deadline:
                try:
                    message = await stream.next(timeout=1.0)
                except TimeoutError:
                    continue
                channel = message.get("channel", "")
                if message.get("op") == "error":
                    fail(f"{message.get('code')}: {message.get('message')}", 2)
                if channel.startswith("book:") and not ladder.apply(message):
                    await stream.unsubscribe([f"book:{symbol}"])
                    await stream.subscribe([f"book:{symbol}"])
                elif channel.startswith("trades:"):
                    ladder.last_trade = message["data"]["price"]
                live.update(ladder.render(depth))
    await client.aclose()


def book(
    symbol: str,
    depth: int = typer.Option(10, help="Levels per side."),
    seconds: float | None = typer.Option(None, help="Stop after this many seconds (default: Ctrl-C)."),
    once: bool = typer.Option(False, "--once", help="Print the REST book once instead of the live ladder."),
    url: str = URL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """A live order-book ladder redrawn from the WebSocket (snapshot, then sequenced updates)."""
    if once or as_json:
        with api_errors():
            data = connect(url, None, None, None, auth=False).book(symbol, depth)
        ladder = Ladder(symbol)
        ladder.apply({"type": "snapshot", "sequence": data["sequence"], "data": data})
        emit(data, as_json, lambda _d: console.print(ladder.render(depth)))
        return
    with api_errors():
        connect(url, None, None, None, auth=False).market(symbol)
    with contextlib.suppress(KeyboardInterrupt), api_errors():
        try:
            asyncio.run(_watch(url, symbol, depth, seconds))
        except OSError as error:
            fail(f"WebSocket: {error}", 4)
