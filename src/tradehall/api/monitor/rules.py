"""Alert rules: what a rule is, the built-ins, and loading a TOML rules file with clear errors.

A rule watches one *metric* (a figure the monitor computes from the process's own Prometheus series and
state, e.g. `order_latency_p99_seconds`) or one *event* (a counter's increase over the window, e.g.
`order_refused`), compares it with `threshold` by `condition`, and fires once the comparison has held
for `for_seconds`; it resolves when the comparison fails. After a firing, the same rule does not fire
again within `cooldown_seconds` of it (a flapping condition alerts once per cooldown).
"""

from __future__ import annotations

import math
import operator
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
CONDITIONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

METRICS: dict[str, str] = {
    "order_latency_p99_seconds": "99th percentile of order placement latency over the window",
    "order_failure_ratio": "refused orders / all orders submitted over the window (0..1)",
    "feed_disconnected_seconds": "longest time any market-data feed has been disconnected",
    "breaker_open_seconds": "longest time any feed's circuit breaker has been open",
    "bus_publish_error_ratio": "failed bus publishes / all publish attempts over the window (0..1)",
    "assessment_floor_headroom_percent": "least headroom of any running assessment above its floor, in %",
    "journal_fsync_p99_seconds": "99th percentile of one journal fsync over the window",
    "projector_lag_records": "journal records not yet in the read models",
}
"""The metrics a rule may watch, with what each one is."""

