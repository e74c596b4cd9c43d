from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradehall.cli.main import app
from tradehall.store import current_revision, head_revision


def test_db_upgrade_current_and_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'cli.db'}"
    runner = CliRunner()
    result = runner.invoke(app, ["db", "current", "--url", url])
    assert result.exit_code == 0, result.output
    assert f"current base, head {head_revision()}" in result.output
    result = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert result.exit_code == 0, result.output
    assert current_revision(url) == head_revision()
    assert "up to date" in runner.invoke(app, ["db", "current", "--url", url]).output
    result = runner.invoke(app, ["db", "downgrade", "base", "--url", url])
    assert result.exit_code == 0, result.output
    assert current_revision(url) is None


def test_db_upgrade_defaults_to_the_sqlite_file_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEHALL_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("TRADEHALL_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "var" / "tradehall.sqlite3").exists()
    assert current_revision(f"sqlite:///{tmp_path / 'var' / 'tradehall.sqlite3'}") == head_revision()
