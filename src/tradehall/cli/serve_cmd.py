"""`tradehall serve` and `tradehall demo`."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import typer
from rich.panel import Panel

from tradehall.cli.common import console


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


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    data_dir: Path | None = typer.Option(
        None, help="Journal, snapshots and SQLite file (TRADEHALL_DATA_DIR)."
    ),
    log_format: str = typer.Option("json", help="json (one JSON object per line) or console."),
) -> None:
    """Start the API with the engine runner (configuration from TRADEHALL_* variables)."""
    import uvicorn

    from tradehall.api import create_app
    from tradehall.service.settings import Settings

    _configure_logs(log_format == "json")
    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    if settings.jwt_secret == Settings.model_fields["jwt_secret"].default:
        console.print("[yellow]warning:[/yellow] TRADEHALL_JWT_SECRET is the default; set it in production")
    console.print(f"tradehall serving on [bold]http://{host}:{port}[/bold] (data in {settings.data_dir})")
    # permessage-deflate costs more CPU per small JSON message than it saves on the loopback or a LAN
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ws_per_message_deflate=False,
    )


def demo(
    seed: int = typer.Option(7, "--seed", help="Seed of the price process and the bots (reproducible)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    data_dir: Path | None = typer.Option(None, help="Data directory (default ./var, TRADEHALL_DATA_DIR)."),
    interval: float = typer.Option(1.0, help="Seconds between two bot rounds."),
    duration: float | None = typer.Option(None, help="Stop after this many seconds (default: until Ctrl-C)."),
) -> None:
    """Start the server with demo markets, users and market-making bots; Ctrl-C stops it cleanly."""
    from tradehall.service.demo import DemoInfo, run_demo
    from tradehall.service.settings import Settings

    _configure_logs(json_logs=False)
    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)

    def show(info: DemoInfo) -> None:
        lines = [
            f"API         {info.url}   (docs {info.url}/docs, WebSocket {info.url.replace('http', 'ws')}/ws)",
            f"admin       {info.admin_user} / {info.admin_password}",
            f"demo user   {info.demo_user} / {info.demo_password}   account {info.demo_account}",
            f"API key     {info.demo_api_key}   (shown once)",
            f"markets     {', '.join(info.markets)}",
            "",
            f"try:  TRADEHALL_API_KEY={info.demo_api_key} tradehall book BTC-PERP",
            "Ctrl-C stops the demo (journal flushed, snapshot written).",
        ]
        console.print(Panel("\n".join(lines), title=f"tradehall demo (seed {seed})", expand=False))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_demo(
                settings,
                host=host,
                port=port,
                seed_value=seed,
                interval=interval,
                on_ready=show,
                duration=duration,
            )
        )
    console.print("demo stopped")
