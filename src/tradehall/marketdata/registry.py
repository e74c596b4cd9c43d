"""The set of running feeds: started and stopped together, and reported together for /ready."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from tradehall.marketdata.feed import Feed
from tradehall.marketdata.models import FeedStatus


class FeedRegistry:
    def __init__(self, feeds: Iterable[Feed] = (), *, max_message_age_seconds: float = 60.0) -> None:
        self.feeds: dict[str, Feed] = {}
        self.max_message_age_seconds = max_message_age_seconds
        for feed in feeds:
            self.add(feed)

    def add(self, feed: Feed) -> None:
        if feed.name in self.feeds:
            raise ValueError(f"a feed named {feed.name!r} is already registered")
        self.feeds[feed.name] = feed

    def start(self) -> None:
        for feed in self.feeds.values():
            feed.start()

    async def stop(self) -> None:
        await asyncio.gather(*(feed.stop() for feed in self.feeds.values()))

    def statuses(self) -> list[FeedStatus]:
        return [feed.status() for _, feed in sorted(self.feeds.items())]

    def healthy(self, status: FeedStatus) -> bool:
        """Running and delivering: data younger than the limit, by stream or by its REST fallback.

        A feed whose stream is down but whose REST polling still delivers is degraded, not
        unhealthy; `connected`, `mode` and `circuit` show the difference.
        """
        age = status.last_message_age_seconds
        return status.mode != "stopped" and age is not None and age <= self.max_message_age_seconds

    def ready_check(self) -> tuple[bool, list[dict[str, object]]]:
        """(every feed healthy, one dict per feed with `healthy` added) for the /ready checks."""
        report = []
        good = True
        for status in self.statuses():
            healthy = self.healthy(status)
            good = good and healthy
            report.append({**status.as_dict(), "healthy": healthy})
        return good, report
