"""CoinGecko `simple/price` polling: the primary source of crypto marks.

Keys per coin id are `<vs>`, `<vs>_market_cap`, `<vs>_24h_vol`, `<vs>_24h_change`, and
`last_updated_at` in seconds; chart and OHLC times are milliseconds. Prices are JSON floats, read
through `str` so 67187.3358936566 stays exactly that.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import httpx

from tradehall.marketdata.breaker import CircuitBreaker, Clock
from tradehall.marketdata.endpoints import EndpointPool
from tradehall.marketdata.feed import get_json
from tradehall.marketdata.models import Quote
from tradehall.marketdata.parsing import ErrorKind, FeedError, dec, mapping, ns_from_ms, ns_from_seconds

SOURCE = "coingecko"
DEMO_ROOT = "https://api.coingecko.com"
PRO_ROOT = "https://pro-api.coingecko.com"


def instrument_key(coin_id: str, vs: str) -> str:
    return f"{coin_id}/{vs.lower()}"


def parse_simple_price(
    payload: Any, pairs: Sequence[tuple[str, str]], receive_ts: int, source: str = SOURCE
) -> list[Quote]:
    """Quotes (last price only) for the (coin id, vs) pairs present; an unknown id is simply absent."""
    body = mapping(payload, "simple/price body")
    status = body.get("status")
    if isinstance(status, dict) and status.get("error_code"):
        raise FeedError(ErrorKind.API_ERROR, f"{status.get('error_code')}: {status.get('error_message')}")
    quotes = []
    for coin_id, vs in pairs:
        coin = body.get(coin_id)
        if not isinstance(coin, dict):
            continue
        vs_key = vs.lower()
        price = coin.get(vs_key)
        if price is None:
            continue
        updated = coin.get("last_updated_at")
        quotes.append(
            Quote(
                source=source,
                instrument=instrument_key(coin_id, vs_key),
                last=dec(price, f"{coin_id}.{vs_key}"),
                exchange_ts=ns_from_seconds(updated) if updated is not None else None,
                receive_ts=receive_ts,
            )
        )
    return quotes


def parse_market_chart(payload: Any) -> list[tuple[int, Decimal]]:
    """`prices` as (ns, price); chart times are milliseconds."""
    body = mapping(payload, "market_chart body")
    prices = body.get("prices")
    if not isinstance(prices, list):
        raise FeedError(ErrorKind.PARSE, "market_chart without prices")
    return [(ns_from_ms(point[0]), dec(point[1], "price")) for point in prices]


def parse_ohlc(payload: Any) -> list[tuple[int, Decimal, Decimal, Decimal, Decimal]]:
    """(close time ns, open, high, low, close); CoinGecko stamps a candle with its close time."""
    if not isinstance(payload, list):
        raise FeedError(ErrorKind.PARSE, "ohlc body is not an array")
    return [(ns_from_ms(row[0]), dec(row[1]), dec(row[2]), dec(row[3]), dec(row[4])) for row in payload]


class CoinGeckoProvider:
    """One poll of `simple/price`, over a pool of roots, with its own breaker."""

    name = SOURCE

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        roots: Sequence[str] | None = None,
        api_key: str | None = None,
        pro: bool = False,
        breaker: CircuitBreaker | None = None,
        clock: Clock = time.monotonic,
        clock_ns: Any = time.time_ns,
    ) -> None:
        self.client = client
        self.endpoints = EndpointPool(roots or [PRO_ROOT if pro else DEMO_ROOT], clock=clock)
        self.headers = {("x-cg-pro-api-key" if pro else "x-cg-demo-api-key"): api_key} if api_key else {}
        self.breaker = breaker or CircuitBreaker(SOURCE, clock=clock)
        self.clock_ns = clock_ns

    async def fetch_market_chart(
        self, coin_id: str, vs: str = "usd", days: int = 1
    ) -> list[tuple[int, Decimal]]:
        """Price history (ns, price) for backfilling candles."""
        payload = await get_json(
            self.client,
            f"{self.endpoints.current()}/api/v3/coins/{coin_id}/market_chart",
            params={"vs_currency": vs, "days": str(days)},
            headers=self.headers,
        )
        return parse_market_chart(payload)

    async def fetch_ohlc(
        self, coin_id: str, vs: str = "usd", days: int = 7
    ) -> list[tuple[int, Decimal, Decimal, Decimal, Decimal]]:
        payload = await get_json(
            self.client,
            f"{self.endpoints.current()}/api/v3/coins/{coin_id}/ohlc",
            params={"vs_currency": vs, "days": str(days)},
            headers=self.headers,
        )
        return parse_ohlc(payload)

    async def fetch(self, pairs: Sequence[tuple[str, str]]) -> list[Quote]:
        ids = sorted({coin for coin, _ in pairs})
        currencies = sorted({vs.lower() for _, vs in pairs})
        params = {
            "ids": ",".join(ids),
            "vs_currencies": ",".join(currencies),
            "include_market_cap": "true",
            "include_24hr_vol": "true",
            "include_24hr_change": "true",
            "include_last_updated_at": "true",
        }
        root = self.endpoints.current()
        try:
            payload = await get_json(
                self.client, f"{root}/api/v3/simple/price", params=params, headers=self.headers
            )
        except FeedError as error:
            if error.kind is not ErrorKind.RATE_LIMITED:
                self.endpoints.failed(root)
            raise
        return parse_simple_price(payload, pairs, self.clock_ns())
