"""The `tradehall` command line (Typer + Rich). Sub-command groups live in their own modules.

The connection options (`--url`, `--api-key`, `--token`, `--user`, `--password`) belong to the root
(`root_callback`) and to every API command (`api_command`); see `cli/common.py`.
"""

from __future__ import annotations

import typer

from tradehall.cli import (
    account_cmd,
    analytics_cmd,
    api_cmd,
    backtest_cmd,
    bench_cmd,
    market_cmd,
    order_cmd,
    serve_cmd,
    session_cmd,
)
from tradehall.cli.cluster_cmd import cluster_app
from tradehall.cli.common import api_command, exit_codes_epilog, root_callback
from tradehall.cli.db_cmd import db_app
from tradehall.cli.events_cmd import events_app
from tradehall.cli.feeds_cmd import feeds_app
from tradehall.cli.journal_cmd import journal_app
from tradehall.cli.monitor_cmd import monitor_app

app = typer.Typer(
    name="tradehall",
    help="A self-hostable trading engine.",
    epilog=exit_codes_epilog(),
    no_args_is_help=True,
)
app.callback()(root_callback)
app.add_typer(cluster_app, name="cluster")
app.add_typer(db_app, name="db")
app.add_typer(events_app, name="events")
app.add_typer(feeds_app, name="feeds")
app.add_typer(journal_app, name="journal")
app.add_typer(monitor_app, name="monitor")

# the service commands: serve, demo, users, keys, markets, accounts, orders, positions, trades, book
app.command()(serve_cmd.serve)
app.command()(serve_cmd.demo)
app.add_typer(api_cmd.user_app, name="user")
app.add_typer(api_cmd.apikey_app, name="apikey")
app.add_typer(market_cmd.market_app, name="market")
app.add_typer(account_cmd.account_app, name="account")
app.add_typer(analytics_cmd.analytics_app, name="analytics")
app.add_typer(order_cmd.order_app, name="order")
app.add_typer(order_cmd.position_app, name="position")
app.add_typer(session_cmd.session_app, name="session")
api_command(app)(order_cmd.positions)
api_command(app)(order_cmd.trades)
api_command(app)(account_cmd.tiers)
api_command(app)(market_cmd.ticker)
api_command(app)(market_cmd.candles)
api_command(app)(api_cmd.book)
app.command(name="bench")(bench_cmd.bench)
app.command(name="backtest")(backtest_cmd.backtest)


def main() -> None:
    app()
