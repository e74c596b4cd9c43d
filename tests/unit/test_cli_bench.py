"""`tradehall bench` runs the checkout's bench/run_all.py and refuses clearly outside a checkout."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tradehall.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def test_bench_outside_a_checkout_exits_2_with_a_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--checkout", str(tmp_path)])
    assert result.exit_code == 2
    assert "bench/run_all.py" in result.output


def test_bench_runs_one_quick_benchmark_as_json(tmp_path: Path) -> None:
    runner = tmp_path / "bench" / "run_all.py"
    runner.parent.mkdir()
    runner.write_text("import sys\nprint(sys.argv[1:])\n")
    result = CliRunner().invoke(
        app, ["bench", "--checkout", str(tmp_path), "--quick", "--json", "--only", "engine"]
    )
    assert result.exit_code == 0


def test_the_repository_has_the_runner() -> None:
    assert (ROOT / "bench" / "run_all.py").is_file()
