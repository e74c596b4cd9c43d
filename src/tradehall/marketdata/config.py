"""Market-data configuration and the runtime it builds: feeds, router, quote cache, candles, recorder.

The configuration is data (a TOML/JSON document validated once): which instruments each feed
watches, and which feed instruments price each tradehall market, in priority order. The default
is empty; `demo_config()` is a small simulated setup for tests (`tradehall demo` builds its own in
`tradehall.service.demo`).

Over 400 lines on purpose: the validated configuration of every feed and the one function that
builds the runtime from it; each feed adds a few settings, none a concept of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tradehall.marketdata import binance, binance_streams, bybit, coinbase, kalshi, okx, polymarket
from tradehall.marketdata.binance import BinanceFeed
from tradehall.marketdata.bybit import BybitFeed
from tradehall.marketdata.cache import InProcessQuoteCache, RedisQuoteCache
from tradehall.marketdata.candles import CandleAggregator, CandleSink
from tradehall.marketdata.coinbase import CoinbaseFeed
from tradehall.marketdata.factory import PriceFeedSettings, crypto_price_feed
from tradehall.marketdata.failover import CryptoAsset
from tradehall.marketdata.kalshi import AuthHeaders, KalshiFeed
from tradehall.marketdata.kalshi_auth import KalshiSigner, MsClock
from tradehall.marketdata.models import FeedEvent
from tradehall.marketdata.okx import OkxFeed
from tradehall.marketdata.polymarket import PolymarketFeed, PolymarketMarketRef
from tradehall.marketdata.recorder import Recorder
from tradehall.marketdata.registry import FeedRegistry
from tradehall.marketdata.router import (
    CommandKind,
    InstrumentRef,
    MarketRoute,
    Router,
    SettlementMode,
    Submit,
)
from tradehall.marketdata.simulated import SimulatedFeed, SimulatedInstrument


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulatedInstrumentConfig(_Model):
    name: str
    start: Decimal
    tick: Decimal
    spread_ticks: int = 2
    step_ticks: float = 3.0
    jump_probability: float = 0.01
    jump_ticks: int = 50
    floor: Decimal | None = None
    ceiling: Decimal | None = None

    def spec(self) -> SimulatedInstrument:
        return SimulatedInstrument(**self.model_dump())


class CryptoAssetConfig(_Model):
    coingecko_id: str
    symbol: str
    vs: str = "usd"
    coinmarketcap_id: int | None = None
    """CoinMarketCap's id for the coin (1 = Bitcoin): picks it among coins sharing `symbol`."""


class RouteConfig(_Model):
    market: str
    sources: list[str] = Field(min_length=1)
    """"feed:instrument", highest priority first, e.g. ["binance:btcusdt", "coingecko:bitcoin/usd"]."""
    commands: CommandKind = CommandKind.QUOTE
    min_interval: float = 0.0
    fallback_after: float = 5.0
    settlement: SettlementMode = SettlementMode.CONFIRM
    stale_after: float | None = Field(None, gt=0)
    """Seconds without a quote before the market is stale (default: `max_quote_age_seconds`)."""

    @field_validator("sources")
    @classmethod
    def _source_form(cls, sources: list[str]) -> list[str]:
        for source in sources:
            feed, _, instrument = source.partition(":")
            if not feed or not instrument:
                raise ValueError(f"a source is 'feed:instrument', got {source!r}")
        return sources

    def route(self) -> MarketRoute:
        refs = tuple(InstrumentRef(*source.split(":", 1)) for source in self.sources)
        return MarketRoute(
            self.market,
            refs,
            self.commands,
            self.min_interval,
            self.fallback_after,
            self.settlement,
            self.stale_after,
        )


class Endpoints(_Model):
    """Provider URLs; the real ones by default, local fakes in tests."""

    coingecko_roots: list[str] | None = None
    coinmarketcap_roots: list[str] | None = None
    binance_ws_root: str = binance.WS_ROOT
    binance_rest_root: str = binance.REST_ROOT
    kalshi_ws_url: str = kalshi.WS_URL
    kalshi_rest_root: str = kalshi.REST_ROOT
    polymarket_ws_url: str = polymarket.WS_URL
    polymarket_gamma_root: str = polymarket.GAMMA_ROOT
    polymarket_clob_root: str = polymarket.CLOB_ROOT
    okx_ws_url: str = okx.WS_URL
    okx_rest_root: str = okx.REST_ROOT
    bybit_ws_root: str = bybit.WS_ROOT
    """The category is appended: `<root>/v5/public/<bybit_category>`."""
    bybit_rest_root: str = bybit.REST_ROOT
    coinbase_ws_url: str = coinbase.WS_URL
    coinbase_rest_root: str = coinbase.REST_ROOT


