"""The alert rules as a Prometheus alerting rules file (`tradehall monitor rules`).

Each rule becomes one alert whose PromQL computes the same figure from the series `/metrics`
exposes: windowed ratios and percentiles with `rate` over the rule's window, "disconnected/open for
longer than T" as the state held `for` T. `promtool check rules` accepts the output.
"""

from __future__ import annotations

import json

from tradehall.api.monitor.rules import Rule

_REFUSED = 'result!~"accepted|repeated"'


def _window(seconds: float) -> str:
    whole = max(1, round(seconds))
    return f"{whole // 60}m" if whole % 60 == 0 else f"{whole}s"


def _duration(seconds: float) -> str:
    return _window(seconds) if seconds > 0 else "0s"


def _expr_and_for(rule: Rule) -> tuple[str, float]:
    """(PromQL that yields a series while the rule is breached, how long it must hold)."""
    w = _window(rule.window_seconds)
    op, t = rule.condition, f"{rule.threshold:g}"
    metric = rule.metric
    if rule.event is not None:
        series = {
            "order_refused": f"tradehall_orders_total{{{_REFUSED}}}",
            "feed_error": "tradehall_feed_errors_total",
            "bus_publish_error": "tradehall_bus_publish_errors_total",
            "mark_rejected": "tradehall_marks_rejected_total",
        }[rule.event]
        return f"sum(increase({series}[{w}])) {op} {t}", rule.for_seconds
    if metric == "order_latency_p99_seconds":
        expr = f"histogram_quantile(0.99, sum by (le) (rate(tradehall_order_latency_seconds_bucket[{w}])))"
        return f"{expr} {op} {t}", rule.for_seconds
    if metric == "journal_fsync_p99_seconds":
        expr = f"histogram_quantile(0.99, sum by (le) (rate(tradehall_journal_fsync_seconds_bucket[{w}])))"
        return f"{expr} {op} {t}", rule.for_seconds
    if metric == "order_failure_ratio":
        expr = (
            f"sum(rate(tradehall_orders_total{{{_REFUSED}}}[{w}])) / sum(rate(tradehall_orders_total[{w}]))"
        )
        return f"{expr} {op} {t}", rule.for_seconds
    if metric == "bus_publish_error_ratio":
        errors = f"sum(rate(tradehall_bus_publish_errors_total[{w}]))"
        expr = f"{errors} / ({errors} + sum(rate(tradehall_bus_publish_total[{w}])))"
        return f"{expr} {op} {t}", rule.for_seconds
    if metric == "feed_disconnected_seconds":
        return "tradehall_feed_up == 0", rule.for_seconds + rule.threshold
    if metric == "breaker_open_seconds":
        return "tradehall_feed_circuit_state == 1", rule.for_seconds + rule.threshold
    if metric == "projector_lag_records":
        return f"tradehall_projection_lag {op} {t}", rule.for_seconds
    if metric == "assessment_floor_headroom_percent":
        return f"tradehall_assessment_floor_headroom_percent {op} {t}", rule.for_seconds
    raise KeyError(rule.source)


def _camel(name: str) -> str:
    return "Tradehall" + "".join(part.capitalize() for part in name.split("_"))


def prometheus_rules(rules: tuple[Rule, ...], group: str = "tradehall") -> str:
    """The YAML text of a Prometheus rules file with one group holding every rule."""
    lines = ["groups:", f"  - name: {json.dumps(group)}", "    rules:"]
    for rule in rules:
        expr, hold = _expr_and_for(rule)
        summary = rule.description or f"{rule.source} {rule.condition} {rule.threshold:g}"
        lines += [
            f"      - alert: {_camel(rule.name)}",
            f"        expr: {json.dumps(expr)}",
            f"        for: {_duration(hold)}",
            "        labels:",
            f"          severity: {json.dumps(rule.severity)}",
            f"          rule: {json.dumps(rule.name)}",
            "        annotations:",
            f"          summary: {json.dumps(summary)}",
            f"          value: {json.dumps('{{ $value }}')}",
        ]
    return "\n".join(lines) + "\n"
