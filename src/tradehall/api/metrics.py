"""Prometheus metrics of the gateway, on the default registry that `/metrics` exposes.

The bus and feed modules register their own metrics on the same registry when they are imported;
`/metrics` imports them so their series exist (at zero) even before a bus or a feed is configured.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from tradehall.domain.fixedpoint import amount_of
from tradehall.engine import Engine, views

M = TypeVar("M", bound=MetricWrapperBase)
_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}


def labelled(metric: M, *values: str) -> M:
    """`metric.labels(*values)` (values in the order of its label names), the child kept: on the order
    path prometheus_client's `labels` (it checks the names and takes a lock on every call) cost 7 to 9 µs
    a call, three calls an order; a dict lookup costs under 1 µs. For labels of few values only."""
    child = _children.get((metric, values))
    if child is None:
        child = _children[(metric, values)] = metric.labels(*values)
    return child  # type: ignore[return-value]


_LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

ORDERS_TOTAL = Counter(
    "tradehall_orders_total", "Orders submitted, by market and result.", ["market", "result"]
)
ORDER_LATENCY = Histogram(
    "tradehall_order_latency_seconds",
    "Order placement: request in to durable acknowledgement, in seconds.",
    ["transport"],
    buckets=_LATENCY_BUCKETS,
)
TRADES_TOTAL = Counter("tradehall_trades_total", "Trades executed, by market.", ["market"])
WS_CONNECTIONS = Gauge("tradehall_ws_connections", "Open WebSocket connections.")
JOURNAL_FSYNC = Histogram(
    "tradehall_journal_fsync_seconds",
    "Duration of one journal fsync (group commit).",
    buckets=_LATENCY_BUCKETS,
)
REQUEST_LATENCY = Histogram(
    "tradehall_http_request_seconds",
    "HTTP request latency by route template and status class.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
PROJECTION_LAG = Gauge("tradehall_projection_lag", "Journal records not yet in the read models.")
RATE_LIMITED = Counter("tradehall_rate_limited_total", "Requests refused by the rate limiter.")
CONSERVATION_DIFFERENCE = Gauge(
    "tradehall_conservation_difference",
    "Per currency, users' plus system balances less (deposits - withdrawals), in currency units: "
    "always 0. Computed from the engine's balances when scraped.",
    ["currency"],
)
_engines: list[Callable[[], Engine]] = []

_PEER_METRICS = (
    "tradehall.bus.metrics",
    "tradehall.marketdata.metrics",
    "tradehall.strategies.sessions.metrics",
)


def _import_peer_metrics() -> None:
    for module in _PEER_METRICS:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


def watch_conservation(engine: Callable[[], Engine]) -> None:
    """`/metrics` computes the conservation gauge from this engine when scraped (the last one watched:
    one per process), so no command pays for it."""
    _engines[:] = [engine]


def _update_conservation() -> None:
    if not _engines:
        return
    engine = _engines[0]()
    for currency, (users, system, external) in views.money_by_currency(engine).items():
        places = views.currency_places(engine, currency)
        CONSERVATION_DIFFERENCE.labels(currency=currency).set(
            float(amount_of(users + system + external, places))
        )


def render() -> tuple[bytes, str]:
    _import_peer_metrics()
    _update_conservation()
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def timed_fsync(sync: Callable[[], Any], timer: Callable[[], float] = time.perf_counter) -> Callable[[], Any]:
    """Wraps the journal's sync so every fsync is observed in `tradehall_journal_fsync_seconds`
    (`timer`: tests inject a slow disk's timings)."""

    def timed() -> Any:
        started = timer()
        try:
            return sync()
        finally:
            JOURNAL_FSYNC.observe(timer() - started)

    return timed
