"""Prometheus metrics of the feeds, on the default registry that /metrics exposes."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from tradehall.marketdata.models import CircuitState

FEED_UP = Gauge("tradehall_feed_up", "1 when the feed is connected and delivering data.", ["feed"])
FEED_CIRCUIT_STATE = Gauge(
    "tradehall_feed_circuit_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.", ["feed"]
)
FEED_MESSAGES = Counter("tradehall_feed_messages", "Messages received from the feed.", ["feed"])
FEED_ERRORS = Counter("tradehall_feed_errors", "Feed errors by kind.", ["feed", "kind"])
FEED_IGNORED = Counter(
    "tradehall_feed_ignored",
    "Feed messages that carried no data (acks, unhandled types), by type; they never count as health.",
    ["feed", "type"],
)
MARKET_STALE = Gauge(
    "tradehall_market_stale",
    "1 while a routed market has had no quote for longer than its bound.",
    ["market"],
)
FEED_RESYNCS = Counter(
    "tradehall_feed_resyncs",
    "Local books rebuilt from a fresh snapshot, by reason (no_snapshot, best_mismatch, sequence_gap).",
    ["feed", "reason"],
)
FEED_MESSAGE_SHAPES = Counter(
    "tradehall_feed_message_shapes",
    "Provider messages of an older or informational shape, accepted or refused, by shape.",
    ["feed", "shape"],
)
FEED_LATENCY = Histogram(
    "tradehall_feed_latency_seconds",
    "Exchange timestamp to engine command, in seconds.",
    ["feed"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MARKS_REJECTED = Counter(
    "tradehall_marks_rejected",
    "Feed prices (quotes, marks) the engine refused, e.g. a mark outside a book market's mark band.",
    ["market"],
)

CIRCUIT_VALUE = {CircuitState.CLOSED: 0, CircuitState.OPEN: 1, CircuitState.HALF_OPEN: 2}


def set_circuit(feed: str, state: CircuitState) -> None:
    FEED_CIRCUIT_STATE.labels(feed=feed).set(CIRCUIT_VALUE[state])
