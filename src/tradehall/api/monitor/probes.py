"""The figures alert rules watch, read from the process's own Prometheus series and state.

Counters and histograms are sampled at each evaluation (cumulative values, kept for the longest
window), so a windowed figure is the difference between now and the sample one window ago, as
Prometheus' `rate`/`increase` would compute it. Durations ("disconnected for") are measured on the
monitor's clock from the first evaluation that saw the state. Nothing here touches the engine's hot
path: the engine is read through `views` between commands, from the monitor's task.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

from tradehall.api.metrics import JOURNAL_FSYNC, ORDER_LATENCY, ORDERS_TOTAL
from tradehall.bus.metrics import PUBLISH_ERRORS_TOTAL, PUBLISH_TOTAL
from tradehall.engine import Engine, views
from tradehall.marketdata.metrics import FEED_ERRORS, MARKS_REJECTED
from tradehall.marketdata.models import CircuitState, FeedStatus

ACCEPTED_RESULTS = frozenset({"accepted", "repeated"})
"""`tradehall_orders_total{result}` values that are not refusals."""

ASSESSMENT_HEADROOM = Gauge(
    "tradehall_assessment_floor_headroom_percent",
    "Least headroom of any running assessment's equity above its floor, in percent (set by the monitor).",
)

Buckets = tuple[tuple[float, float], ...]
"""Cumulative histogram buckets: (upper bound, count), ascending, the last one +Inf."""


def _histogram(metric: Histogram) -> Buckets:
    """The buckets of every series of `metric` summed (all label values)."""
    totals: dict[float, float] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                totals[bound] = totals.get(bound, 0.0) + sample.value
    return tuple(sorted(totals.items()))


def _counter(metric: Counter, keep: Callable[[dict[str, str]], bool] | None = None) -> float:
    total = 0.0
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and (keep is None or keep(sample.labels)):
                total += sample.value
    return total


def quantile(q: float, buckets: Buckets) -> float | None:
    """Prometheus' `histogram_quantile`: linear within the bucket holding the rank; None when empty."""
    if not buckets:
        return None
    count = buckets[-1][1]
    if count <= 0:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower  # above the highest finite bucket: its bound, as Prometheus answers
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, cumulative
    return lower


@dataclass(slots=True)
class Sample:
    """The cumulative counters and histograms at one evaluation."""

    at: float
    counters: dict[str, float]
    histograms: dict[str, Buckets]


def _difference(now: Buckets, then: Buckets) -> Buckets:
    earlier = dict(then)
    return tuple((bound, max(0.0, count - earlier.get(bound, 0.0))) for bound, count in now)


@dataclass
class Probes:
    """Computes each metric of `rules.METRICS` and each event count of `rules.EVENTS`.

    `feeds` gives the feeds' statuses (the market-data registry), `projection_lag` the read models'
    lag in records, `engine` the engine to read assessments from; each may be None (no such part).
    """

    feeds: Callable[[], Iterable[FeedStatus]] | None = None
    projection_lag: Callable[[], int] | None = None
    engine: Callable[[], Engine] | None = None
    keep_seconds: float = 3600.0
    samples: deque[Sample] = field(default_factory=deque)
    down_since: dict[str, float] = field(default_factory=dict)
    open_since: dict[str, float] = field(default_factory=dict)

    def take(self, now: float) -> None:
        """Sample the cumulative series and the feeds' states at `now` (once per evaluation)."""
        counters = {
            "orders": _counter(ORDERS_TOTAL),
            "order_refused": _counter(ORDERS_TOTAL, lambda labels: labels["result"] not in ACCEPTED_RESULTS),
            "bus_published": _counter(PUBLISH_TOTAL),
            "bus_publish_error": _counter(PUBLISH_ERRORS_TOTAL),
            "feed_error": _counter(FEED_ERRORS),
            "mark_rejected": _counter(MARKS_REJECTED),
        }
        histograms = {"order_latency": _histogram(ORDER_LATENCY), "journal_fsync": _histogram(JOURNAL_FSYNC)}
        self.samples.append(Sample(now, counters, histograms))
        while len(self.samples) > 2 and self.samples[1].at <= now - self.keep_seconds:
            self.samples.popleft()
        if self.feeds is not None:
            statuses = list(self.feeds())
            names = {status.feed for status in statuses}
            for status in statuses:
                if status.connected:
                    self.down_since.pop(status.feed, None)
                else:
                    self.down_since.setdefault(status.feed, now)
                if status.circuit == CircuitState.OPEN:
                    self.open_since.setdefault(status.feed, now)
                else:
                    self.open_since.pop(status.feed, None)
            for gone in set(self.down_since) - names:
                del self.down_since[gone]
            for gone in set(self.open_since) - names:
                del self.open_since[gone]

    def _window(self, window: float) -> tuple[Sample, Sample] | None:
        """(the sample one window ago, or the oldest kept; the latest), None before two samples."""
        if len(self.samples) < 2:
            return None
        latest = self.samples[-1]
        start = self.samples[0]
        for sample in self.samples:
            if sample.at <= latest.at - window:
                start = sample
            else:
                break
        return start, latest

    def increase(self, name: str, window: float) -> float:
        """How much counter `name` grew over the window (0 before two samples)."""
        pair = self._window(window)
        if pair is None:
            return 0.0
        start, latest = pair
        return max(0.0, latest.counters[name] - start.counters[name])

    def _p99(self, name: str, window: float) -> float | None:
        pair = self._window(window)
        if pair is None:
            return None
        start, latest = pair
        return quantile(0.99, _difference(latest.histograms[name], start.histograms[name]))

    def _ratio(self, part: str, whole: tuple[str, ...], window: float) -> float | None:
        total = sum(self.increase(name, window) for name in whole)
        return None if total <= 0 else self.increase(part, window) / total

    def assessment_headroom_percent(self) -> float | None:
        if self.engine is None:
            return None
        least = views.least_assessment_headroom_ppm(self.engine())
        value = None if least is None else least / 10_000
        ASSESSMENT_HEADROOM.set(value if value is not None else float("nan"))
        return value

    def metric(self, name: str, window: float, now: float) -> float | None:
        """The value of metric `name` (see rules.METRICS); None when there is nothing to judge."""
        if name == "order_latency_p99_seconds":
            return self._p99("order_latency", window)
        if name == "journal_fsync_p99_seconds":
            return self._p99("journal_fsync", window)
        if name == "order_failure_ratio":
            return self._ratio("order_refused", ("orders",), window)
        if name == "bus_publish_error_ratio":
            return self._ratio("bus_publish_error", ("bus_published", "bus_publish_error"), window)
        if name == "feed_disconnected_seconds":
            return max((now - since for since in self.down_since.values()), default=0.0)
        if name == "breaker_open_seconds":
            return max((now - since for since in self.open_since.values()), default=0.0)
        if name == "projector_lag_records":
            return None if self.projection_lag is None else float(self.projection_lag())
        if name == "assessment_floor_headroom_percent":
            return self.assessment_headroom_percent()
        raise KeyError(name)
