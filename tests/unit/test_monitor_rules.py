"""Every built-in alert rule fires and resolves on injected conditions, exactly once per cooldown."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.engine_support import D, expect_no_rejection, perp_spec, place
from tradehall.api.metrics import ORDER_LATENCY, ORDERS_TOTAL, timed_fsync
from tradehall.api.monitor import BUILTIN_RULES, Health, Monitor, Probes, Rule, RulesError, load_rules
from tradehall.api.monitor.monitor import ALERTS_FIRING, SYSTEM_HEALTH
from tradehall.api.monitor.probes import quantile
from tradehall.api.monitor.rules import rules_of
from tradehall.bus.metrics import PUBLISH_ERRORS_TOTAL, PUBLISH_TOTAL
from tradehall.domain import commands as c
from tradehall.domain.enums import AccountKind, Venue
from tradehall.domain.tiers import TierSpec
from tradehall.engine import Engine, EngineConfig
from tradehall.marketdata.models import CircuitState, FeedStatus


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def builtin(name: str) -> Rule:
    return next(rule for rule in BUILTIN_RULES if rule.name == name)


def monitor_of(rule: Rule, probes: Probes | None = None) -> tuple[Monitor, Clock]:
    clock = Clock()
    ids = iter(f"a{i}" for i in range(1000))
    return Monitor((rule,), probes or Probes(), clock=clock, new_id=lambda: next(ids)), clock


def statuses(monitor: Monitor) -> list[tuple[str, str]]:
    return [(alert.rule, alert.status) for alert in monitor.evaluate()]


def test_order_latency_p99_fires_resolves_and_fires_once_per_cooldown() -> None:
    monitor, clock = monitor_of(builtin("order_latency_high"))
    assert statuses(monitor) == []  # the baseline sample
    latency = ORDER_LATENCY.labels(transport="monitor-test")
    for _ in range(50):
        latency.observe(0.0004)
    clock.now += 10
    assert statuses(monitor) == []  # p99 within 0.0002..0.0005: fine
    for _ in range(5):
        latency.observe(0.2)  # 5 of 55 slow: p99 in the 0.1..0.25 bucket
    clock.now += 10
    changes = monitor.evaluate()
    assert [(a.id, a.rule, a.status, a.severity) for a in changes] == [
        ("a0", "order_latency_high", "firing", "warning")
    ]
    assert 0.1 < changes[0].value <= 0.25
    assert monitor.health is Health.DEGRADED
    assert SYSTEM_HEALTH._value.get() == 1
    assert ALERTS_FIRING.labels(rule="order_latency_high", severity="warning")._value.get() == 1
    clock.now += 10
    assert statuses(monitor) == []  # still firing: no second event
    clock.now += 400  # the slow orders left the 5-minute window
    assert statuses(monitor) == [("order_latency_high", "resolved")]
    assert monitor.health is Health.HEALTHY
    latency.observe(0.5)
    clock.now += 10  # 430 s after the firing: within the 600 s cooldown
    assert statuses(monitor) == []
    clock.now += 180  # 610 s after: the cooldown is over and the slow order still in the window
    assert statuses(monitor) == [("order_latency_high", "firing")]


def test_a_flood_of_refused_orders_fires_the_failure_rate() -> None:
    monitor, clock = monitor_of(builtin("order_failure_rate_high"))
    monitor.evaluate()
    ORDERS_TOTAL.labels(market="MON-TEST", result="accepted").inc(990)
    ORDERS_TOTAL.labels(market="MON-TEST", result="repeated").inc(5)
    ORDERS_TOTAL.labels(market="MON-TEST", result="insufficient_balance").inc(5)
    clock.now += 5
    assert statuses(monitor) == []  # 5 of 1000: 0.5 %
    ORDERS_TOTAL.labels(market="MON-TEST", result="insufficient_balance").inc(20)
    clock.now += 5
    changes = monitor.evaluate()
    assert [(a.rule, a.status, round(a.value, 6)) for a in changes] == [
        ("order_failure_rate_high", "firing", round(25 / 1020, 6))
    ]
    clock.now += 301
    assert statuses(monitor) == [("order_failure_rate_high", "resolved")]  # no orders in the window


class FakeFeed:
    """A feed that connects and drops on command, reported as the registry would."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.connected = True
        self.circuit = CircuitState.CLOSED

    def statuses(self) -> list[FeedStatus]:
        return [FeedStatus(self.name, self.connected, "stream", self.circuit, 0.0, 0, 0)]


