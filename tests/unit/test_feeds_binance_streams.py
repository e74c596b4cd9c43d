"""Configured Binance stream names are checked at start; provider hosts are configuration."""

from __future__ import annotations

import httpx
import pydantic
import pytest

from tradehall.marketdata import binance, coingecko, coinmarketcap
from tradehall.marketdata.binance import BinanceFeed
from tradehall.marketdata.coinmarketcap import CoinMarketCapProvider
from tradehall.marketdata.config import MarketDataConfig, build_runtime
from tradehall.marketdata.failover import FailoverPriceFeed


def feed(streams: tuple[str, ...]) -> BinanceFeed:
    return BinanceFeed(["BTCUSDT"], lambda event: None, httpx.AsyncClient(), streams=streams)


def test_known_streams_are_accepted() -> None:
    streams = (
        "trade",
        "aggTrade",
        "bookTicker",
        "depth",
        "depth@100ms",
        "depth@1000ms",
        "ticker",
        "kline_1s",
        "kline_1M",
    )
    assert feed(streams).streams == streams


@pytest.mark.parametrize(
    "name", ["trades", "depth@50ms", "kline_2m", "kline", "miniTicker", "BookTicker", ""]
)
def test_an_unknown_stream_is_a_clear_error_at_start(name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown Binance stream {name!r}; known: aggTrade, bookTicker"):
        feed(("trade", name))
    with pytest.raises(pydantic.ValidationError, match="unknown Binance stream"):
        MarketDataConfig(binance_symbols=["BTCUSDT"], binance_streams=["bookTicker", name])


def test_no_stream_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="binance_streams is empty"):
        feed(())


def test_provider_hosts_have_documented_defaults_and_are_configuration() -> None:
    ends = MarketDataConfig().endpoints
    assert (ends.binance_ws_root, ends.binance_rest_root) == (
        "wss://stream.binance.com:9443",
        "https://api.binance.com",
    )
    assert (ends.binance_ws_root, ends.binance_rest_root) == (binance.WS_ROOT, binance.REST_ROOT)
    assert (coingecko.DEMO_ROOT, coingecko.PRO_ROOT) == (
        "https://api.coingecko.com",
        "https://pro-api.coingecko.com",
    )
    assert coinmarketcap.ROOT == "https://pro-api.coinmarketcap.com"

    class Keys:
        coingecko_api_key = "demo"
        coingecko_pro = False
        coinmarketcap_api_key = "k"

    config = MarketDataConfig.model_validate(
        {
            "crypto_assets": [{"coingecko_id": "bitcoin", "symbol": "BTC", "coinmarketcap_id": 1}],
            "binance_symbols": ["BTCUSDT"],
            "binance_streams": ["aggTrade", "kline_1m"],
            "coinmarketcap_api_version": "v1",
            "endpoints": {
                "binance_ws_root": "ws://binance.internal:1",
                "binance_rest_root": "http://binance.internal:2",
                "coingecko_roots": ["http://gecko.internal:3"],
                "coinmarketcap_roots": ["http://cmc.internal:4"],
            },
        }
    )
    runtime = build_runtime(config, lambda command: None, keys=Keys(), http=httpx.AsyncClient())
    stream = runtime.registry.feeds["binance"]
    assert isinstance(stream, BinanceFeed)
    assert stream.stream_url == "ws://binance.internal:1/stream?streams=btcusdt@aggTrade/btcusdt@kline_1m"
    assert stream.rest_root == "http://binance.internal:2"
    prices = runtime.registry.feeds["crypto_prices"]
    assert isinstance(prices, FailoverPriceFeed)
    gecko, cmc = prices.providers
    assert gecko.endpoints.roots == ["http://gecko.internal:3"]  # type: ignore[attr-defined]
    assert isinstance(cmc, CoinMarketCapProvider)
    assert (cmc.endpoints.roots, cmc.api_version, cmc.ids) == (["http://cmc.internal:4"], "v1", {"BTC": 1})
    assert prices.sources == frozenset({"coingecko", "coinmarketcap"})
