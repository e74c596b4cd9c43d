"""`tradehall bench`: the benchmarks of a source checkout (they live in bench/, not in the package)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer


def bench(
    quick: bool = typer.Option(False, "--quick", help="Each benchmark's under-30-seconds run."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object per figure."),
    only: str = typer.Option(
        "",
        help="Comma-separated: engine, stops, routing, durability, projector, feed, bus, api, abuse,"
        " backtest.",
    ),
    checkout: Path = typer.Option(Path("."), help="The tradehall source checkout that holds bench/."),
) -> None:
    """Run the benchmarks (bench/run_all.py) and print their figures and commands."""
    runner = checkout / "bench" / "run_all.py"
    if not runner.is_file():
        typer.echo(
            f"no bench/run_all.py under {checkout.resolve()}: run this in a tradehall checkout", err=True
        )
        raise typer.Exit(2)
    command = [sys.executable, str(runner)]
    command += ["--quick"] if quick else []
    command += ["--json"] if json_output else []
    command += ["--only", only] if only else []
    raise typer.Exit(subprocess.run(command, check=False).returncode)
