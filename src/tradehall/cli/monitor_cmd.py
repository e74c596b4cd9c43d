"""`tradehall monitor rules`: the alert rules as a Prometheus alerting rules file;
`tradehall monitor status`: the server's health and the alerts firing (admin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from tradehall.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_REFUSED,
    JSON_OPTION,
    api_command,
    api_errors,
    client_of,
    emit,
    fail,
    table,
)

monitor_app = typer.Typer(
    name="monitor", help="The trading monitor: alert rules and health.", no_args_is_help=True
)


@monitor_app.command("rules")
def rules(
    rules_file: Path | None = typer.Option(
        None,
        "--rules-file",
        help="A TOML rules file (default: TRADEHALL_MONITOR_RULES_FILE, else the built-ins).",
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of standard output."),
) -> None:
    """Write the alert rules as a Prometheus alerting rules file (`promtool check rules` accepts it)."""
    from tradehall.api.monitor import RulesError, load_rules
    from tradehall.api.monitor.promrules import prometheus_rules
    from tradehall.service.settings import Settings

    path = rules_file if rules_file is not None else Settings().monitor_rules_file
    try:
        text = prometheus_rules(load_rules(path))
    except RulesError as error:
        fail(str(error), EXIT_REFUSED)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")


@api_command(monitor_app, "status")
def status(
    ctx: typer.Context,
    as_json: bool = JSON_OPTION,
    fail_unhealthy: bool = typer.Option(
        False, "--check", help="Exit 1 unless the health is HEALTHY (for scripts)."
    ),
) -> None:
    """The server's health (HEALTHY, DEGRADED, CRITICAL) and the alerts firing (admin)."""
    with api_errors():
        client = client_of(ctx)
        rules = client.alert_rules()
        firing = client.alerts(status="firing", limit=1000)["items"]
    data: dict[str, Any] = {"health": rules["health"], "firing": firing}

    def render(d: dict[str, Any]) -> None:
        typer.echo(f"health: {d['health']}")
        table(
            "alerts firing",
            ("rule", "severity", "value", "since"),
            [[a["rule"], a["severity"], f"{a['value']:g}", a["started_at"]] for a in d["firing"]],
        )

    emit(data, as_json, render)
    if fail_unhealthy and data["health"] != "HEALTHY":
        raise typer.Exit(EXIT_CHECK_FAILED)
