"""CommandPump: ordered batches, latest-quote coalescing under backpressure, settlements never dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

from tradehall.domain import commands
from tradehall.domain.enums import Outcome
from tradehall.marketdata.pump import CommandPump

D = Decimal


def quote(market: str, bid: str) -> commands.Quote:
    return commands.Quote(market=market, bid=D(bid), ask=D(bid) + 1)


async def test_slow_engine_sees_the_latest_quote_per_market_and_every_settlement() -> None:
    batches: list[list[commands.AnyCommand]] = []
    gate = asyncio.Event()

    async def submit_many(batch: Sequence[commands.AnyCommand]) -> None:
        batches.append(list(batch))
        await gate.wait()

    pump = CommandPump(submit_many)
    pump.start()
    pump(quote("A", "1"))
    await asyncio.sleep(0.01)  # first batch in flight, engine blocked
    for bid in range(2, 50):
        pump(quote("A", str(bid)))
        pump(quote("B", str(bid)))
    pump(commands.SettleMarket(market="C", outcome=Outcome.YES))
    pump(commands.MarkPrice(market="A", price=D(7)))
    pump(commands.VoidMarket(market="D"))
    gate.set()
    await pump.stop()
    assert batches[0] == [quote("A", "1")]
    assert batches[1] == [
        quote("A", "49"),
        quote("B", "49"),
        commands.SettleMarket(market="C", outcome=Outcome.YES),
        commands.MarkPrice(market="A", price=D(7)),
        commands.VoidMarket(market="D"),
    ]
    assert (pump.submitted, pump.coalesced) == (6, 94)


async def test_a_failing_batch_is_counted_and_the_pump_goes_on() -> None:
    seen: list[commands.AnyCommand] = []

    async def submit_many(batch: Sequence[commands.AnyCommand]) -> None:
        if any(isinstance(c, commands.VoidMarket) for c in batch):
            raise RuntimeError("the engine is not accepting commands")
        seen.extend(batch)

    pump = CommandPump(submit_many, max_batch=1)
    pump.start()
    pump(commands.VoidMarket(market="X"))
    pump(quote("A", "5"))
    await pump.drained()
    await pump.stop()
    assert seen == [quote("A", "5")]
    assert (pump.failed_batches, pump.submitted) == (1, 1)
