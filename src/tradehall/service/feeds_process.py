"""`serve --workers N`'s market-data process: the feeds, their router and candles, beside the engine.

The same runtime as in one process (`marketdata.config.build_runtime` behind a `CommandPump`), but
the pump's batches go to the engine process over the transport (`EngineClient`, pipelined: the
engine's endpoint takes them as one batch) instead of into a local runner. Quotes and marks reach
the gateways as they do any command: journaled by the engine, applied by each gateway's replica.
Quote-venue candles are written by this process's `CandleWriter`, as in one process (each part
merged once; a crash loses at most the last `interval` of parts, as a crash of one process would);
which markets are quote venues it reads from the read models' `markets` table.

`/ready` in a gateway shows the feeds from the status file this process rewrites every second
(`feeds.json` in the data directory).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from tradehall.domain.commands import AnyCommand
from tradehall.domain.enums import Venue
from tradehall.marketdata.config import MarketDataConfig, build_runtime
from tradehall.marketdata.pump import CommandPump
from tradehall.service.runner import CommandResult
from tradehall.service.settings import Settings
from tradehall.service.supervisor import stop_on_signals, write_status_file
from tradehall.service.transport import EngineClient, engine_address
from tradehall.store import Store
from tradehall.store.candles import CandleWriter
from tradehall.store.models import Market, table_of

log = structlog.get_logger(__name__)

FEEDS_STATUS_FILE = "feeds.json"
STATUS_SECONDS = 1.0
"""How often the feeds' status file and the known markets' venues are refreshed."""


def _venues(session: Session) -> dict[str, str]:
    table = table_of(Market)
    return {str(row[0]): str(row[1]) for row in session.execute(select(table.c.symbol, table.c.venue))}


class FeedsProcess:
    """The feeds' runtime submitting to the engine process; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        if settings.marketdata_config is None:
            raise ValueError("the feeds process needs TRADEHALL_MARKETDATA_CONFIG")
        self.settings = settings
        self.store = Store.from_url(settings.sqlalchemy_url)
        self.client = EngineClient(engine_address(settings.data_dir))
        self.pump = CommandPump(self.submit_many, max_batch=settings.group_commit_max_batch)
        config = MarketDataConfig.load(settings.marketdata_config)
        self.runtime = build_runtime(config, self.pump, keys=settings)
        self.venues: dict[str, str] = {}
        self.candle_writer = CandleWriter(self.store, self.runtime.candles, accept=self.is_quote_venue)

    async def submit_many(self, commands: Sequence[AnyCommand]) -> list[CommandResult]:
        """One pump batch to the engine process, pipelined on one socket (in order)."""
        return list(await asyncio.gather(*(self.client.submit(command) for command in commands)))

    def is_quote_venue(self, market: str) -> bool:
        """A market this process does not know yet (created a moment ago) gets no feed candle."""
        return self.venues.get(market) == Venue.QUOTE.value

    async def _refresh(self) -> None:
        with contextlib.suppress(Exception):  # the store away: keep the venues known
            self.venues = await self.store.call(_venues)
        ok, feeds = self.runtime.registry.ready_check()
        with contextlib.suppress(OSError):
            write_status_file(self.settings.data_dir / FEEDS_STATUS_FILE, {"ok": ok, "feeds": feeds})

    async def run(self, stop: asyncio.Event) -> None:
        """Feeds until `stop` is set; then the feeds stop first, the pump drains, the candles flush."""
        await self.client.start()
        await self._refresh()
        self.pump.start()
        candles = asyncio.create_task(self.candle_writer.run(), name="marketdata:candle-writer")
        await self.runtime.start()
        log.info("feeds_process_started", feeds=[s.feed for s in self.runtime.registry.statuses()])
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), STATUS_SECONDS)
                await self._refresh()
        finally:
            with contextlib.suppress(Exception):
                await self.runtime.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pump.stop(), 5.0)
            with contextlib.suppress(Exception):
                await self.candle_writer.stop()
            with contextlib.suppress(Exception):  # `stop()` ended its loop: it returns at once
                await asyncio.wait_for(candles, 5.0)
            await self.client.stop()
            self.store.close()
            with contextlib.suppress(FileNotFoundError):
                (self.settings.data_dir / FEEDS_STATUS_FILE).unlink()
            log.info("feeds_process_stopped", submitted=self.pump.submitted)


async def run_feeds(settings: Settings) -> None:
    """The feeds process's body: until SIGTERM/SIGINT."""
    await FeedsProcess(settings).run(stop_on_signals())
