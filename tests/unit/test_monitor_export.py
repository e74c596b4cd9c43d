"""`tradehall monitor rules`: the alert rules as a Prometheus rules file that `promtool` accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import REQUIRE_SERVICES
from tradehall.api.monitor import BUILTIN_RULES
from tradehall.api.monitor.promrules import prometheus_rules
from tradehall.cli.main import app

RULES_FILE = """
[[rules]]
name = "order_latency_high"
metric = "order_latency_p99_seconds"
threshold = 0.02
window = "90s"
for = "30s"
severity = "critical"

[[rules]]
name = "refusal_burst"
event = "order_refused"
threshold = 50
window = "1m"
"""


def promtool() -> str:
    found = shutil.which("promtool")
    if found is not None:
        return found
    message = "promtool is not installed (apt-get install prometheus)"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and TRADEHALL_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(f"{message}; CI installs it")


def check(binary: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, "check", "rules", str(path)], capture_output=True, text=True, check=False)


def test_the_builtin_rules_as_promql() -> None:
    text = prometheus_rules(BUILTIN_RULES)
    assert text.count("- alert: ") == len(BUILTIN_RULES)
    assert (
        'expr: "histogram_quantile(0.99, sum by (le) '
        '(rate(tradehall_order_latency_seconds_bucket[5m]))) > 0.05"' in text
    )
    disconnected = '      - alert: TradehallFeedDisconnected\n        expr: "tradehall_feed_up == 0"\n'
    assert disconnected + "        for: 5m\n" in text
    assert 'expr: "tradehall_feed_circuit_state == 1"\n        for: 10m\n' in text
    assert 'expr: "tradehall_assessment_floor_headroom_percent < 5"' in text


def test_promtool_accepts_the_builtin_and_a_files_rules(tmp_path: Path) -> None:
    binary = promtool()
    rules_file = tmp_path / "alerts.toml"
    rules_file.write_text(RULES_FILE)
    output = tmp_path / "alerts.yml"
    result = CliRunner().invoke(app, ["monitor", "rules", "--rules-file", str(rules_file), "-o", str(output)])
    assert result.exit_code == 0, result.output
    text = output.read_text()
    assert text.count("- alert: ") == len(BUILTIN_RULES) + 1
    assert 'expr: "sum(increase(tradehall_orders_total{result!~\\"accepted|repeated\\"}[1m])) > 50"' in text
    assert "[90s]" in text and "for: 30s" in text
    checked = check(binary, output)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(BUILTIN_RULES) + 1} rules found" in checked.stdout
    builtins = tmp_path / "builtins.yml"
    assert CliRunner().invoke(app, ["monitor", "rules", "-o", str(builtins)]).exit_code == 0
    checked = check(binary, builtins)
    assert f"SUCCESS: {len(BUILTIN_RULES)} rules found" in checked.stdout


def test_a_bad_rules_file_is_refused_by_the_cli(tmp_path: Path) -> None:
    rules_file = tmp_path / "alerts.toml"
    rules_file.write_text('[[rules]]\nname = "x"\nmetric = "cpu"\nthreshold = 1\n')
    result = CliRunner().invoke(app, ["monitor", "rules", "--rules-file", str(rules_file)])
    assert result.exit_code == 2
    assert "unknown metric 'cpu'" in result.output


def test_serve_refuses_a_bad_rules_file_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules_file = tmp_path / "alerts.toml"
    rules_file.write_text(
        '[[rules]]\nname = "late"\nmetric = "order_latency_p99_seconds"\nthreshold = 1\nfor = -1\n'
    )
    monkeypatch.setenv("TRADEHALL_MONITOR_RULES_FILE", str(rules_file))
    result = CliRunner().invoke(
        app, ["serve", "--local", "--data-dir", str(tmp_path / "data"), "--log-format", "console"]
    )
    assert result.exit_code == 2
    assert "rules[0] (late): for: a duration of zero or more, got -1" in " ".join(result.output.split())
    assert not (tmp_path / "data" / "journal").exists()
