"""OKX and Bybit in the market-data configuration: defaults, validation, the runtime's feeds and
hosts, and `tradehall feeds config`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tradehall.cli.main import app
from tradehall.marketdata.bybit import BybitFeed
from tradehall.marketdata.coinbase import CoinbaseFeed
from tradehall.marketdata.config import Endpoints, MarketDataConfig, build_runtime
from tradehall.marketdata.okx import OkxFeed

CONFIG = """
okx_instruments = ["BTC-USDT"]
okx_channels = ["books", "trades"]
bybit_symbols = ["btcusdt"]
bybit_category = "linear"
bybit_depth = 200

[[routes]]
market = "BTC-USDT.OKX"
sources = ["okx:BTC-USDT", "bybit:BTCUSDT"]

[endpoints]
okx_ws_url = "ws://127.0.0.1:9001/ws/v5/public"
bybit_ws_root = "ws://127.0.0.1:9002"
bybit_rest_root = "http://127.0.0.1:9003"
"""


def test_default_hosts_are_the_venues_public_ones() -> None:
    ends = Endpoints()
    assert (ends.okx_ws_url, ends.okx_rest_root) == (
        "wss://ws.okx.com:8443/ws/v5/public",
        "https://www.okx.com",
    )
    assert (ends.bybit_ws_root, ends.bybit_rest_root) == ("wss://stream.bybit.com", "https://api.bybit.com")


def test_runtime_builds_both_feeds_on_the_configured_hosts(tmp_path: Path) -> None:
    path = tmp_path / "md.toml"
    path.write_text(CONFIG)
    runtime = build_runtime(MarketDataConfig.load(path), lambda _: None)
    feeds = runtime.registry.feeds
    okx, bybit = feeds["okx"], feeds["bybit"]
    assert isinstance(okx, OkxFeed) and isinstance(bybit, BybitFeed)
    assert (okx.ws_url, okx.rest_root, okx.channels) == (
        "ws://127.0.0.1:9001/ws/v5/public",
        "https://www.okx.com",
        ("books", "trades"),
    )
    assert (bybit.ws_url, bybit.rest_root, bybit.symbols) == (
        "ws://127.0.0.1:9002/v5/public/linear",
        "http://127.0.0.1:9003",
        ["BTCUSDT"],
    )
    assert bybit.topics("BTCUSDT") == ["orderbook.200.BTCUSDT", "publicTrade.BTCUSDT", "tickers.BTCUSDT"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"okx_channels": ["books", "books5"]}, "name one OKX book channel"),
        ({"okx_channels": ["candle1m"]}, "unknown OKX channel 'candle1m'"),
        ({"bybit_depth": 25}, "depth 25 is not one of"),
        ({"bybit_category": "option"}, "bybit_category"),
    ],
)
def test_invalid_venue_settings_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MarketDataConfig.model_validate(fields)


def test_feeds_config_lists_feeds_and_routes_without_connecting(tmp_path: Path) -> None:
    path = tmp_path / "md.toml"
    path.write_text(CONFIG)
    result = CliRunner().invoke(app, ["feeds", "config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["feeds"] == [
        {
            "feed": "okx",
            "instruments": ["BTC-USDT"],
            "hosts": ["ws://127.0.0.1:9001/ws/v5/public", "https://www.okx.com"],
            "channels": ["books", "trades"],
            "verify_checksum": False,
        },
        {
            "feed": "bybit",
            "instruments": ["BTCUSDT"],
            "hosts": ["ws://127.0.0.1:9002/v5/public/linear", "http://127.0.0.1:9003"],
            "topics": ["orderbook.200", "publicTrade", "tickers"],
        },
    ]
    assert summary["routes"] == [
        {
            "market": "BTC-USDT.OKX",
            "sources": ["okx:BTC-USDT", "bybit:BTCUSDT"],
            "commands": "quote",
            "fallback_after": 5.0,
        }
    ]


def test_feeds_config_refuses_an_invalid_file_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('okx_instruments = ["BTC-USDT"]\nokx_channels = ["books", "books5"]\n')
    result = CliRunner().invoke(app, ["feeds", "config", str(path)])
    assert result.exit_code == 2
    assert "okx_channels" in result.output and "name one OKX book channel" in " ".join(result.output.split())
    missing = CliRunner().invoke(app, ["feeds", "config", str(tmp_path / "none.toml")])
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_coinbase_in_the_configuration_runtime_and_feeds_config(tmp_path: Path) -> None:
    path = tmp_path / "cb.toml"
    path.write_text('coinbase_products = ["btc-usd"]\n[endpoints]\ncoinbase_ws_url = "ws://127.0.0.1:9004"\n')
    config = MarketDataConfig.load(path)
    assert (Endpoints().coinbase_ws_url, Endpoints().coinbase_rest_root) == (
        "wss://advanced-trade-ws.coinbase.com",
        "https://api.coinbase.com",
    )
    feed = build_runtime(config, lambda _: None).registry.feeds["coinbase"]
    assert isinstance(feed, CoinbaseFeed)
    assert (feed.ws_url, feed.rest_root, feed.symbols) == (
        "ws://127.0.0.1:9004",
        "https://api.coinbase.com",
        ["BTC-USD"],
    )
    assert config.describe()["feeds"] == [
        {
            "feed": "coinbase",
            "instruments": ["BTC-USD"],
            "hosts": ["ws://127.0.0.1:9004", "https://api.coinbase.com"],
            "channels": ["level2", "ticker", "market_trades", "heartbeats"],
        }
    ]
