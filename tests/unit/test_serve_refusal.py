"""`tradehall serve` refuses the default JWT secret or admin password unless it is a local/demo run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from tradehall.api.server import ReadDeadlines
from tradehall.cli.main import app
from tradehall.cli.serve_cmd import EXIT_UNSAFE_DEFAULTS

runner = CliRunner()
SECRET = "a-real-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[uvicorn.Config]:
    """Records the uvicorn configuration instead of serving; no TRADEHALL_* from the environment."""
    for name in ("TRADEHALL_JWT_SECRET", "TRADEHALL_ADMIN_PASSWORD", "TRADEHALL_LOCAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no tradehall.toml from the working directory
    configs: list[uvicorn.Config] = []

    def run(self: uvicorn.Server, *args: Any, **kwargs: Any) -> None:
        configs.append(self.config)

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return configs


def serve(tmp_path: Path, env: dict[str, str], *extra: str) -> Any:
    return runner.invoke(app, ["serve", "--data-dir", str(tmp_path / "var"), *extra], env=env)


def test_default_secret_and_password_refused_with_exit_code_2(
    started: list[uvicorn.Config], tmp_path: Path
) -> None:
    result = serve(tmp_path, {})
    assert result.exit_code == EXIT_UNSAFE_DEFAULTS == 2
    output = " ".join(result.output.split())  # whatever the console's width
    assert "TRADEHALL_JWT_SECRET and TRADEHALL_ADMIN_PASSWORD are the default" in output
    assert "--local" in output
    assert started == []


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TRADEHALL_JWT_SECRET": SECRET}, "TRADEHALL_ADMIN_PASSWORD is the default"),
        ({"TRADEHALL_ADMIN_PASSWORD": "a-real-password"}, "TRADEHALL_JWT_SECRET is the default"),
    ],
)
def test_either_default_alone_is_refused(
    started: list[uvicorn.Config], tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = serve(tmp_path, env)
    assert result.exit_code == 2
    assert named in " ".join(result.output.split())
    assert started == []


def test_both_set_starts_with_the_timed_protocol(started: list[uvicorn.Config], tmp_path: Path) -> None:
    env = {
        "TRADEHALL_JWT_SECRET": SECRET,
        "TRADEHALL_ADMIN_PASSWORD": "a-real-password",
        "TRADEHALL_HTTP_HEADER_TIMEOUT_SECONDS": "7",
    }
    result = serve(tmp_path, env, "--port", "8123")
    assert result.exit_code == 0, result.output
    [config] = started
    assert config.port == 8123
    assert issubclass(config.http, ReadDeadlines)  # type: ignore[arg-type]
    assert config.http.header_timeout == 7.0  # type: ignore[union-attr]


@pytest.mark.parametrize(("env", "extra"), [({}, ("--local",)), ({"TRADEHALL_LOCAL": "1"}, ())])
def test_a_local_run_starts_with_the_defaults(
    started: list[uvicorn.Config], tmp_path: Path, env: dict[str, str], extra: tuple[str, ...]
) -> None:
    result = serve(tmp_path, env, *extra)
    assert result.exit_code == 0, result.output
    assert len(started) == 1
    assert "local run with the default" in " ".join(result.output.split())


def test_a_bad_shard_map_stops_serve_before_anything_starts(
    started: list[uvicorn.Config], tmp_path: Path
) -> None:
    env = {"TRADEHALL_LOCAL": "1", "TRADEHALL_CLUSTER_SHARDS": "A=BTC-USD;B=BTC-USD"}
    result = serve(tmp_path, env)
    assert result.exit_code == EXIT_UNSAFE_DEFAULTS
    assert result.output.strip() == (
        "error: shard map: market BTC-USD is in shards A and B: a market belongs to exactly one shard"
    )
    result = serve(tmp_path, {**env, "TRADEHALL_CLUSTER_SHARDS": "A=BTC-USD"}, "--workers", "2")
    assert result.exit_code == EXIT_UNSAFE_DEFAULTS
    assert "a cluster's gateway runs with --workers 1" in " ".join(result.output.split())
    assert started == []