def test_a_feed_disconnected_for_five_minutes_fires_and_resolves_on_reconnect() -> None:
    feed = FakeFeed("fake")
    monitor, clock = monitor_of(builtin("feed_disconnected"), Probes(feeds=feed.statuses))
    assert statuses(monitor) == []
    feed.connected = False
    clock.now += 1
    assert statuses(monitor) == []  # down since now
    clock.now += 300
    assert statuses(monitor) == []  # exactly 300 s: not more than 5 minutes
    clock.now += 1
    changes = monitor.evaluate()
    assert [(a.rule, a.status, a.value, a.severity) for a in changes] == [
        ("feed_disconnected", "firing", 301.0, "critical")
    ]
    assert monitor.health is Health.CRITICAL
    feed.connected = True
    clock.now += 1
    assert statuses(monitor) == [("feed_disconnected", "resolved")]
    feed.connected = False  # drops again within the cooldown: measured afresh, no second alert yet
    clock.now += 1
    monitor.evaluate()
    clock.now += 400
    assert statuses(monitor) == []  # down 400 s, but 402 s after the firing: within the 600 s cooldown
    clock.now += 197
    assert statuses(monitor) == []  # 599 s after the firing
    clock.now += 1
    assert statuses(monitor) == [("feed_disconnected", "firing")]  # 600 s: the cooldown is over


def test_an_open_circuit_breaker_for_ten_minutes_fires() -> None:
    feed = FakeFeed("fake-breaker")
    monitor, clock = monitor_of(builtin("circuit_breaker_open"), Probes(feeds=feed.statuses))
    feed.circuit = CircuitState.OPEN
    monitor.evaluate()
    clock.now += 600
    assert statuses(monitor) == []
    clock.now += 0.5
    assert statuses(monitor) == [("circuit_breaker_open", "firing")]
    feed.circuit = CircuitState.HALF_OPEN
    clock.now += 1
    assert statuses(monitor) == [("circuit_breaker_open", "resolved")]


def test_bus_publish_errors_above_a_thousandth_fire() -> None:
    monitor, clock = monitor_of(builtin("bus_publish_errors"))
    monitor.evaluate()
    PUBLISH_TOTAL.labels(backend="monitor-test").inc(1999)
    PUBLISH_ERRORS_TOTAL.labels(backend="monitor-test").inc(1)
    clock.now += 5
    assert statuses(monitor) == []  # 1 in 2000: 0.05 %
    PUBLISH_ERRORS_TOTAL.labels(backend="monitor-test").inc(3)
    clock.now += 5
    assert statuses(monitor) == [("bus_publish_errors", "firing")]


def test_a_slow_journal_fsync_fires() -> None:
    monitor, clock = monitor_of(builtin("journal_fsync_slow"))
    monitor.evaluate()
    ticks = iter(float(i) * 0.3 for i in range(100))  # every fsync takes 0.3 s on this disk
    synced: list[int] = []
    sync = timed_fsync(lambda: synced.append(1), timer=lambda: next(ticks))
    for _ in range(3):
        sync()
    assert len(synced) == 3
    clock.now += 5
    changes = monitor.evaluate()
    assert [(a.rule, a.status) for a in changes] == [("journal_fsync_slow", "firing")]
    assert 0.25 < changes[0].value <= 0.5


def test_projector_lag_above_its_bound_fires_and_resolves() -> None:
    lag = [0]
    monitor, clock = monitor_of(builtin("projector_lag_high"), Probes(projection_lag=lambda: lag[0]))
    assert statuses(monitor) == []
    lag[0] = 10_001
    clock.now += 5
    assert [(a.rule, a.value) for a in monitor.evaluate()] == [("projector_lag_high", 10_001.0)]
    lag[0] = 3
    clock.now += 5
    assert statuses(monitor) == [("projector_lag_high", "resolved")]


