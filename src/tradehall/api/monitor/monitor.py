"""The trading monitor: evaluates the rules on its clock, fires and resolves alerts, and sums them up
as the system's health.

`evaluate()` is synchronous and deterministic given the clock and the probes (tests call it
directly); `run()` calls it every `interval` seconds and hands each alert change to the listeners
(the read-model store, the admin WebSocket channel `alerts`, the webhooks), none of which can slow
or break the engine: the monitor runs in its own task and only reads.

Health: CRITICAL while a `critical` rule fires, else DEGRADED while a `warning` rule fires, else
HEALTHY (`info` rules never change it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog
from prometheus_client import Gauge

from tradehall.api.convert import rfc3339
from tradehall.api.monitor.probes import Probes
from tradehall.api.monitor.rules import Rule

log = structlog.get_logger(__name__)


class Health(StrEnum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    CRITICAL = "CRITICAL"


HEALTH_VALUE = {Health.HEALTHY: 0, Health.DEGRADED: 1, Health.CRITICAL: 2}

SYSTEM_HEALTH = Gauge("tradehall_system_health", "The monitor's verdict: 0 HEALTHY, 1 DEGRADED, 2 CRITICAL.")
ALERTS_FIRING = Gauge(
    "tradehall_alerts_firing", "1 while the alert rule fires, else 0.", ["rule", "severity"]
)


def iso(at: float) -> str:
    return rfc3339(datetime.fromtimestamp(at, UTC))


@dataclass(slots=True)
class Alert:
    """One firing of a rule, from when it fired to when it resolved (the `GET /alerts` item)."""

    id: str
    rule: str
    severity: str
    status: str
    value: float
    started_at: float
    resolved_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "severity": self.severity,
            "status": self.status,
            "value": self.value,
            "started_at": iso(self.started_at),
            "resolved_at": None if self.resolved_at is None else iso(self.resolved_at),
        }


@dataclass(slots=True)
class RuleState:
    pending_since: float | None = None
    firing: Alert | None = None
    last_fired_at: float | None = None
    last_value: float | None = None


AlertListener = Callable[[Alert], Awaitable[None]]


class Monitor:
    def __init__(
        self,
        rules: tuple[Rule, ...],
        probes: Probes,
        *,
        clock: Callable[[], float] = time.time,
        interval: float = 5.0,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.rules = rules
        self.probes = probes
        self.clock = clock
        self.interval = interval
        self.new_id = new_id
        self.states = {rule.name: RuleState() for rule in rules}
        self.listeners: list[AlertListener] = []
        self._task: asyncio.Task[None] | None = None
        probes.keep_seconds = max([probes.keep_seconds, *(r.window_seconds for r in rules)])
        for rule in rules:
            ALERTS_FIRING.labels(rule=rule.name, severity=rule.severity).set(0)
        SYSTEM_HEALTH.set(0)

    def value(self, rule: Rule, now: float) -> float | None:
        if rule.metric is not None:
            return self.probes.metric(rule.metric, rule.window_seconds, now)
        assert rule.event is not None
        return self.probes.increase(rule.event, rule.window_seconds)

    def evaluate(self) -> list[Alert]:
        """One evaluation at the clock's now: the alerts that fired or resolved (copies), in rule order."""
        now = self.clock()
        self.probes.take(now)
        changes: list[Alert] = []
        for rule in self.rules:
            state = self.states[rule.name]
            try:
                value = self.value(rule, now)
            except Exception as error:  # a probe that fails must not stop the other rules
                log.warning("monitor_probe_failed", rule=rule.name, error=repr(error))
                continue
            state.last_value = value
            breached = value is not None and rule.breached(value)
            if not breached:
                state.pending_since = None
                if state.firing is not None:
                    alert = state.firing
                    alert.status, alert.resolved_at = "resolved", now
                    state.firing = None
                    ALERTS_FIRING.labels(rule=rule.name, severity=rule.severity).set(0)
                    changes.append(Alert(**{k: getattr(alert, k) for k in Alert.__slots__}))
                continue
            assert value is not None
            if state.firing is not None:
                continue
            if state.pending_since is None:
                state.pending_since = now
            if now - state.pending_since < rule.for_seconds:
                continue
            if state.last_fired_at is not None and now - state.last_fired_at < rule.cooldown_seconds:
                continue  # fired recently: once per cooldown
            alert = Alert(self.new_id(), rule.name, rule.severity, "firing", value, now)
            state.firing, state.last_fired_at = alert, now
            ALERTS_FIRING.labels(rule=rule.name, severity=rule.severity).set(1)
            changes.append(Alert(**{k: getattr(alert, k) for k in Alert.__slots__}))
        SYSTEM_HEALTH.set(HEALTH_VALUE[self.health])
        return changes

    def firing(self) -> list[Alert]:
        return [state.firing for state in self.states.values() if state.firing is not None]

    @property
    def health(self) -> Health:
        severities = {alert.severity for alert in self.firing()}
        if "critical" in severities:
            return Health.CRITICAL
        if "warning" in severities:
            return Health.DEGRADED
        return Health.HEALTHY

    def status(self) -> dict[str, Any]:
        """The `monitor` check of /ready (public: the rules firing by name, no values)."""
        return {
            "health": self.health.value,
            "firing": sorted(alert.rule for alert in self.firing()),
            "rules": len(self.rules),
        }

    async def tick(self) -> list[Alert]:
        """Evaluate once and hand the changes to every listener (a failing listener is logged)."""
        changes = self.evaluate()
        for alert in changes:
            log.info(
                "alert", rule=alert.rule, status=alert.status, severity=alert.severity, value=alert.value
            )
            for listener in self.listeners:
                try:
                    await listener(alert)
                except Exception as error:
                    log.warning("alert_listener_failed", rule=alert.rule, error=repr(error))
        return changes

    async def run(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.tick()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self.interval > 0 and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self.run(), name="monitor")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
