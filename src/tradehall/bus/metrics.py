"""Prometheus metrics of the bus publisher (registered once, in the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PUBLISH_TOTAL = Counter(
    "tradehall_bus_publish_total", "Messages the bus publisher handed to the broker.", ["backend"]
)
PUBLISH_ERRORS_TOTAL = Counter(
    "tradehall_bus_publish_errors_total", "Failed publish attempts (the batch is retried).", ["backend"]
)
BACKLOG = Gauge("tradehall_bus_backlog", "Messages read from the journal and not yet published.", ["backend"])
