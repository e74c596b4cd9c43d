"""The set of running feeds: started and stopped together, and reported together for /ready."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from tradehall.marketdata.feed import Feed
from tradehall.marketdata.models import FeedStatus
from tradehall.marketdata.router import MarketHealth

MarketHealthSource = Callable[[], list[MarketHealth]]


class FeedRegistry:
    def __init__(
        self,
        feeds: Iterable[Feed] = (),
        *,
        max_message_age_seconds: float = 60.0,
        market_health: MarketHealthSource | None = None,
    ) -> None:
        self.feeds: dict[str, Feed] = {}
        self.max_message_age_seconds = max_message_age_seconds
        self.market_health = market_health
        """Per-market quote ages (the router's `market_health`); None: feeds are judged alone."""
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

    def refresh(self) -> dict[str, list[MarketHealth]]:
        """Each feed's routed markets with their health; marks every feed's stale markets (which
        drives `tradehall_feed_up`). A market priced by several feeds belongs to each of them."""
        health = self.market_health() if self.market_health is not None else []
        by_feed: dict[str, list[MarketHealth]] = {}
        for name, feed in self.feeds.items():
            mine = [market for market in health if market.sources & feed.sources]
            by_feed[name] = mine
            feed.set_stale_markets(tuple(market.market for market in mine if market.stale))
        return by_feed

    def ready_check(self) -> tuple[bool, list[dict[str, object]]]:
        """(every feed healthy, one dict per feed with `healthy` and its `markets`) for /ready.

        A feed is healthy when it delivers data (see `healthy`) and none of the markets it prices
        is stale: a feed that only sends messages it ignores, or only data no route uses, is not.
        A running feed whose markets are all closed by their provider owes no data.
        """
        by_feed = self.refresh()
        report = []
        good = True
        for status in self.statuses():
            markets = by_feed.get(status.feed, [])
            all_closed = bool(markets) and all(market.closed for market in markets)
            delivering = self.healthy(status) or (all_closed and status.mode != "stopped")
            healthy = delivering and not any(market.stale for market in markets)
            good = good and healthy
            report.append(
                {
                    **status.as_dict(),
                    "healthy": healthy,
                    "markets": {market.market: market.as_dict() for market in markets},
                }
            )
        return good, report

    async def run(self, interval: float = 1.0) -> None:
        """Refresh market health every `interval` seconds, so the metrics follow without /ready."""
        while True:
            with contextlib.suppress(Exception):
                self.refresh()
            await asyncio.sleep(interval)
