"""GET /markets/{symbol}/candles from the read models, oldest first, after trades through the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.client import Client

D = Decimal


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("candles")) as running:
        create_demo_markets(running.admin())
        yield running


def window(executed_at: str, minutes: int) -> datetime:
    moment = datetime.fromisoformat(executed_at)
    since_midnight = moment - moment.replace(hour=0, minute=0, second=0, microsecond=0)
    whole = int(since_midnight.total_seconds() // (minutes * 60)) * minutes
    return moment.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(minutes=whole)


def expected_candles(trades: list[dict[str, Any]], minutes: int) -> list[dict[str, str]]:
    """OHLCV per window from the market's trades (oldest first), as the API writes them."""
    windows: dict[datetime, list[dict[str, Any]]] = {}
    for trade in trades:
        windows.setdefault(window(trade["executed_at"], minutes), []).append(trade)
    candles = []
    for start in sorted(windows):
        prices = [D(t["price"]) for t in windows[start]]
        candles.append(
            {
                "t": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "open": str(prices[0]),
                "high": str(max(prices)),
                "low": str(min(prices)),
                "close": str(prices[-1]),
                "volume": str(sum(D(t["quantity"]) for t in windows[start])),
            }
        )
    return candles


def test_candles_after_trades_are_exact_and_oldest_first(server: Server) -> None:
    seller, seller_account = server.trader()
    buyer, buyer_account = server.trader()
    server.admin().deposit(seller_account, "1", "BTC")
    for price, quantity in (("60000", "0.01"), ("60500", "0.02"), ("59500", "0.005"), ("60010", "0.001")):
        seller.place_order(seller_account, "BTC-USD", "sell", quantity, price)
        buyer.place_order(buyer_account, "BTC-USD", "buy", quantity, price)
    public = Client(server.url)
    trades = list(reversed(public.market_trades("BTC-USD")["items"]))  # newest first → oldest first
    assert [(t["price"], t["quantity"]) for t in trades] == [
        ("60000", "0.01"),
        ("60500", "0.02"),
        ("59500", "0.005"),
        ("60010", "0.001"),
    ]
    minute = public.candles("BTC-USD", "1m")["items"]
    assert minute == expected_candles(trades, 1)
    assert public.candles("BTC-USD", "1h")["items"] == expected_candles(trades, 60)
    total = sum(D(c["volume"]) for c in public.candles("BTC-USD", "1d")["items"])
    assert total == D("0.036")
    # a range that starts after the last candle's window is empty; one that starts at it holds it
    last_start = minute[-1]["t"]
    assert public.candles("BTC-USD", "1m", start=last_start)["items"] == minute[-1:]
    later = (datetime.fromisoformat(last_start) + timedelta(minutes=1)).isoformat()
    assert public.candles("BTC-USD", "1m", start=later)["items"] == []
    assert public.candles("BTC-USD", "1m", end=last_start)["items"] == minute[:-1]


def test_candles_paginate_forward_from_start(server: Server) -> None:
    first = httpx.get(
        f"{server.url}/markets/BTC-USD/candles",
        params={"interval": "1m", "start": "2020-01-01T00:00:00Z", "limit": 1},
    ).json()
    assert len(first["items"]) == 1
    everything = Client(server.url).candles("BTC-USD", "1m", start="2020-01-01T00:00:00Z")["items"]
    assert first["items"] == everything[:1]
    if len(everything) > 1:
        second = httpx.get(
            f"{server.url}/markets/BTC-USD/candles",
            params={
                "interval": "1m",
                "start": "2020-01-01T00:00:00Z",
                "limit": 1,
                "cursor": first["next_cursor"],
            },
        ).json()
        assert second["items"] == everything[1:2]
    else:
        assert first["next_cursor"] is None


def test_bad_candle_queries_are_refused(server: Server) -> None:
    base = f"{server.url}/markets/BTC-USD/candles"
    no_zone = httpx.get(base, params={"start": "2026-01-01T00:00:00"})
    assert (no_zone.status_code, no_zone.json()["code"]) == (400, "invalid_request")
    garbage = httpx.get(base, params={"end": "yesterday"})
    assert (garbage.status_code, garbage.json()["code"]) == (400, "invalid_request")
    interval = httpx.get(base, params={"interval": "2m"})
    assert interval.status_code == 400
    missing = httpx.get(f"{server.url}/markets/NOPE-USD/candles")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