class MarketDataConfig(_Model):
    simulated: list[SimulatedInstrumentConfig] = []
    simulated_seed: int = 7
    simulated_interval: float = 0.5
    crypto_assets: list[CryptoAssetConfig] = []
    crypto_interval: float = Field(10.0, gt=0, description="Seconds between CoinGecko polls (demo: ~30/min).")
    binance_symbols: list[str] = []
    binance_streams: list[str] = ["trade", "bookTicker", "depth@100ms"]
    """Per-symbol streams: trade, aggTrade, bookTicker, depth[@100ms|@1000ms], ticker, kline_<interval>."""
    coinmarketcap_api_version: Literal["v1", "v2"] = "v2"
    kalshi_tickers: list[str] = []
    kalshi_status_interval: float = 10.0
    kalshi_key_id: str | None = None
    """Kalshi API key id; with it, exactly one of the two private-key fields below."""
    kalshi_private_key_path: Path | None = None
    """PEM file of the RSA key that signs the WebSocket handshake (kept outside the config file)."""
    kalshi_private_key_pem: str | None = None
    polymarket_markets: list[str] = []
    """Gamma slugs; token ids are learnt from Gamma."""
    polymarket_status_interval: float = 10.0
    okx_instruments: list[str] = []
    """OKX instrument ids as OKX writes them: "BTC-USDT", "BTC-USDT-SWAP"."""
    okx_channels: list[str] = ["books5", "tickers", "trades"]
    """One book channel (books5, books or bbo-tbt), tickers, trades."""
    okx_verify_checksum: bool = False
    """Check the CRC32 `checksum` of `books` pushes (a 0 counts as absent); a mismatch resyncs."""
    bybit_symbols: list[str] = []
    """Bybit symbols of `bybit_category`: "BTCUSDT"."""
    bybit_category: Literal["spot", "linear", "inverse"] = "spot"
    bybit_depth: int = 50
    """`orderbook.<depth>` topic: 1, 50, 200 or 1000."""
    bybit_trades: bool = True
    bybit_tickers: bool = True
    coinbase_products: list[str] = []
    """Coinbase Advanced Trade product ids: "BTC-USD" (level2, ticker, market_trades, heartbeats)."""
    routes: list[RouteConfig] = []
    max_quote_age_seconds: float = 10.0
    max_feed_silence_seconds: float = 60.0
    record_dir: Path | None = None
    candle_intervals: list[str] = ["1m", "5m", "15m", "1h", "1d"]
    endpoints: Endpoints = Endpoints()

    @field_validator("binance_streams")
    @classmethod
    def _binance_streams(cls, streams: list[str]) -> list[str]:
        return list(binance_streams.check_streams(streams))

    @field_validator("okx_channels")
    @classmethod
    def _okx_channels(cls, channels: list[str]) -> list[str]:
        return list(okx.check_channels(channels))

    @model_validator(mode="after")
    def _bybit_depth(self) -> MarketDataConfig:
        bybit.check_depth(self.bybit_category, self.bybit_depth)
        return self

    @model_validator(mode="after")
    def _kalshi_key(self) -> MarketDataConfig:
        keys = (self.kalshi_private_key_path is not None) + (self.kalshi_private_key_pem is not None)
        if self.kalshi_key_id is None and keys:
            raise ValueError("a Kalshi private key needs kalshi_key_id")
        if self.kalshi_key_id is not None and keys != 1:
            raise ValueError("kalshi_key_id needs one of kalshi_private_key_path, kalshi_private_key_pem")
        return self

    def kalshi_signer(self, clock_ms: MsClock | None = None) -> KalshiSigner | None:
        """The signer of the configured Kalshi key (None without one); signs `endpoints.kalshi_ws_url`."""
        if self.kalshi_key_id is None:
            return None
        return KalshiSigner.load(
            self.kalshi_key_id,
            pem=self.kalshi_private_key_pem,
            path=self.kalshi_private_key_path,
            ws_url=self.endpoints.kalshi_ws_url,
            clock_ms=clock_ms,
        )

    def describe(self) -> dict[str, list[dict[str, object]]]:
        """What this configuration runs, without connecting: each feed with its instruments and
        hosts, and each route with its sources (`tradehall feeds config`)."""
        ends = self.endpoints
        feeds: list[dict[str, object]] = []
        if self.simulated:
            feeds.append(
                {"feed": "simulated", "instruments": [item.name for item in self.simulated], "hosts": []}
            )
        if self.crypto_assets:
            roots = (ends.coingecko_roots or ["https://api.coingecko.com"]) + (ends.coinmarketcap_roots or [])
            instruments = [f"{a.coingecko_id}/{a.vs}" for a in self.crypto_assets]
            feeds.append({"feed": "crypto_prices", "instruments": instruments, "hosts": roots})
        if self.binance_symbols:
            hosts = [ends.binance_ws_root, ends.binance_rest_root]
            feeds.append(
                {
                    "feed": "binance",
                    "instruments": [s.lower() for s in self.binance_symbols],
                    "hosts": hosts,
                    "streams": list(self.binance_streams),
                }
            )
        if self.okx_instruments:
            hosts = [ends.okx_ws_url, ends.okx_rest_root]
            feeds.append(
                {
                    "feed": "okx",
                    "instruments": list(self.okx_instruments),
                    "hosts": hosts,
                    "channels": list(self.okx_channels),
                    "verify_checksum": self.okx_verify_checksum,
                }
            )
        if self.bybit_symbols:
            ws_url = f"{ends.bybit_ws_root.rstrip('/')}/v5/public/{self.bybit_category}"
            topics = (
                [f"orderbook.{self.bybit_depth}"]
                + ["publicTrade"] * self.bybit_trades
                + ["tickers"] * self.bybit_tickers
            )
            feeds.append(
                {
                    "feed": "bybit",
                    "instruments": [s.upper() for s in self.bybit_symbols],
                    "hosts": [ws_url, ends.bybit_rest_root],
                    "topics": topics,
                }
            )
        if self.coinbase_products:
            hosts = [ends.coinbase_ws_url, ends.coinbase_rest_root]
            channels = list(coinbase.CHANNELS)
            products = [s.upper() for s in self.coinbase_products]
            feeds.append({"feed": "coinbase", "instruments": products, "hosts": hosts, "channels": channels})
        if self.kalshi_tickers:
            feeds.append(
                {
                    "feed": "kalshi",
                    "instruments": list(self.kalshi_tickers),
                    "hosts": [ends.kalshi_ws_url, ends.kalshi_rest_root],
                    "signed": self.kalshi_key_id is not None,
                }
            )
        if self.polymarket_markets:
            hosts = [ends.polymarket_ws_url, ends.polymarket_gamma_root, ends.polymarket_clob_root]
            feeds.append({"feed": "polymarket", "instruments": list(self.polymarket_markets), "hosts": hosts})
        routes: list[dict[str, object]] = [
            {
                "market": route.market,
                "sources": list(route.sources),
                "commands": route.commands.value,
                "fallback_after": route.fallback_after,
            }
            for route in self.routes
        ]
        return {"feeds": feeds, "routes": routes}

    @classmethod
    def load(cls, path: Path) -> MarketDataConfig:
        """A `.toml` or `.json` file."""
        if path.suffix == ".toml":
            import tomllib

            return cls.model_validate(tomllib.loads(path.read_text()))
        return cls.model_validate_json(path.read_text())


