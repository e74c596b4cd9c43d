"""The configured runtime: feeds from configuration, one router, recorder, readiness."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pydantic
import pytest

from tests.fakes.http_server import FakeHttpServer
from tests.fakes.providers import BinanceState, serve_binance_rest, serve_coingecko
from tests.fakes.ws import FakeWsServer, eventually
from tradehall.domain import commands
from tradehall.domain.enums import MarketKind
from tradehall.domain.fixedpoint import units_of
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine
from tradehall.journal.recovery import EngineFactory
from tradehall.marketdata.config import Endpoints, MarketDataConfig, RouteConfig, build_runtime, demo_config
from tradehall.marketdata.pump import CommandPump
from tradehall.marketdata.replay import ReplayFeed, recorded_files
from tradehall.service.runner import EngineRunner, RunnerConfig

D = Decimal


async def test_demo_config_prices_both_demo_markets() -> None:
    submitted: list[commands.AnyCommand] = []
    config = demo_config().model_copy(update={"simulated_interval": 0.02})
    runtime = build_runtime(config, submitted.append)
    await runtime.start()
    try:
        await eventually(lambda: {getattr(c, "market", "") for c in submitted} >= {"BTC-PERP", "FED-YES"})
    finally:
        await runtime.stop()
    btc = [c for c in submitted if getattr(c, "market", "") == "BTC-PERP"]
    assert {type(c) for c in btc} == {commands.Quote, commands.MarkPrice}
    fed = [c for c in submitted if isinstance(c, commands.Quote) and c.market == "FED-YES"]
    assert all(c.bid is not None and c.ask is not None and D(0) < c.bid < c.ask < D(1) for c in fed)
    assert [s.feed for s in runtime.registry.statuses()] == ["simulated"]


async def test_configured_binance_and_coingecko_feed_one_router_and_the_recorder(tmp_path: Path) -> None:
    ws, rest, gecko = FakeWsServer(), FakeHttpServer(), FakeHttpServer()
    for server in (ws, rest, gecko):
        await server.start()
    serve_binance_rest(rest, BinanceState())
    serve_coingecko(gecko, {"bitcoin": 67187.3358936566})
    config = MarketDataConfig.model_validate(
        {
            "crypto_assets": [{"coingecko_id": "bitcoin", "symbol": "BTC"}],
            "crypto_interval": 0.05,
            "binance_symbols": ["BTCUSDT"],
            "binance_streams": ["bookTicker"],
            "routes": [
                {
                    "market": "BTC-USDT",
                    "sources": ["binance:btcusdt", "coingecko:bitcoin/usd"],
                    "fallback_after": 30,
                }
            ],
            "record_dir": str(tmp_path),
            "endpoints": {
                "coingecko_roots": [gecko.url],
                "binance_ws_root": ws.url,
                "binance_rest_root": rest.url,
            },
        }
    )
    submitted: list[commands.AnyCommand] = []
    async with httpx.AsyncClient(timeout=1.0) as http:
        runtime = build_runtime(config, submitted.append, http=http)
        await runtime.start()
        try:
            await ws.wait_connected()
            await eventually(lambda: len(submitted) >= 1)  # CoinGecko first: Binance has said nothing yet
            await ws.push(
                {
                    "stream": "btcusdt@bookTicker",
                    "data": {"u": 1, "s": "BTCUSDT", "b": "67000.10", "B": "1", "a": "67000.20", "A": "2"},
                }
            )
            await eventually(lambda: any(getattr(c, "source", "") == "binance" for c in submitted))
            # a request the fake has counted may still be in flight: wait for the feed to have processed it
            await eventually(lambda: runtime.registry.feeds["crypto_prices"].messages >= 3)
            good, report = runtime.registry.ready_check()
            assert good is True
            assert [row["feed"] for row in report] == ["binance", "crypto_prices"]
        finally:
            await runtime.stop()
            for server in (ws, rest, gecko):
                await server.stop()
    sources = [c.source for c in submitted if isinstance(c, commands.Quote)]
    assert sources[0] == "coingecko"
    first_binance = sources.index("binance")
    assert set(sources[first_binance:]) == {"binance"}  # CoinGecko is only a fallback once Binance speaks
    files = [str(path.relative_to(tmp_path)).split("/", 1)[1] for path in recorded_files(tmp_path)]
    assert "binance/btcusdt.jsonl.gz" in files and "coingecko/bitcoin%2Fusd.jsonl.gz" in files
    replayed: list[object] = []
    assert ReplayFeed(recorded_files(tmp_path), replayed.append).replay_all() >= 4


def test_config_validation_and_toml(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="feed:instrument"):
        RouteConfig(market="X", sources=["binance"])
    with pytest.raises(pydantic.ValidationError):
        MarketDataConfig.model_validate({"unknown_key": 1})
    path = tmp_path / "marketdata.toml"
    path.write_text(
        'kalshi_tickers = ["FED-23DEC-T3.00"]\n'
        '[[routes]]\nmarket = "FED-YES"\nsources = ["kalshi:FED-23DEC-T3.00"]\nsettlement = "auto"\n'
        '[endpoints]\nkalshi_rest_root = "http://127.0.0.1:9/trade-api/v2"\n'
    )
    config = MarketDataConfig.load(path)
    route = config.routes[0].route()
    assert (route.market, route.sources[0].source, route.sources[0].instrument, route.settlement.value) == (
        "FED-YES",
        "kalshi",
        "FED-23DEC-T3.00",
        "auto",
    )
    assert config.endpoints == Endpoints(kalshi_rest_root="http://127.0.0.1:9/trade-api/v2")


async def test_simulated_feed_through_the_pump_into_the_engine_runner(tmp_path: Path) -> None:
    config = RunnerConfig(
        journal_dir=tmp_path / "journal", snapshot_dir=tmp_path / "snapshots", fsync="none", max_wait_ms=0.0
    )
    async with EngineRunner(EngineFactory(Engine, Engine.restore), config) as runner:
        await runner.submit(
            commands.CreateMarket(
                spec=MarketSpec(
                    symbol="FED-YES",
                    kind=MarketKind.BINARY,
                    base="FED-YES",
                    quote="USD",
                    tick_size=D("0.01"),
                    lot_size=D("1"),
                )
            )
        )
        pump = CommandPump(runner.submit_many)
        pump.start()
        demo = demo_config()
        only_binary = demo.model_copy(
            update={"routes": [r for r in demo.routes if r.market == "FED-YES"], "simulated_interval": 0.01}
        )
        runtime = build_runtime(only_binary, pump)
        await runtime.start()
        try:
            await eventually(lambda: pump.submitted >= 20)
        finally:
            await runtime.stop()
            await pump.stop()
        last = runtime.cache.get("FED-YES")
        assert last is not None and last.quote.bid is not None and last.quote.ask is not None
        # the engine's mark is the mid of the last quote the pump delivered, in ticks of 0.01
        tick = D("0.01")
        expected = (units_of(last.quote.bid, tick, "bid") + units_of(last.quote.ask, tick, "ask")) // 2
        assert runner.engine.markets["FED-YES"].marks.price == expected
        assert pump.failed_batches == 0
