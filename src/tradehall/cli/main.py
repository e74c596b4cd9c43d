"""The `tradehall` command line (Typer + Rich). Sub-command groups live in their own modules."""

from __future__ import annotations

import typer

from tradehall.cli import api_cmd, bench_cmd, serve_cmd
from tradehall.cli.db_cmd import db_app
from tradehall.cli.events_cmd import events_app
from tradehall.cli.feeds_cmd import feeds_app
from tradehall.cli.journal_cmd import journal_app

app = typer.Typer(name="tradehall", help="A self-hostable trading engine.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(events_app, name="events")
app.add_typer(feeds_app, name="feeds")
app.add_typer(journal_app, name="journal")

# the service commands: serve, demo, users, keys, markets, accounts, orders, positions, trades, book
app.command()(serve_cmd.serve)
app.command()(serve_cmd.demo)
app.add_typer(api_cmd.user_app, name="user")
app.add_typer(api_cmd.apikey_app, name="apikey")
app.add_typer(api_cmd.market_app, name="market")
app.add_typer(api_cmd.account_app, name="account")
app.add_typer(api_cmd.order_app, name="order")
app.command()(api_cmd.positions)
app.command()(api_cmd.trades)
app.command()(api_cmd.book)
app.command(name="bench")(bench_cmd.bench)


def main() -> None:
    app()
