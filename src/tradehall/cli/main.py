"""The `tradehall` command line (Typer + Rich). Sub-command groups live in their own modules."""

from __future__ import annotations

import typer

from tradehall.cli.db_cmd import db_app
from tradehall.cli.feeds_cmd import feeds_app
from tradehall.cli.journal_cmd import journal_app

app = typer.Typer(name="tradehall", help="A self-hostable trading engine.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(feeds_app, name="feeds")
app.add_typer(journal_app, name="journal")


@app.command()
def demo(seed: int = typer.Option(7, help="Seed of the scripted demo.")) -> None:
    """Run the scripted engine demo: two markets, a few orders, the book, fills, balances, positions."""
    from tradehall.cli.demo import run_scripted_demo

    run_scripted_demo(seed)


def main() -> None:
    app()
