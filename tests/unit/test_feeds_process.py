"""The market-data feeds of `serve --workers N` in their own process: a simulated feed's quotes and marks
go to the engine process over the transport and are journaled there; the quote venue's candles are
written by the feeds process, the book market's are not (the projector's, from trades); the feeds'
health is in `feeds.json` for the gateways' `/ready`.

The engine side is `run_engine`'s (`Service(feeds=False)` behind an `EngineEndpoint`, projecting in
process here for brevity); the feeds side is `FeedsProcess` on the same event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from tradehall.domain.commands import AnyCommand, CreateMarket, MarkPrice, Quote
from tradehall.domain.enums import MarketKind, Venue
from tradehall.domain.market import MarketSpec
from tradehall.journal.records import JournalRecord
from tradehall.marketdata.config import RouteConfig, demo_config
from tradehall.marketdata.router import CommandKind
from tradehall.service.feeds_process import FEEDS_STATUS_FILE, FeedsProcess
from tradehall.service.settings import Settings
from tradehall.service.transport import EngineEndpoint, engine_address
from tradehall.service.wiring import Service
from tradehall.store.models import Candle, table_of


def market(symbol: str, kind: MarketKind, venue: Venue) -> CreateMarket:
    spec = MarketSpec(symbol=symbol, kind=kind, base="BTC", quote="USD", tick_size=Decimal("0.01"),
                      lot_size=Decimal("0.001"), venue=venue,
                      max_leverage=Decimal("10") if kind == MarketKind.PERP else None)
    return CreateMarket(spec=spec, correlation_id=f"create-{symbol}")


async def test_feeds_in_their_own_process_price_the_engine_and_write_quote_venue_candles(
    tmp_path: Path,
) -> None:
    config = demo_config().model_copy(update={
        "simulated_interval": 0.02,
        "routes": [
            RouteConfig(market="BTC-PERP", sources=["simulated:BTC-PERP"], commands=CommandKind.BOTH,
                        min_interval=0),
            RouteConfig(market="BTC-Q", sources=["simulated:BTC-PERP"], commands=CommandKind.QUOTE,
                        min_interval=0),
        ],
    })
    path = tmp_path / "marketdata.json"
    path.write_text(config.model_dump_json())
    settings = Settings(data_dir=tmp_path / "data", fsync="none", clock_tick_seconds=0,
                        marketdata_config=path)
    service = Service(settings, feeds=False)
    await service.start()
    assert service.integrations.marketdata is None  # the engine process runs no feed
    priced: dict[str, set[type]] = {}

    def seen(records: Sequence[JournalRecord]) -> None:
        for record in records:
            command: AnyCommand = record.command
            if isinstance(command, Quote | MarkPrice) and not record.events[0].__class__.__name__.endswith(
                "Rejected"
            ):
                priced.setdefault(command.market, set()).add(type(command))

    service.add_listener(seen)
    endpoint = EngineEndpoint(engine_address(settings.data_dir), service.runner.submit_many,
                              lambda: service.runner.durable_seq)
    await endpoint.start()
    try:
        await service.runner.submit_many([market("BTC-PERP", MarketKind.PERP, Venue.BOOK),
                                          market("BTC-Q", MarketKind.SPOT, Venue.QUOTE)])
        await service.wait_projected(service.runner.durable_seq)  # the markets table knows the venues
        feeds = FeedsProcess(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(feeds.run(stop))
        status_file = settings.data_dir / FEEDS_STATUS_FILE

        def candles() -> set[str]:
            query = select(table_of(Candle).c.market)
            return set(feeds.store.call_sync(lambda session: session.execute(query).scalars().all()))

        async with asyncio.timeout(60):
            while not (priced.get("BTC-PERP") == {Quote, MarkPrice} and priced.get("BTC-Q") == {Quote}
                       and status_file.exists() and await asyncio.to_thread(candles)):
                assert not task.done(), task
                await asyncio.sleep(0.05)
        report = json.loads(status_file.read_text())
        assert [feed["feed"] for feed in report["feeds"]] == ["simulated"]
        assert await asyncio.to_thread(candles) == {"BTC-Q"}  # the book market's candles are the projector's
        stop.set()
        await asyncio.wait_for(task, 30)
        assert not status_file.exists()
        assert feeds.pump.submitted > 0 and feeds.pump.failed_batches == 0
    finally:
        await endpoint.stop()
        await service.stop()