def demo_config() -> MarketDataConfig:
    """A simulated feed pricing two markets (a crypto perp and a binary), for tests."""
    return MarketDataConfig(
        simulated=[
            SimulatedInstrumentConfig(
                name="BTC-PERP",
                start=Decimal("67000.00"),
                tick=Decimal("0.01"),
                spread_ticks=10,
                step_ticks=200,
            ),
            SimulatedInstrumentConfig(
                name="FED-YES",
                start=Decimal("0.50"),
                tick=Decimal("0.01"),
                step_ticks=1,
                jump_probability=0.005,
                jump_ticks=10,
                floor=Decimal(0),
                ceiling=Decimal(1),
            ),
        ],
        routes=[
            RouteConfig(market="BTC-PERP", sources=["simulated:BTC-PERP"], commands=CommandKind.BOTH),
            RouteConfig(market="FED-YES", sources=["simulated:FED-YES"]),
        ],
    )


@dataclass
class MarketDataRuntime:
    registry: FeedRegistry
    router: Router
    cache: InProcessQuoteCache
    candles: CandleAggregator
    http: httpx.AsyncClient
    recorder: Recorder | None = None
    redis_cache: RedisQuoteCache | None = None
    _owns_http: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def sink(self, event: FeedEvent) -> None:
        if self.recorder is not None:
            self.recorder.record(event)
        self.router.on_event(event)

    async def start(self) -> None:
        self.registry.start()
        self._tasks.append(asyncio.create_task(self.router.run(), name="marketdata:router"))
        self._tasks.append(asyncio.create_task(self.registry.run(), name="marketdata:health"))
        if self.redis_cache is not None:
            self._tasks.append(asyncio.create_task(self.redis_cache.run(), name="marketdata:redis_cache"))

    async def stop(self) -> None:
        await self.registry.stop()
        self.router.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.recorder is not None:
            self.recorder.close()
        if self._owns_http:
            await self.http.aclose()