def test_an_assessment_near_its_floor_fires() -> None:
    tier = TierSpec(name="t", starting_balance=D("10000"), min_trading_days=0)
    engine = Engine(EngineConfig(tiers={"t": tier}))
    spec = perp_spec(
        venue=Venue.QUOTE, tick_size=D("1"), lot_size=D("0.01"), maker_fee=D("0"), taker_fee=D("0"),
        slippage=D("0"), max_leverage=D("100"), quote_max_age_ms=10**12,
    )
    start = int(datetime(2026, 1, 5, 12, tzinfo=ZoneInfo("UTC")).timestamp()) * 10**9
    expect_no_rejection(engine.apply(c.AdvanceTime(ts=start)))
    expect_no_rejection(engine.apply(c.CreateMarket(spec=spec)))
    expect_no_rejection(
        engine.apply(c.OpenAccount(account_id="p", owner="p", kind=AccountKind.ASSESSMENT, tier="t"))
    )
    quote = c.Quote(market="BTC-PERP", bid=D("10000"), ask=D("10000"), ts=start)
    expect_no_rejection(engine.apply(quote))
    expect_no_rejection(place(engine, "p", "BTC-PERP", "buy", "1", None, type="market"))
    monitor, clock = monitor_of(builtin("assessment_near_floor"), Probes(engine=lambda: engine))
    assert statuses(monitor) == []  # equity 10000, floor 9500: 5.26 % above
    expect_no_rejection(engine.apply(c.Quote(market="BTC-PERP", bid=D("9900"), ask=D("9900"), ts=start)))
    clock.now += 5
    changes = monitor.evaluate()
    assert [(a.rule, a.status, a.severity, a.value) for a in changes] == [
        ("assessment_near_floor", "firing", "info", 4.2105)  # (9900 - 9500) / 9500
    ]
    assert monitor.health is Health.HEALTHY  # info never changes the health
    expect_no_rejection(engine.apply(quote))
    clock.now += 5
    assert statuses(monitor) == [("assessment_near_floor", "resolved")]


def test_an_event_rule_counts_the_events_in_its_window() -> None:
    rule = rules_of(
        {"builtins": False, "rules": [{"name": "refusals", "event": "order_refused", "threshold": 9,
                                       "window": "1m", "severity": "critical", "cooldown": "2m"}]}
    )[0]
    monitor, clock = monitor_of(rule)
    monitor.evaluate()
    ORDERS_TOTAL.labels(market="MON-EVT", result="market_closed").inc(10)
    clock.now += 1
    assert [(a.rule, a.value) for a in monitor.evaluate()] == [("refusals", 10.0)]
    clock.now += 61
    assert statuses(monitor) == [("refusals", "resolved")]


def test_quantile_interpolates_like_prometheus() -> None:
    assert quantile(0.99, ((0.1, 0.0), (0.2, 100.0), (float("inf"), 100.0))) == pytest.approx(0.199)
    assert quantile(0.99, ((0.1, 0.0), (float("inf"), 10.0))) == 0.1
    assert quantile(0.99, ((0.1, 0.0), (float("inf"), 0.0))) is None


def test_a_rules_file_overrides_switches_off_and_adds_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[[rules]]
name = "order_latency_high"
metric = "order_latency_p99_seconds"
condition = ">"
threshold = 0.02
window = "1m"
for = "30s"
severity = "critical"
cooldown = "15m"

[[rules]]
name = "assessment_near_floor"
enabled = false

[[rules]]
name = "feed_errors"
event = "feed_error"
threshold = 100
window = "10m"
"""
    )
    rules = {rule.name: rule for rule in load_rules(path)}
    assert len(rules) == len(BUILTIN_RULES)  # one off, one new
    assert "assessment_near_floor" not in rules
    latency = rules["order_latency_high"]
    assert (latency.threshold, latency.window_seconds, latency.for_seconds, latency.cooldown_seconds) == (
        0.02, 60.0, 30.0, 900.0,
    )
    assert (rules["feed_errors"].event, rules["feed_errors"].severity) == ("feed_error", "warning")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rules]]\nname = "x"\nthreshold = 1\n', "give exactly one of `metric` or `event`"),
        ('[[rules]]\nname = "x"\nmetric = "cpu"\nthreshold = 1\n', "unknown metric 'cpu'"),
        ('[[rules]]\nname = "x"\nevent = "order_refused"\nthreshold = "1"\n', "`threshold` must be a number"),
        ('[[rules]]\nname = "x"\nevent = "order_refused"\nthreshold = 1\ncondition = "=="\n', "`condition`"),
        ('[[rules]]\nname = "x"\nevent = "order_refused"\nthreshold = 1\nwindow = "5 min"\n', "window"),
        ('[[rules]]\nname = "x"\nevent = "order_refused"\nthreshold = 1\nseverity = "page"\n', "`severity`"),
        ('[[rules]]\nname = "Bad Name"\n', "lower_snake_case"),
        ('[[rules]]\nname = "x"\nevent = "order_refused"\nthreshold = 1\ncolour = 1\n', "colour"),
        ('[[rules]]\nname = "nope"\nenabled = false\n', "no built-in rule named 'nope'"),
        ("rules = [", "not valid TOML"),
        ("alerts = 1", "unknown top-level key(s) alerts"),
    ],
)
def test_a_bad_rules_file_is_refused_with_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RulesError) as error:
        load_rules(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_a_missing_rules_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read the rules file"):
        load_rules(tmp_path / "absent.toml")
