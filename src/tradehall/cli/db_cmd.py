"""`tradehall db upgrade|downgrade|current`: schema migrations of the read-model database."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

db_app = typer.Typer(name="db", help="Read-model database migrations (Alembic).", no_args_is_help=True)
console = Console()

URL_HELP = "SQLAlchemy URL; default: TRADEHALL_DATABASE_URL, else the SQLite file in TRADEHALL_DATA_DIR."


def _resolve_url(url: str | None) -> str:
    if url:
        resolved = url
    else:
        from tradehall.service.settings import Settings

        resolved = Settings().sqlalchemy_url
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return resolved


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@db_app.command()
def upgrade(
    revision: str = typer.Argument("head", help="Target revision."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    from tradehall.store import migrate

    resolved = _resolve_url(url)
    migrate.upgrade(resolved, revision)
    revision_now = migrate.current_revision(resolved)
    console.print(f"[green]database at revision {revision_now}[/green] ({_shown(resolved)})")


@db_app.command()
def downgrade(
    revision: str = typer.Argument(..., help="Target revision ('base' removes every table)."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Revert migrations down to REVISION."""
    from tradehall.store import migrate

    resolved = _resolve_url(url)
    migrate.downgrade(resolved, revision)
    console.print(f"database at revision {migrate.current_revision(resolved) or 'base'} ({_shown(resolved)})")


@db_app.command()
def current(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """Show the database's revision and the latest one available."""
    from tradehall.store import migrate

    resolved = _resolve_url(url)
    now = migrate.current_revision(resolved) or "base"
    head = migrate.head_revision() or "base"
    state = "up to date" if now == head else "behind: run `tradehall db upgrade`"
    console.print(f"current {now}, head {head} ({state}) ({_shown(resolved)})")
