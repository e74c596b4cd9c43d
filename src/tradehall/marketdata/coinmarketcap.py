"""CoinMarketCap `quotes/latest`: the failover for CoinGecko, used only with an API key.

`status.error_code` is checked even on HTTP 200; its codes map to the HTTP status they mean.
v1 answers a symbol with one object; v2 (the default) with an array of every coin sharing that
symbol, so the coin is chosen by its configured CoinMarketCap id, else by the best `cmc_rank` —
never by position.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx

from tradehall.marketdata.breaker import CircuitBreaker, Clock
from tradehall.marketdata.endpoints import EndpointPool
from tradehall.marketdata.feed import get_json
from tradehall.marketdata.models import Quote
from tradehall.marketdata.parsing import ErrorKind, FeedError, dec, mapping, ns_from_iso

SOURCE = "coinmarketcap"
ROOT = "https://pro-api.coinmarketcap.com"
ApiVersion = Literal["v1", "v2"]


def instrument_key(symbol: str, convert: str) -> str:
    return f"{symbol.upper()}/{convert.upper()}"


def http_status_of_error(code: int) -> int:
    """CoinMarketCap's error_code → the HTTP status it stands for."""
    if code in (1001, 1002):
        return 401
    if code in (1003, 1004):
        return 402
    if 1005 <= code <= 1007:
        return 403
    if 1008 <= code <= 1011:
        return 429
    return code if 400 <= code < 600 else 500


def check_status(body: dict[str, Any]) -> None:
    status = body.get("status")
    if not isinstance(status, dict):
        return
    code = status.get("error_code")
    if code in (None, 0, "0"):
        return
    try:
        numeric = int(code)
    except (TypeError, ValueError):
        raise FeedError(ErrorKind.API_ERROR, f"error_code {code!r}") from None
    http_status = http_status_of_error(numeric)
    kind = ErrorKind.RATE_LIMITED if http_status == 429 else ErrorKind.API_ERROR
    raise FeedError(kind, f"{numeric}: {status.get('error_message', '')}", http_status=http_status)


def choose_entry(entry: Any, coin_id: int | None) -> dict[str, Any] | None:
    """The coin of one `data` value: v1's object as is; from v2's array the one with `coin_id`
    (None when it is absent: another coin with the same symbol is not a substitute), else the
    ranked coin with the best (lowest) `cmc_rank`."""
    if isinstance(entry, dict):
        if coin_id is not None and entry.get("id") not in (coin_id, str(coin_id)):
            return None
        return entry
    if not isinstance(entry, list):
        return None
    coins = [coin for coin in entry if isinstance(coin, dict)]
    if coin_id is not None:
        return next((coin for coin in coins if coin.get("id") in (coin_id, str(coin_id))), None)
    ranked = [coin for coin in coins if isinstance(coin.get("cmc_rank"), int)]
    if ranked:
        return min(ranked, key=lambda coin: int(coin["cmc_rank"]))
    return coins[0] if len(coins) == 1 else None


def parse_quotes_latest(
    payload: Any,
    pairs: Sequence[tuple[str, str]],
    receive_ts: int,
    source: str = SOURCE,
    ids: Mapping[str, int] | None = None,
) -> list[Quote]:
    """Quotes for (symbol, convert) pairs; `data` is keyed by the symbol the query used, its value
    an object (v1) or an array (v2); `ids` maps a symbol to the CoinMarketCap id to pick."""
    body = mapping(payload, "quotes/latest body")
    check_status(body)
    data = body.get("data")
    if not isinstance(data, dict):
        raise FeedError(ErrorKind.PARSE, "quotes/latest without data")
    wanted = {symbol.upper(): coin_id for symbol, coin_id in (ids or {}).items()}
    quotes = []
    for symbol, convert in pairs:
        coin_id = wanted.get(symbol.upper())
        raw = data.get(symbol.upper())
        if raw is None and coin_id is not None:
            raw = data.get(str(coin_id))  # an `id=` query keys `data` by the id
        entry = choose_entry(raw, coin_id)
        if entry is None:
            continue
        quote = entry.get("quote", {}).get(convert.upper())
        if not isinstance(quote, dict) or quote.get("price") is None:
            continue
        updated = quote.get("last_updated") or entry.get("last_updated")
        quotes.append(
            Quote(
                source=source,
                instrument=instrument_key(symbol, convert),
                last=dec(quote["price"], f"{symbol}.price"),
                exchange_ts=ns_from_iso(updated) if isinstance(updated, str) else None,
                receive_ts=receive_ts,
            )
        )
    return quotes


class CoinMarketCapProvider:
    name = SOURCE

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_key: str,
        *,
        roots: Sequence[str] | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Clock = time.monotonic,
        clock_ns: Any = time.time_ns,
        api_version: ApiVersion = "v2",
        ids: Mapping[str, int] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("CoinMarketCap needs an API key")
        self.client = client
        self.endpoints = EndpointPool(roots or [ROOT], clock=clock)
        self.headers = {"X-CMC_PRO_API_KEY": api_key, "Accept": "application/json"}
        self.breaker = breaker or CircuitBreaker(SOURCE, clock=clock)
        self.clock_ns = clock_ns
        self.api_version = api_version
        self.ids = {symbol.upper(): coin_id for symbol, coin_id in (ids or {}).items()}

    async def fetch(self, pairs: Sequence[tuple[str, str]]) -> list[Quote]:
        params = {
            "symbol": ",".join(sorted({symbol.upper() for symbol, _ in pairs})),
            "convert": ",".join(sorted({convert.upper() for _, convert in pairs})),
        }
        root = self.endpoints.current()
        try:
            payload = await get_json(
                self.client,
                f"{root}/{self.api_version}/cryptocurrency/quotes/latest",
                params=params,
                headers=self.headers,
            )
        except FeedError as error:
            if error.kind is not ErrorKind.RATE_LIMITED:
                self.endpoints.failed(root)
            raise
        return parse_quotes_latest(payload, pairs, self.clock_ns(), ids=self.ids)