def build_runtime(
    config: MarketDataConfig,
    submit: Submit,
    *,
    keys: PriceFeedSettings | None = None,
    http: httpx.AsyncClient | None = None,
    candle_sink: CandleSink | None = None,
    redis_cache: RedisQuoteCache | None = None,
    kalshi_auth: AuthHeaders | None = None,
    clock: Callable[[], float] = time.monotonic,
    clock_ns: Callable[[], int] = time.time_ns,
) -> MarketDataRuntime:
    """Feeds for what `config` lists, all sinking into one router that calls `submit`."""
    owns_http = http is None
    client = http or httpx.AsyncClient(timeout=10.0)
    cache = InProcessQuoteCache(max_age_seconds=config.max_quote_age_seconds, clock=clock)
    candles = CandleAggregator(candle_sink, intervals=config.candle_intervals)
    router = Router(
        [route.route() for route in config.routes],
        submit,
        cache=cache,
        redis_cache=redis_cache,
        candles=candles,
        clock=clock,
        clock_ns=clock_ns,
        stale_after=config.max_quote_age_seconds,
    )
    recorder = Recorder(config.record_dir) if config.record_dir is not None else None
    registry = FeedRegistry(
        max_message_age_seconds=config.max_feed_silence_seconds, market_health=router.market_health
    )
    runtime = MarketDataRuntime(registry, router, cache, candles, client, recorder, redis_cache, owns_http)
    sink = runtime.sink
    ends = config.endpoints
    if config.simulated:
        registry.add(
            SimulatedFeed(
                [item.spec() for item in config.simulated],
                sink,
                seed=config.simulated_seed,
                interval=config.simulated_interval,
                clock=clock,
                clock_ns=clock_ns,
            )
        )
    if config.crypto_assets:
        settings = keys or _NoKeys()
        assets = [
            CryptoAsset(a.coingecko_id, a.symbol, a.vs, a.coinmarketcap_id) for a in config.crypto_assets
        ]
        registry.add(
            crypto_price_feed(
                settings,
                assets,
                sink,
                client,
                coingecko_roots=ends.coingecko_roots,
                coinmarketcap_roots=ends.coinmarketcap_roots,
                interval=config.crypto_interval,
                coinmarketcap_api_version=config.coinmarketcap_api_version,
                clock=clock,
                clock_ns=clock_ns,
            )
        )
    if config.binance_symbols:
        registry.add(
            BinanceFeed(
                config.binance_symbols,
                sink,
                client,
                ws_root=ends.binance_ws_root,
                rest_root=ends.binance_rest_root,
                streams=config.binance_streams,
                clock=clock,
                clock_ns=clock_ns,
            )
        )
    if config.okx_instruments:
        registry.add(
            OkxFeed(
                config.okx_instruments,
                sink,
                client,
                ws_url=ends.okx_ws_url,
                rest_root=ends.okx_rest_root,
                channels=config.okx_channels,
                verify_checksum=config.okx_verify_checksum,
                clock=clock,
                clock_ns=clock_ns,
            )
        )
    if config.bybit_symbols:
        registry.add(
            BybitFeed(
                config.bybit_symbols,
                sink,
                client,
                category=config.bybit_category,
                ws_root=ends.bybit_ws_root,
                rest_root=ends.bybit_rest_root,
                depth=config.bybit_depth,
                trades=config.bybit_trades,
                tickers=config.bybit_tickers,
                clock=clock,
                clock_ns=clock_ns,
            )
        )
    if config.coinbase_products:
        registry.add(
            CoinbaseFeed(
                config.coinbase_products,
                sink,
                client,
                ws_url=ends.coinbase_ws_url,
                rest_root=ends.coinbase_rest_root,
                clock=clock,
                clock_ns=clock_ns,
            )
        )
    if config.kalshi_tickers:
        registry.add(
            KalshiFeed(
                config.kalshi_tickers,
                sink,
                client,
                ws_url=ends.kalshi_ws_url,
                rest_root=ends.kalshi_rest_root,
                auth_headers=kalshi_auth if kalshi_auth is not None else config.kalshi_signer(),
                status_interval=config.kalshi_status_interval,
                clock=clock,
                clock_ns=clock_ns,
            )
        )
    if config.polymarket_markets:
        registry.add(
            PolymarketFeed(
                [PolymarketMarketRef(slug) for slug in config.polymarket_markets],
                sink,
                client,
                ws_url=ends.polymarket_ws_url,
                gamma_root=ends.polymarket_gamma_root,
                clob_root=ends.polymarket_clob_root,
                status_interval=config.polymarket_status_interval,
                clock=clock,
                clock_ns=clock_ns,
            )
        )
    return runtime


class _NoKeys:
    coingecko_api_key: str | None = None
    coingecko_pro: bool = False
    coinmarketcap_api_key: str | None = None


__all__ = [
    "CryptoAssetConfig",
    "Endpoints",
    "MarketDataConfig",
    "MarketDataRuntime",
    "RouteConfig",
    "SimulatedInstrumentConfig",
    "build_runtime",
    "demo_config",
]
