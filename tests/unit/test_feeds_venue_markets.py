"""One instrument on two quote venues fed by two exchanges: real OKX and Binance payloads go through
their feeds and the router into two quote-venue markets (`BTC-USD.OKX`, `BTC-USD.BINANCE`) whose
terms differ — tick size, taker fee, simulated latency — and each fill follows its own market's."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import httpx

from tests.engine_support import engine_with, of_type, one, place, spot_spec
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import Venue
from tradehall.marketdata.binance import BinanceFeed
from tradehall.marketdata.okx import OkxFeed
from tradehall.marketdata.router import InstrumentRef, MarketRoute, Router

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"
SECOND = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ns = SECOND

    def __call__(self) -> int:
        return self.ns


def test_okx_and_binance_fed_markets_fill_on_their_own_tick_fee_and_latency() -> None:
    okx_market = spot_spec(
        "BTC-USD.OKX",
        instrument="BTC-USD",
        venue=Venue.QUOTE,
        tick_size=D("0.001"),
        taker_fee=D("0.0008"),
        slippage=D("0.0001"),
        latency_ms=0,
    )
    binance_market = spot_spec(
        "BTC-USD.BINANCE",
        instrument="BTC-USD",
        venue=Venue.QUOTE,
        tick_size=D("0.01"),
        taker_fee=D("0.001"),
        slippage=D("0.0001"),
        latency_ms=100,
    )
    engine = engine_with(okx_market, binance_market, accounts={"a": {"USD": "1000000"}})
    clock = Clock()
    results: list[ev.AnyEvent] = []

    def submit(command: c.AnyCommand) -> None:
        results.extend(engine.apply(command))

    routes = [
        MarketRoute("BTC-USD.OKX", (InstrumentRef("okx", "BTC-USDT"),)),
        MarketRoute("BTC-USD.BINANCE", (InstrumentRef("binance", "btcusdt"),)),
    ]
    router = Router(routes, submit, clock_ns=clock)
    http = httpx.AsyncClient()
    okx = OkxFeed(["BTC-USDT"], router.on_event, http, channels=("books",), clock_ns=clock)
    binance = BinanceFeed(["BTCUSDT"], router.on_event, http, streams=("bookTicker",), clock_ns=clock)
    okx.handle_message((FEEDS / "okx" / "ws_books_snapshot_nautilus.json").read_bytes())
    binance.handle_message((FEEDS / "binance" / "ws_bookticker_cc_spot_btcusdt.json").read_bytes())
    assert not [e for e in results if isinstance(e, ev.CommandRejected)]

    # OKX: ask 8,476.98 x 1.0001 = 8,477.827698, up to the 0.001 tick: 8,477.828;
    # fee 0.08 % of 0.5 x 8,477.828 = 3.3911312 → 3.40
    events = place(engine, "a", "BTC-USD.OKX", "buy", "0.5", None, type="market", ts=clock.ns)
    fill = one(events, ev.OrderFilled)
    assert (fill.price, fill.quantity, fill.fee) == (8_477_828, 5_000, 340)

    # Binance: 100 ms of simulated latency: nothing fills at once; the quote 100 ms later decides
    events = place(engine, "a", "BTC-USD.BINANCE", "buy", "0.5", None, type="market", ts=clock.ns)
    assert not of_type(events, ev.OrderFilled)
    results.clear()
    clock.ns += 100_000_000
    binance.handle_message((FEEDS / "binance" / "ws_bookticker_cc_spot_btcusdt.json").read_bytes())
    fill = one(results, ev.OrderFilled)
    # ask 29,010.91 x 1.0001 = 29,013.811091, up to the 0.01 tick: 29,013.82;
    # fee 0.1 % of 0.5 x 29,013.82 = 14.50691 → 14.51
    assert (fill.price, fill.quantity, fill.fee) == (2_901_382, 5_000, 1_451)
