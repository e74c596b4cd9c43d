"""`tradehall serve` refuses TRADEHALL_CLOCK=manual unless it is a local or demo run."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from tests.unit.test_serve_refusal import SECRET, serve, started  # noqa: F401 (started: a fixture)

REAL = {"TRADEHALL_JWT_SECRET": SECRET, "TRADEHALL_ADMIN_PASSWORD": "a-real-password"}


def test_the_manual_clock_is_refused_outside_a_local_run(
    started: list[uvicorn.Config],  # noqa: F811
    tmp_path: Path,
) -> None:
    result = serve(tmp_path, {**REAL, "TRADEHALL_CLOCK": "manual"})
    assert result.exit_code == 2
    assert "TRADEHALL_CLOCK=manual" in " ".join(result.output.split())
    assert started == []


def test_the_manual_clock_starts_in_a_local_run(
    started: list[uvicorn.Config],  # noqa: F811
    tmp_path: Path,
) -> None:
    result = serve(tmp_path, {**REAL, "TRADEHALL_CLOCK": "manual"}, "--local")
    assert result.exit_code == 0, result.output
    assert len(started) == 1
