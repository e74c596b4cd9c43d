"""The optional runtime pieces around the engine: the bus publisher and the market-data feeds.

Both are off in the default demo (`bus = "inproc"`, no `marketdata_config`), so nothing extra runs
there. `Service.start()` calls `Integrations.start(store)` once the runner and the store are up, and
`Service.stop()` calls `stop()` before the runner stops (feeds stop submitting first, the publisher
drains what is durable).

- Bus (`settings.bus != "inproc"`, unless this process is a gateway of an engine elsewhere:
  `ws_source = "bus"` with an `engine_url`): a `BusPublisher` reading the durable journal through a
  `RunnerJournalSource`, its position in `<data_dir>/bus/position.json`. `retain_from()` is the
  lowest seq it still needs, which the service combines with the projector's so archived segments
  the publisher has not published are never deleted.
- Market data (`settings.marketdata_config`): the configured feeds, router and quote cache
  (`marketdata.config.build_runtime`) submitting through a `CommandPump` into the runner, and a
  `CandleWriter` storing the candles of quote-venue markets (book venues get theirs from the projector).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from tradehall.bus import BusPublisher, EventBus, FilePositionStore, RunnerJournalSource, create_bus
from tradehall.domain.enums import Venue
from tradehall.engine import Engine
from tradehall.marketdata.config import MarketDataConfig, MarketDataRuntime, build_runtime
from tradehall.marketdata.pump import CommandPump
from tradehall.marketdata.registry import FeedRegistry
from tradehall.service.runner import EngineRunner
from tradehall.service.settings import Settings
from tradehall.store import Store
from tradehall.store.candles import CandleWriter

log = structlog.get_logger(__name__)


class Integrations:
    def __init__(self, settings: Settings, runner: EngineRunner[Engine], *, feeds: bool = True) -> None:
        """`feeds=False`: the feeds run in a process of their own (`serve --workers N`)."""
        self.settings = settings
        self.runner = runner
        self.run_feeds = feeds
        self.publisher: BusPublisher | None = None
        self.marketdata: MarketDataRuntime | None = None
        self.pump: CommandPump | None = None
        self.candle_writer: CandleWriter | None = None
        self._candle_task: asyncio.Task[None] | None = None
        self._bus: EventBus | None = None

    @property
    def feeds(self) -> FeedRegistry | None:
        """The feed registry for `/ready` and `tradehall feeds status`; None without market data."""
        return None if self.marketdata is None else self.marketdata.registry

    def retain_from(self) -> int | None:
        """The lowest journal seq the publisher has yet to publish (None: no publisher)."""
        if self.publisher is None:
            return None
        return self.publisher.published_seq + 1

    async def start(self, store: Store) -> None:
        settings = self.settings
        # a gateway fed by the bus with the engine elsewhere must not publish its own (idle) engine
        gateway_only = settings.ws_source == "bus" and settings.engine_url is not None
        if settings.bus != "inproc" and not gateway_only:
            self._bus = create_bus(settings)
            publisher = BusPublisher(
                self._bus,
                RunnerJournalSource(self.runner, settings.journal_dir),
                FilePositionStore(settings.data_dir / "bus" / "position.json"),
                backlog_limit=settings.bus_backlog_limit,
                currency_decimals=self.runner.engine.config.currency_decimals,
            )
            # `retain_from` answers from the saved position before the first publish
            self.publisher = publisher
            await publisher.start()
        if settings.marketdata_config is not None and self.run_feeds:
            config = MarketDataConfig.load(settings.marketdata_config)
            pump = CommandPump(self.runner.submit_many)
            runtime = build_runtime(config, pump, keys=settings)
            writer = CandleWriter(store, runtime.candles, accept=self._is_quote_venue)
            self.pump, self.marketdata, self.candle_writer = pump, runtime, writer
            pump.start()
            self._candle_task = asyncio.create_task(writer.run(), name="marketdata:candle-writer")
            await runtime.start()
            log.info(
                "marketdata_started",
                config=str(settings.marketdata_config),
                feeds=[status.feed for status in runtime.registry.statuses()],
            )

    async def stop(self) -> None:
        """Feeds first (no new commands), then the pump and the candles, then the publisher's drain."""
        if self.marketdata is not None:
            with contextlib.suppress(Exception):
                await self.marketdata.stop()
        if self.pump is not None:
            try:
                await asyncio.wait_for(self.pump.stop(), 5.0)
            except Exception as exc:  # the runner may already refuse commands
                log.warning("marketdata_pump_stop_failed", error=repr(exc))
        if self.candle_writer is not None:
            await self.candle_writer.stop()
            if self._candle_task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(self._candle_task, 5.0)
        if self.publisher is not None:
            await self.publisher.stop()
        if self._bus is not None:
            with contextlib.suppress(Exception):
                await self._bus.close()  # the publisher does not own its bus

    def _is_quote_venue(self, market: str) -> bool:
        found = self.runner.engine.markets.get(market)
        return found is not None and found.spec.venue == Venue.QUOTE
