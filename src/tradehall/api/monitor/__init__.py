"""The trading monitor: alert rules evaluated inside the service, alerts to the store, the admin
WebSocket channel `alerts` and webhooks, and the system's health (docs/operations.md "Alert rules")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from tradehall.api.monitor.monitor import Alert, Health, Monitor
from tradehall.api.monitor.probes import Probes
from tradehall.api.monitor.rules import BUILTIN_RULES, Rule, RulesError, load_rules
from tradehall.api.monitor.webhooks import WebhookSender
from tradehall.marketdata.models import FeedStatus
from tradehall.store import alerts as alert_store

if TYPE_CHECKING:
    from tradehall.service.settings import Settings
    from tradehall.service.wiring import Service

__all__ = [
    "BUILTIN_RULES",
    "Alert",
    "Health",
    "Monitor",
    "MonitorRuntime",
    "Probes",
    "Rule",
    "RulesError",
    "WebhookSender",
    "load_rules",
]


class AlertChannel(Protocol):
    """The WebSocket hub's side of the `alerts` channel."""

    alerts_firing: Callable[[], list[dict[str, Any]]] | None

    def publish_alert(self, alert: dict[str, Any]) -> None: ...


def _at(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class MonitorRuntime:
    """The monitor of one server process and where its alerts go (built in the app's lifespan)."""

    def __init__(self, settings: Settings, service: Service, hub: AlertChannel) -> None:
        self.service = service

        def feeds() -> list[FeedStatus]:
            registry = service.integrations.feeds
            return [] if registry is None else registry.statuses()

        probes = Probes(
            feeds=feeds,
            projection_lag=lambda: service.projection_lag,
            engine=lambda: service.engine,
        )
        self.monitor = Monitor(
            load_rules(settings.monitor_rules_file), probes, interval=settings.monitor_interval_seconds
        )
        self.webhooks = WebhookSender(
            settings.alert_webhooks,
            timeout_seconds=settings.alert_webhook_timeout_seconds,
            retries=settings.alert_webhook_retries,
            backoff_seconds=settings.alert_webhook_backoff_seconds,
            queue_size=settings.alert_webhook_queue,
        )
        self.hub = hub
        self.loop: asyncio.AbstractEventLoop | None = None
        hub.alerts_firing = lambda: [alert.to_json() for alert in self.monitor.firing()]
        self.monitor.listeners += [self.store_alert, self.publish_alert, self.webhooks.on_alert]

    async def store_alert(self, alert: Alert) -> None:
        await self.service.store.call(
            alert_store.save_alert,
            alert.id,
            rule=alert.rule,
            severity=alert.severity,
            status=alert.status,
            value=alert.value,
            started_at=datetime.fromtimestamp(alert.started_at, UTC),
            resolved_at=_at(alert.resolved_at),
        )

    async def publish_alert(self, alert: Alert) -> None:
        self.hub.publish_alert(alert.to_json())

    async def start(self) -> None:
        """Close what a previous process left firing, then evaluate every interval."""
        self.loop = asyncio.get_running_loop()
        now = datetime.fromtimestamp(self.monitor.clock(), UTC)
        await self.service.store.call(alert_store.resolve_firing_alerts, now)
        self.monitor.start()

    async def close(self) -> None:
        await self.monitor.close()
        await self.webhooks.close()
