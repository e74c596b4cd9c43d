"""The entry of each child process of `tradehall serve --workers N` (the supervisor starts them).

    python -m tradehall.cli.processes engine|gateway|projector|feeds
"""

from __future__ import annotations

import asyncio
import sys

from tradehall.api.processes import run_engine, run_gateway
from tradehall.cli.serve_cmd import _configure_logs
from tradehall.service.feeds_process import run_feeds
from tradehall.service.projection import run_projector
from tradehall.service.settings import Settings
from tradehall.service.supervisor import arm_lifeline

ROLES = ("engine", "gateway", "projector", "feeds")


def main(argv: list[str]) -> None:
    arm_lifeline()  # first: a child must never outlive its supervisor
    _configure_logs(json_logs=True)
    settings = Settings()
    role = argv[1] if len(argv) > 1 else ""
    if role == "engine":
        asyncio.run(run_engine(settings))
    elif role == "gateway":
        run_gateway(settings)
    elif role == "projector":
        asyncio.run(run_projector(settings))
    elif role == "feeds":
        asyncio.run(run_feeds(settings))
    else:
        raise SystemExit(f"usage: python -m tradehall.cli.processes {'|'.join(ROLES)}")


if __name__ == "__main__":
    main(sys.argv)
