"""`tradehall serve` (and `tradehall demo`, from `demo_cmd`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tradehall.cli.common import console, err_console
from tradehall.cli.demo_cmd import demo as demo  # the demo lives in demo_cmd; `serve_cmd.demo` kept

if TYPE_CHECKING:
    from tradehall.service.settings import Settings

EXIT_UNSAFE_DEFAULTS = 2
"""`tradehall serve` refused to start: a default secret, and no --local / TRADEHALL_LOCAL (the CLI's
"refused: bad input" code)."""


def _configure_logs(json_logs: bool) -> None:
    """Key-value logs at INFO (the projector's per-batch lines are DEBUG); JSON lines for `serve`."""
    import logging
    import warnings

    import structlog

    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json_logs:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer())
    structlog.configure(
        processors=processors, wrapper_class=structlog.make_filtering_bound_logger(logging.INFO)
    )
    warnings.filterwarnings("ignore", message=".*HMAC key.*")


def _supervise(settings: Settings, host: str, port: int, workers: int, *, local: bool) -> int:
    """`serve --workers N`: the engine process, then the projector, the feeds (when configured) and N
    gateways on one pre-bound socket."""
    from tradehall.service.supervisor import STATUS_FILE, ChildSpec, Supervisor, bind_listener
    from tradehall.service.transport import engine_address

    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {"TRADEHALL_DATA_DIR": str(data_dir)}
    if local:
        env["TRADEHALL_LOCAL"] = "1"
    entry = [sys.executable, "-m", "tradehall.cli.processes"]
    engine_socket = Path(engine_address(data_dir).removeprefix("ipc://"))
    children = [ChildSpec("engine", [*entry, "engine"], env, ready_path=engine_socket)]
    children.append(ChildSpec("projector", [*entry, "projector"], env))
    if settings.marketdata_config is not None:
        children.append(ChildSpec("feeds", [*entry, "feeds"], env))
    children += [ChildSpec(f"gateway-{n}", [*entry, "gateway"], env) for n in range(1, workers + 1)]
    supervisor = Supervisor(children, status_path=data_dir / STATUS_FILE, listener=bind_listener(host, port))
    return supervisor.run()


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    data_dir: Path | None = typer.Option(
        None, help="Journal, snapshots and SQLite file (TRADEHALL_DATA_DIR)."
    ),
    log_format: str = typer.Option("json", help="json (one JSON object per line) or console."),
    local: bool = typer.Option(
        False,
        "--local",
        help="A local or demo run: start even with the default JWT secret or admin password "
        "(TRADEHALL_LOCAL=1).",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        help="Gateway processes. 1 (the default): one process does everything. N > 1: an engine "
        "process, a projector process, a feeds process (with TRADEHALL_MARKETDATA_CONFIG) and N "
        "gateway processes sharing the port, supervised. 0: one gateway per core.",
    ),
) -> None:
    """Start the API with the engine runner (configuration from TRADEHALL_* variables).

    Refuses to start (exit code 2) while TRADEHALL_JWT_SECRET or TRADEHALL_ADMIN_PASSWORD is the
    default, unless --local or TRADEHALL_LOCAL=1 says it is a local or demo run."""
    import uvicorn

    from tradehall.api import create_app
    from tradehall.api.server import uvicorn_config
    from tradehall.service.settings import Settings

    _configure_logs(log_format == "json")
    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    unsafe = settings.default_secrets()
    if unsafe and not (local or settings.local):
        names = " and ".join(unsafe)
        err_console.print(
            f"[red]error:[/red] {names} {'is' if len(unsafe) == 1 else 'are'} the default: anyone could "
            "sign tokens or log in as admin. Set them, or pass --local (TRADEHALL_LOCAL=1) for a local "
            "or demo run."
        )
        raise typer.Exit(EXIT_UNSAFE_DEFAULTS)
    if settings.clock == "manual" and not (local or settings.local):
        err_console.print(
            "[red]error:[/red] TRADEHALL_CLOCK=manual lets an admin move the venue's time: tests and "
            "demos only. Pass --local (TRADEHALL_LOCAL=1) for such a run."
        )
        raise typer.Exit(EXIT_UNSAFE_DEFAULTS)
    from tradehall.api.monitor import RulesError, load_rules

    try:
        load_rules(settings.monitor_rules_file)  # checked before anything starts
    except RulesError as error:
        err_console.print(f"[red]error:[/red] {error}", markup=False, highlight=False)
        raise typer.Exit(EXIT_UNSAFE_DEFAULTS) from None
    from tradehall.service.cluster.shards import ShardMapError, shard_map_of

    try:  # a cluster's gateway: the shard map is checked before anything starts
        shard_map = shard_map_of(
            settings.cluster_shards, settings.cluster_shards_file, settings.cluster_home_shard
        )
    except ShardMapError as error:
        err_console.print(f"error: shard map: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_UNSAFE_DEFAULTS) from None
    if shard_map is not None and workers != 1:
        err_console.print(
            "[red]error:[/red] a cluster's gateway runs with --workers 1: run more gateways instead"
        )
        raise typer.Exit(EXIT_UNSAFE_DEFAULTS)
    if unsafe:
        console.print(f"[yellow]warning:[/yellow] local run with the default {' and '.join(unsafe)}")
    if workers == 0:
        workers = os.cpu_count() or 1
    console.print(
        f"tradehall serving on [bold]http://{host}:{port}[/bold] (data in {settings.data_dir})"
        + (f", {workers} gateway processes, an engine and a projector process" if workers > 1 else "")
    )
    if workers > 1:
        raise typer.Exit(_supervise(settings, host, port, workers, local=local))
    uvicorn.Server(uvicorn_config(create_app(settings), settings, host=host, port=port)).run()