EVENTS: dict[str, str] = {
    "order_refused": "orders refused (any refusal code) within the window",
    "feed_error": "market-data feed errors within the window",
    "bus_publish_error": "failed bus publish attempts within the window",
    "mark_rejected": "feed prices the engine refused within the window",
}
"""The events a rule may count: the increase of a counter over the window."""

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the file, the rule and the field."""


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    severity: Severity
    condition: str
    threshold: float
    metric: str | None = None
    event: str | None = None
    window_seconds: float = 300.0
    for_seconds: float = 0.0
    cooldown_seconds: float = 600.0
    description: str = ""

    @property
    def source(self) -> str:
        """The metric or event watched."""
        return self.metric if self.metric is not None else f"event:{self.event}"

    def breached(self, value: float) -> bool:
        return CONDITIONS[self.condition](value, self.threshold)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "event": self.event,
            "condition": self.condition,
            "threshold": self.threshold,
            "window_seconds": self.window_seconds,
            "for_seconds": self.for_seconds,
            "cooldown_seconds": self.cooldown_seconds,
            "severity": self.severity,
            "description": self.description,
        }


BUILTIN_RULES: tuple[Rule, ...] = (
    Rule(
        "order_latency_high",
        "warning",
        ">",
        0.05,
        metric="order_latency_p99_seconds",
        description="Order latency p99 above 50 ms",
    ),
    Rule(
        "order_failure_rate_high",
        "warning",
        ">",
        0.01,
        metric="order_failure_ratio",
        description="More than 1 % of orders refused",
    ),
    Rule(
        "feed_disconnected",
        "critical",
        ">",
        300.0,
        metric="feed_disconnected_seconds",
        description="A market-data feed disconnected for more than 5 minutes",
    ),
    Rule(
        "circuit_breaker_open",
        "critical",
        ">",
        600.0,
        metric="breaker_open_seconds",
        description="A feed's circuit breaker open for more than 10 minutes",
    ),
    Rule(
        "bus_publish_errors",
        "warning",
        ">",
        0.001,
        metric="bus_publish_error_ratio",
        description="More than 0.1 % of bus publishes failing",
    ),
    Rule(
        "assessment_near_floor",
        "info",
        "<",
        5.0,
        metric="assessment_floor_headroom_percent",
        description="An assessment's equity within 5 % of its floor",
    ),
    Rule(
        "journal_fsync_slow",
        "warning",
        ">",
        0.1,
        metric="journal_fsync_p99_seconds",
        description="Journal fsync p99 above 100 ms",
    ),
    Rule(
        "projector_lag_high",
        "warning",
        ">",
        10_000.0,
        metric="projector_lag_records",
        description="Read models more than 10 000 records behind the journal",
    ),
)


def parse_duration(value: object, where: str) -> float:
    """Seconds from a number of seconds or a string such as "500ms", "30s", "5m", "1h", "1d"."""
    if isinstance(value, bool):
        raise RulesError(f"{where}: a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise RulesError(f'{where}: a duration such as 30, "30s", "5m" or "1h", got {value!r}')
    if not math.isfinite(seconds) or seconds < 0:
        raise RulesError(f"{where}: a duration of zero or more, got {value!r}")
    return seconds


_FIELDS = frozenset(
    {
        "name",
        "metric",
        "event",
        "condition",
        "threshold",
        "window",
        "for",
        "cooldown",
        "severity",
        "description",
        "enabled",
    }
)


def rule_of(table: Mapping[str, Any], where: str) -> Rule:
    """One rule from its TOML table, or RulesError naming the first problem."""
    unknown = sorted(set(table) - _FIELDS)
    if unknown:
        raise RulesError(f"{where}: unknown field(s) {', '.join(unknown)}")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RulesError(f"{where}: `name` must be lower_snake_case (a-z, 0-9, _), got {name!r}")
    where = f"{where} ({name})"
    metric, event = table.get("metric"), table.get("event")
    if (metric is None) == (event is None):
        raise RulesError(f"{where}: give exactly one of `metric` or `event`")
    if metric is not None and metric not in METRICS:
        raise RulesError(f"{where}: unknown metric {metric!r}; one of {', '.join(sorted(METRICS))}")
    if event is not None and event not in EVENTS:
        raise RulesError(f"{where}: unknown event {event!r}; one of {', '.join(sorted(EVENTS))}")
    condition = table.get("condition", ">")
    if condition not in CONDITIONS:
        raise RulesError(f"{where}: `condition` must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    threshold = table.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise RulesError(f"{where}: `threshold` must be a number, got {threshold!r}")
    severity = table.get("severity", "warning")
    if severity not in SEVERITIES:
        raise RulesError(f"{where}: `severity` must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise RulesError(f"{where}: `description` must be a string")
    window = parse_duration(table.get("window", 300), f"{where}: window")
    if window <= 0:
        raise RulesError(f"{where}: `window` must be longer than zero")
    return Rule(
        name=name,
        severity=severity,
        condition=condition,
        threshold=float(threshold),
        metric=metric,
        event=event,
        window_seconds=window,
        for_seconds=parse_duration(table.get("for", 0), f"{where}: for"),
        cooldown_seconds=parse_duration(table.get("cooldown", 600), f"{where}: cooldown"),
        description=description,
    )


def rules_of(document: Mapping[str, Any], where: str = "rules") -> tuple[Rule, ...]:
    """The rules a parsed rules document gives: the built-ins (unless `builtins = false`), each replaced
    by a `[[rules]]` entry of the same name or switched off with `enabled = false`, then the new ones."""
    unknown = sorted(set(document) - {"builtins", "rules"})
    if unknown:
        raise RulesError(f"{where}: unknown top-level key(s) {', '.join(unknown)}")
    builtins = document.get("builtins", True)
    if not isinstance(builtins, bool):
        raise RulesError(f"{where}: `builtins` must be true or false")
    tables = document.get("rules", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RulesError(f"{where}: `rules` must be an array of tables ([[rules]])")
    rules: dict[str, Rule | None] = {rule.name: rule for rule in BUILTIN_RULES} if builtins else {}
    seen: set[str] = set()
    for index, table in enumerate(tables):
        place = f"{where}: rules[{index}]"
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise RulesError(f"{place}: `enabled` must be true or false")
        name = table.get("name")
        if isinstance(name, str) and name in seen:
            raise RulesError(f"{place}: a second rule named {name!r}")
        if not enabled and isinstance(name, str) and set(table) <= {"name", "enabled"}:
            if name not in rules:
                raise RulesError(f"{place}: no built-in rule named {name!r} to switch off")
            rules[name] = None
            seen.add(name)
            continue
        rule = rule_of(table, place)
        seen.add(rule.name)
        rules[rule.name] = rule if enabled else None
    return tuple(rule for rule in rules.values() if rule is not None)


def load_rules(path: Path | None) -> tuple[Rule, ...]:
    """The rules of the TOML file at `path` (None: the built-ins)."""
    if path is None:
        return BUILTIN_RULES
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RulesError(f"{path}: cannot read the rules file ({error.strerror or error})") from error
    except tomllib.TOMLDecodeError as error:
        raise RulesError(f"{path}: not valid TOML ({error})") from error
    return rules_of(document, str(path))
