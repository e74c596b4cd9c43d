"""Builds feeds from the settings: the one place that decides which providers are configured."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import httpx

from tradehall.marketdata.breaker import Clock
from tradehall.marketdata.coingecko import CoinGeckoProvider
from tradehall.marketdata.coinmarketcap import ApiVersion, CoinMarketCapProvider
from tradehall.marketdata.failover import CryptoAsset, FailoverPriceFeed, PriceProvider
from tradehall.marketdata.feed import NsClock, Sink


class PriceFeedSettings(Protocol):
    """The part of `tradehall.service.settings.Settings` the price feed reads (marketdata does not
    import the service layer)."""

    @property
    def coingecko_api_key(self) -> str | None: ...
    @property
    def coingecko_pro(self) -> bool: ...
    @property
    def coinmarketcap_api_key(self) -> str | None: ...


def crypto_price_feed(
    settings: PriceFeedSettings,
    assets: Sequence[CryptoAsset],
    sink: Sink,
    http: httpx.AsyncClient,
    *,
    coingecko_roots: Sequence[str] | None = None,
    coinmarketcap_roots: Sequence[str] | None = None,
    interval: float = 10.0,
    coinmarketcap_api_version: ApiVersion = "v2",
    clock: Clock = time.monotonic,
    clock_ns: NsClock = time.time_ns,
) -> FailoverPriceFeed:
    """CoinGecko, then CoinMarketCap only when `coinmarketcap_api_key` is set."""
    providers: list[PriceProvider] = [
        CoinGeckoProvider(
            http,
            roots=coingecko_roots,
            api_key=settings.coingecko_api_key,
            pro=settings.coingecko_pro,
            clock=clock,
            clock_ns=clock_ns,
        )
    ]
    if settings.coinmarketcap_api_key:
        providers.append(
            CoinMarketCapProvider(
                http,
                settings.coinmarketcap_api_key,
                roots=coinmarketcap_roots,
                api_version=coinmarketcap_api_version,
                ids={a.symbol: a.coinmarketcap_id for a in assets if a.coinmarketcap_id is not None},
                clock=clock,
                clock_ns=clock_ns,
            )
        )
    return FailoverPriceFeed(providers, assets, sink, interval=interval, clock=clock, clock_ns=clock_ns)
