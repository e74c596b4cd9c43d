"""Instruments on several venues: `<instrument>.<VENUE>` markets and their siblings' terms."""

from __future__ import annotations

from decimal import Decimal as D

from tests.engine_support import engine_with, one, perp_spec, spot_spec
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.errors import Code
from tradehall.domain.market import instrument_of, venue_of
from tradehall.engine import Engine


def test_a_market_lists_its_own_symbol_by_default() -> None:
    spec = spot_spec("BTC-USD")
    assert (instrument_of(spec), venue_of(spec)) == ("BTC-USD", "TRADEHALL")
    okx = spot_spec("BTC-USD.OKX", instrument="BTC-USD")
    assert (instrument_of(okx), venue_of(okx)) == ("BTC-USD", "OKX")


def test_venues_of_an_instrument_are_its_markets_by_symbol_and_survive_a_restore() -> None:
    engine = engine_with(
        spot_spec("BTC-USD.OKX", instrument="BTC-USD"),
        spot_spec("BTC-USD"),
        spot_spec("BTC-USD.BYBIT", instrument="BTC-USD"),
        spot_spec("ETH-USD", base="ETH"),
    )
    assert [m.symbol for m in engine.state.venues_of("BTC-USD")] == [
        "BTC-USD",
        "BTC-USD.BYBIT",
        "BTC-USD.OKX",
    ]
    restored = Engine.restore(engine.snapshot())
    assert [m.symbol for m in restored.state.venues_of("BTC-USD")] == [
        "BTC-USD",
        "BTC-USD.BYBIT",
        "BTC-USD.OKX",
    ]
    assert restored.state.venues_of("ETH-USD")[0].symbol == "ETH-USD"
    assert restored.state.venues_of("SOL-USD") == []


def refusal(engine: Engine, spec: object) -> ev.CommandRejected:
    return one(engine.apply(c.CreateMarket(spec=spec)), ev.CommandRejected)  # type: ignore[arg-type]


def test_a_venue_market_is_named_instrument_dot_venue() -> None:
    engine = engine_with()
    for symbol in ("OKX-BTC-USD", "BTC-USD.okx", "BTC-USD.", "BTC-USD.O.K"):
        rejected = refusal(engine, spot_spec(symbol, instrument="BTC-USD"))
        assert rejected.code is Code.INVALID_REQUEST, symbol
        assert "named BTC-USD.<VENUE>" in rejected.reason
    assert refusal(engine, spot_spec("smart")).code is Code.INVALID_REQUEST
    assert engine.markets == {}


def test_siblings_trade_the_same_thing() -> None:
    engine = engine_with(spot_spec("BTC-USD.OKX", instrument="BTC-USD"))
    rejected = refusal(engine, perp_spec("BTC-USD.BYBIT", instrument="BTC-USD"))
    assert rejected.reason == "BTC-USD is listed by BTC-USD.OKX as spot BTC/USD"
    rejected = refusal(engine, spot_spec("BTC-USD", quote="EUR"))
    assert rejected.reason == "BTC-USD is listed by BTC-USD.OKX as spot BTC/USD"
    assert list(engine.markets) == ["BTC-USD.OKX"]
    assert engine.apply(
        c.CreateMarket(spec=spot_spec("BTC-USD.BYBIT", instrument="BTC-USD", tick_size=D("0.1")))
    )
