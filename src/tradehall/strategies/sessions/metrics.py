"""Prometheus metrics of live sessions, per session, on the default registry `/metrics` exposes."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SESSION_SIGNALS = Counter(
    "tradehall_session_signals_total",
    "Signals the session's strategies emitted, by action.",
    ["session", "action"],
)
SESSION_VETOES = Counter(
    "tradehall_session_vetoes_total", "Decisions a validator vetoed, by validator.", ["session", "validator"]
)
SESSION_ORDERS = Counter(
    "tradehall_session_orders_total",
    "Orders the session sent, by result (placed, or the engine's refusal code).",
    ["session", "result"],
)
SESSION_CYCLE_SECONDS = Histogram(
    "tradehall_session_cycle_seconds",
    "Duration of one trading cycle (bars to strategies, decisions, orders, stored), in seconds.",
    ["session"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SESSION_STATUS = Gauge(
    "tradehall_session_running", "1 while the session runs, 0 when paused, stopped or failed.", ["session"]
)
