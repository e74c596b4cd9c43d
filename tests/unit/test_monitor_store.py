"""The alert history in the read-model store (migration 0015): stored on firing, updated on resolving,
listed newest first with cursor pagination; and the feed rule against a real feed registry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tradehall.api.monitor import BUILTIN_RULES, Monitor, Probes
from tradehall.domain.errors import TradehallError
from tradehall.marketdata.feed import Feed
from tradehall.marketdata.registry import FeedRegistry
from tradehall.store import Store, upgrade
from tradehall.store import alerts as alert_store


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(1_000_000_000 + seconds, UTC)


def test_alerts_are_stored_resolved_and_paged_newest_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    upgrade(url)
    store = Store.from_url(url)
    try:
        for index, rule in enumerate(("a_rule", "b_rule", "c_rule")):
            store.call_sync(
                alert_store.save_alert, f"id{index}", rule=rule, severity="warning", status="firing",
                value=float(index), started_at=at(index), resolved_at=None,
            )
        store.call_sync(
            alert_store.save_alert, "id1", rule="b_rule", severity="warning", status="resolved",
            value=1.0, started_at=at(1), resolved_at=at(9),
        )
        first = store.call_sync(alert_store.list_alerts, limit=2)
        assert [(row.id, row.status) for row in first.items] == [("id2", "firing"), ("id1", "resolved")]
        assert first.items[1].resolved_at == at(9)
        assert first.next_cursor is not None
        second = store.call_sync(alert_store.list_alerts, limit=2, cursor=first.next_cursor)
        assert ([row.id for row in second.items], second.next_cursor) == (["id0"], None)
        firing = store.call_sync(alert_store.list_alerts, status="firing")
        assert [row.id for row in firing.items] == ["id2", "id0"]
        assert [row.id for row in store.call_sync(alert_store.list_alerts, rule="a_rule").items] == ["id0"]
        with pytest.raises(TradehallError):
            store.call_sync(alert_store.list_alerts, cursor="not-a-cursor")
        assert store.call_sync(alert_store.resolve_firing_alerts, at(20)) == 2
        rows = store.call_sync(alert_store.list_alerts).items
        assert [(row.id, row.status, row.resolved_at) for row in rows] == [
            ("id2", "resolved", at(20)), ("id1", "resolved", at(9)), ("id0", "resolved", at(20)),
        ]
    finally:
        store.close()


class DroppingFeed(Feed):
    """A real feed (its own status, breaker and metrics) whose connection the test drops."""

    async def run(self) -> None:  # never started: the test moves `connected`
        raise NotImplementedError


def test_a_dropped_feed_in_the_registry_fires_feed_disconnected() -> None:
    feed = DroppingFeed("monitor-drop", lambda event: None)
    feed.connected = True
    registry = FeedRegistry([feed])
    now = [1_000_000_000.0]
    rule = next(rule for rule in BUILTIN_RULES if rule.name == "feed_disconnected")
    monitor = Monitor((rule,), Probes(feeds=registry.statuses), clock=lambda: now[0])
    assert monitor.evaluate() == []
    feed.connected = False
    now[0] += 10
    assert monitor.evaluate() == []
    now[0] += 301
    fired = [(a.rule, a.status, a.value) for a in monitor.evaluate()]
    assert fired == [("feed_disconnected", "firing", 301.0)]
    feed.connected = True
    now[0] += 1
    assert [(a.rule, a.status) for a in monitor.evaluate()] == [("feed_disconnected", "resolved")]
