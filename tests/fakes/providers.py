"""Provider fakes speaking each provider's wire format, built on the generic HTTP and WebSocket fakes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection

from tests.fakes.http_server import FakeHttpServer, Request, Response
from tests.fakes.ws import FakeWsServer

# --- CoinGecko / CoinMarketCap ------------------------------------------------------------------


def serve_coingecko(server: FakeHttpServer, prices: dict[str, float], updated_at: int = 1711356300) -> None:
    """`simple/price` answering for the requested ids that `prices` knows (unknown ids are omitted)."""

    def simple_price(request: Request) -> Response:
        vs = request.query.get("vs_currencies", "usd")
        body: dict[str, Any] = {}
        for coin in request.query.get("ids", "").split(","):
            if coin in prices:
                body[coin] = {
                    vs: prices[coin],
                    f"{vs}_market_cap": 1317802988326.25,
                    f"{vs}_24h_vol": 31260929299.5248,
                    f"{vs}_24h_change": 3.63727894677354,
                    "last_updated_at": updated_at,
                }
        return Response.json(body)

    server.route("/api/v3/simple/price", simple_price)


def coingecko_rate_limited(retry_after: str = "1", html: bool = False) -> Response:
    if html:
        return Response(
            429,
            b"<html><body><h1>429 Too Many Requests</h1></body></html>",
            {"content-type": "text/html", "retry-after": retry_after},
        )
    return Response.json(
        {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}},
        429,
        {"retry-after": retry_after},
    )


def serve_coinmarketcap(server: FakeHttpServer, prices: dict[str, float], api_key: str) -> None:
    def quotes_latest(request: Request) -> Response:
        if request.headers.get("x-cmc_pro_api_key") != api_key:
            return Response.json({"status": {"error_code": 1002, "error_message": "API key missing."}}, 401)
        convert = request.query.get("convert", "USD")
        data = {}
        for symbol in request.query.get("symbol", "").split(","):
            if symbol in prices:
                data[symbol] = {
                    "id": 1,
                    "name": symbol,
                    "symbol": symbol,
                    "slug": symbol.lower(),
                    "cmc_rank": 1,
                    "last_updated": "2018-08-09T21:56:28.000Z",
                    "quote": {
                        convert: {
                            "price": prices[symbol],
                            "volume_24h": 4314444687.5194,
                            "percent_change_24h": 4.37185,
                            "market_cap": 852164659250.2758,
                            "last_updated": "2018-08-09T21:56:28.000Z",
                        }
                    },
                }
        if request.path.startswith("/v2/"):  # v2 answers a symbol with an array of its coins
            data = {symbol: [entry] for symbol, entry in data.items()}
        return Response.json(
            {
                "data": data,
                "status": {
                    "timestamp": "2025-10-13T00:00:34.078Z",
                    "error_code": 0,
                    "error_message": "",
                    "elapsed": 10,
                    "credit_count": 1,
                    "notice": "",
                },
            }
        )

    server.route("/v1/cryptocurrency/quotes/latest", quotes_latest)
    server.route("/v2/cryptocurrency/quotes/latest", quotes_latest)


# --- Binance --------------------------------------------------------------------------------------


@dataclass
class BinanceState:
    snapshot: dict[str, Any] = field(
        default_factory=lambda: {
            "lastUpdateId": 100,
            "bids": [["100.00", "1.0"]],
            "asks": [["101.00", "1.0"]],
        }
    )
    book_ticker: dict[str, Any] = field(
        default_factory=lambda: {
            "symbol": "BTCUSDT",
            "bidPrice": "67000.10000000",
            "bidQty": "1.50000000",
            "askPrice": "67000.20000000",
            "askQty": "2.00000000",
        }
    )


def serve_binance_rest(server: FakeHttpServer, state: BinanceState) -> None:
    def depth(request: Request) -> Response:
        if request.query.get("symbol") != "BTCUSDT":
            return Response.json({"code": -1121, "msg": "Invalid symbol."}, 400)
        return Response.json(state.snapshot)

    server.route("/api/v3/depth", depth)
    server.route("/api/v3/ticker/bookTicker", lambda _: Response.json(state.book_ticker))


def depth_update(
    first: int,
    final: int,
    bids: list[list[str]] | None = None,
    asks: list[list[str]] | None = None,
    symbol: str = "BTCUSDT",
) -> dict[str, Any]:
    return {
        "stream": f"{symbol.lower()}@depth@100ms",
        "data": {
            "e": "depthUpdate",
            "E": 1672515782136,
            "s": symbol,
            "U": first,
            "u": final,
            "b": bids or [],
            "a": asks or [],
        },
    }


# --- Kalshi ---------------------------------------------------------------------------------------


class FakeKalshi:
    """REST (`/trade-api/v2/markets/...`) and WebSocket; the book is bids only, in dollars."""

    def __init__(self, http: FakeHttpServer, ws: FakeWsServer, ticker: str) -> None:
        self.http = http
        self.ws = ws
        self.ticker = ticker
        self.yes: dict[str, str] = {"0.0800": "300.00", "0.2200": "333.00"}
        self.no: dict[str, str] = {"0.5400": "20.00", "0.5600": "146.00"}
        self.market: dict[str, Any] = {
            "ticker": ticker,
            "event_ticker": "FED",
            "market_type": "binary",
            "status": "active",
            "yes_bid": 22,
            "yes_ask": 44,
            "no_bid": 56,
            "no_ask": 78,
            "last_price": 30,
            "result": "",
            "settlement_value_dollars": None,
            "close_time": "2030-01-01T00:00:00Z",
        }
        self.sids = itertools.count(1)
        self.seq: dict[int, int] = {}
        self.subscribes = 0
        self.unsubscribes = 0
        ws.on_message = self._on_message
        http.route(f"/trade-api/v2/markets/{ticker}", lambda _: Response.json({"market": self.market}))
        http.route(f"/trade-api/v2/markets/{ticker}/orderbook", self._orderbook)

    @property
    def rest_root(self) -> str:
        return f"{self.http.url}/trade-api/v2"

    def _sorted(self, side: dict[str, str]) -> list[list[str]]:
        return [[price, size] for price, size in sorted(side.items(), key=lambda item: float(item[0]))]

    def _orderbook(self, _: Request) -> Response:
        return Response.json(
            {"orderbook_fp": {"yes_dollars": self._sorted(self.yes), "no_dollars": self._sorted(self.no)}}
        )

    async def _on_message(self, server: FakeWsServer, ws: ServerConnection, message: Any) -> None:
        if message.get("cmd") == "unsubscribe":
            self.unsubscribes += 1
            for sid in message["params"]["sids"]:
                self.seq.pop(sid, None)
            return
        if message.get("cmd") != "subscribe":
            return
        params = message.get("params") or {}
        if "market_ticker" not in params:
            await ws.send(
                _dumps(
                    {"id": message.get("id"), "type": "error", "msg": {"code": 2, "msg": "Params required"}}
                )
            )
            return
        self.subscribes += 1
        sid = next(self.sids)
        self.seq[sid] = 1
        await ws.send(
            _dumps(
                {"id": message["id"], "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": sid}}
            )
        )
        snapshot: dict[str, Any] = {"market_ticker": self.ticker, "market_id": "9b0f"}
        if self.yes:
            snapshot["yes_dollars_fp"] = self._sorted(self.yes)
        if self.no:
            snapshot["no_dollars_fp"] = self._sorted(self.no)
        await ws.send(_dumps({"type": "orderbook_snapshot", "sid": sid, "seq": 1, "msg": snapshot}))

    @property
    def current_sid(self) -> int:
        return max(self.seq)

    def apply(self, side: str, price: str, delta: str) -> None:
        book = self.yes if side == "yes" else self.no
        size = float(book.get(price, "0")) + float(delta)
        if size <= 0:
            book.pop(price, None)
        else:
            book[price] = f"{size:.2f}"

    async def delta(
        self, side: str, price: str, delta: str, *, skip_seq: bool = False, apply: bool = True
    ) -> None:
        """Push an `orderbook_delta` on the current subscription; `skip_seq` makes a gap."""
        sid = self.current_sid
        self.seq[sid] += 2 if skip_seq else 1
        if apply:
            self.apply(side, price, delta)
        await self.ws.push(
            {
                "type": "orderbook_delta",
                "sid": sid,
                "seq": self.seq[sid],
                "msg": {
                    "market_ticker": self.ticker,
                    "price_dollars": price,
                    "delta_fp": delta,
                    "side": side,
                    "ts": "2022-11-22T20:44:01Z",
                    "ts_ms": 1669149841000,
                },
            }
        )


# --- Polymarket -----------------------------------------------------------------------------------


class FakePolymarket:
    def __init__(self, http: FakeHttpServer, ws: FakeWsServer, slug: str, yes: str, no: str) -> None:
        self.http = http
        self.ws = ws
        self.slug = slug
        self.yes = yes
        self.no = no
        self.gamma: dict[str, Any] = {
            "id": "12",
            "question": "Will it?",
            "conditionId": "0xbd31",
            "slug": slug,
            "outcomes": '["Yes", "No"]',
            "outcomePrices": '["0.47", "0.53"]',
            "clobTokenIds": f'["{yes}", "{no}"]',
            "active": True,
            "closed": False,
            "acceptingOrders": True,
            "bestBid": 0.46,
            "bestAsk": 0.48,
            "lastTradePrice": 0.47,
            "volume": "1000.5",
            "endDate": "2030-01-01T00:00:00Z",
            "orderPriceMinTickSize": 0.01,
            "orderMinSize": 5,
            "umaResolutionStatus": "",
        }
        ws.on_message = self._on_message
        http.route("/markets", self._markets)

    def _markets(self, request: Request) -> Response:
        return Response.json([self.gamma] if request.query.get("slug") == self.slug else [])

    def book(self, asset: str) -> dict[str, Any]:
        # Deliberately unsorted and non-canonical, as the real service may send them.
        if asset == self.yes:
            bids = [{"price": ".40", "size": "100"}, {"price": ".46", "size": "30"}]
            asks = [{"price": ".55", "size": "10"}, {"price": ".48", "size": "25"}]
        else:
            bids = [{"price": ".52", "size": "25"}]
            asks = [{"price": ".54", "size": "30"}]
        return {
            "event_type": "book",
            "asset_id": asset,
            "market": "0xbd31",
            "bids": bids,
            "asks": asks,
            "timestamp": "1750428146322",
            "hash": "0x0",
        }

    async def _on_message(self, server: FakeWsServer, ws: ServerConnection, message: Any) -> None:
        # The first subscription, or a dynamic one on the open connection (`"operation": "subscribe"`).
        if message.get("type") == "market" or message.get("operation") == "subscribe":
            await ws.send(_dumps([self.book(asset) for asset in message["assets_ids"]]))


def _dumps(message: Any) -> str:
    return orjson.dumps(message).decode()
