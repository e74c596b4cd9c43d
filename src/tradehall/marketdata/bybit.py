"""Bybit v5 public WebSocket: `orderbook.<depth>.<symbol>`, `publicTrade.<symbol>` and
`tickers.<symbol>`, with REST `/v5/market/orderbook` polling while the stream is down.

One connection per category (`spot`, `linear`, `inverse`: `wss://stream.bybit.com/v5/public/<category>`).
A push is `{"topic", "type": "snapshot" | "delta", "ts" (ms), "data", "cts"?}`. Order book `data`
is `{"s", "b": [[price, size]], "a": [[price, size]], "u", "seq"}`: a `snapshot` replaces the book
(also when Bybit resends one after a restart, with `u` = 1), a `delta` carries absolute sizes
(`"0"` removes the level) and its `u` must be the previous `u` + 1; anything else is a gap: the
topic is unsubscribed and subscribed again, which makes Bybit send a fresh snapshot. (On
`orderbook.1` Bybit repeats a snapshot with the same `u` when nothing changed for 3 s: a snapshot
is always accepted.) `publicTrade` data is a list of `{"T" ms, "s", "S" Buy|Sell (taker), "v",
"p", "i"}`. `tickers` (linear/inverse: a snapshot then deltas with only the changed fields, merged
here; spot: snapshots without a book) give `lastPrice`, `bid1Price`/`bid1Size`/`ask1Price`/
`ask1Size` and `volume24h`. Control: `{"success", "ret_msg", "op": "subscribe"}` acks (a
`success: false` is an api_error), and the answer to the feed's `{"op": "ping"}` (spot:
`{"success": true, "ret_msg": "pong", "op": "ping"}`; derivatives: `{"op": "pong", …}`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal, Unpack

import httpx
import orjson

from tradehall.marketdata.feed import ExchangeOptions, Sink, get_json
from tradehall.marketdata.models import Level, Quote, TradeTick, top_quote
from tradehall.marketdata.parsing import (
    ErrorKind,
    FeedError,
    dec,
    loads,
    mapping,
    ns_from_ms,
    opt_dec,
    sequence,
)
from tradehall.marketdata.venue_stream import VenueStreamFeed

SOURCE = "bybit"
WS_ROOT = "wss://stream.bybit.com"
REST_ROOT = "https://api.bybit.com"
Category = Literal["spot", "linear", "inverse"]
DEPTHS: dict[str, frozenset[int]] = {
    "spot": frozenset({1, 50, 200, 1000}),
    "linear": frozenset({1, 50, 200, 1000}),
    "inverse": frozenset({1, 50, 200, 1000}),
}
SUBSCRIBE_BATCH = 10
"""Bybit spot accepts at most 10 topics per subscribe request."""


def check_depth(category: str, depth: int) -> int:
    known = DEPTHS.get(category)
    if known is None:
        raise ValueError(f"unknown Bybit category {category!r}; known: inverse, linear, spot")
    if depth not in known:
        raise ValueError(f"Bybit {category} order book depth {depth} is not one of {sorted(known)}")
    return depth


def parse_levels(rows: object, what: str) -> list[Level]:
    return [(dec(row[0], what), dec(row[1], what)) for row in sequence(rows, what)]


def parse_trade(item: dict[str, Any], receive_ts: int) -> TradeTick:
    """`publicTrade`: `p`, `v`, taker side `S` (Buy → buy), `i` trade id, `T` ms."""
    side = str(item["S"])
    if side not in ("Buy", "Sell"):
        raise FeedError(ErrorKind.PARSE, f"trade side {side!r}")
    return TradeTick(
        source=SOURCE,
        instrument=str(item["s"]),
        price=dec(item["p"], "p"),
        size=dec(item["v"], "v"),
        side=side.lower(),
        trade_id=str(item["i"]),
        exchange_ts=ns_from_ms(item["T"]),
        receive_ts=receive_ts,
    )


def merge_ticker(
    previous: Quote | None, data: dict[str, Any], exchange_ts: int | None, receive_ts: int
) -> Quote:
    """A `tickers` snapshot or delta merged over the previous values (a delta names only changes)."""

    def field(name: str, old: Decimal | None) -> Decimal | None:
        if name not in data:
            return old
        return opt_dec(data[name], name)

    old = previous or Quote(source=SOURCE, instrument=str(data["symbol"]))
    return Quote(
        source=SOURCE,
        instrument=str(data["symbol"]),
        bid=field("bid1Price", old.bid),
        bid_size=field("bid1Size", old.bid_size),
        ask=field("ask1Price", old.ask),
        ask_size=field("ask1Size", old.ask_size),
        last=field("lastPrice", old.last),
        exchange_ts=exchange_ts,
        receive_ts=receive_ts,
        volume_24h=field("volume24h", old.volume_24h),
    )


def parse_rest_orderbook(payload: Any, symbol: str, receive_ts: int) -> Quote:
    """REST `GET /v5/market/orderbook`: `{"retCode": 0, "result": {"s", "b", "a", "ts", "u"}}`;
    a non-zero `retCode` is the venue's error."""
    body = mapping(payload, "orderbook")
    if body.get("retCode") != 0:
        raise FeedError(ErrorKind.API_ERROR, f"bybit {body.get('retCode')}: {body.get('retMsg', '')}")
    result = mapping(body.get("result"), "orderbook result")
    bids = parse_levels(result.get("b"), "b")
    asks = parse_levels(result.get("a"), "a")
    best_bid = max(bids, default=None)
    best_ask = min(asks, default=None)
    exchange_ts = ns_from_ms(result["ts"]) if result.get("ts") is not None else None
    return top_quote(SOURCE, symbol, best_bid, best_ask, receive_ts, exchange_ts=exchange_ts)


class BybitFeed(VenueStreamFeed):
    rest_top = "orderbook"

    def __init__(
        self,
        symbols: Sequence[str],
        sink: Sink,
        http: httpx.AsyncClient,
        *,
        category: Category = "spot",
        ws_root: str = WS_ROOT,
        rest_root: str = REST_ROOT,
        depth: int = 50,
        trades: bool = True,
        tickers: bool = True,
        poll_interval: float = 1.0,
        stale_after: float = 60.0,
        ping_interval: float = 20.0,
        name: str = SOURCE,
        **options: Unpack[ExchangeOptions],
    ) -> None:
        super().__init__(
            name,
            SOURCE,
            [symbol.upper() for symbol in symbols],
            sink,
            http,
            ws_url=f"{ws_root.rstrip('/')}/v5/public/{category}",
            rest_root=rest_root,
            poll_interval=poll_interval,
            stale_after=stale_after,
            ping_interval=ping_interval,
            **options,
        )
        self.category = category
        self.depth = check_depth(category, depth)
        self.trades = trades
        self.tickers = tickers
        self._ids = itertools.count(1)

    def topics(self, symbol: str) -> list[str]:
        names = [f"orderbook.{self.depth}.{symbol}"]
        if self.trades:
            names.append(f"publicTrade.{symbol}")
        if self.tickers:
            names.append(f"tickers.{symbol}")
        return names

    def _request(self, op: str, args: list[str]) -> str:
        return orjson.dumps({"req_id": str(next(self._ids)), "op": op, "args": args}).decode()

    def subscribe_messages(self) -> list[str]:
        topics = [topic for symbol in self.symbols for topic in self.topics(symbol)]
        return [
            self._request("subscribe", topics[start : start + SUBSCRIBE_BATCH])
            for start in range(0, len(topics), SUBSCRIBE_BATCH)
        ]

    def resubscribe_messages(self, symbol: str) -> list[str]:
        topic = [f"orderbook.{self.depth}.{symbol}"]
        return [self._request("unsubscribe", topic), self._request("subscribe", topic)]

    def ping_message(self) -> str:
        return self._request("ping", [])

    def handle_message(self, raw: bytes) -> list[str]:
        """One frame; returns the symbols whose book must be resubscribed."""
        receive_ts = self.clock_ns()
        try:
            body = mapping(loads(raw), "message")
            topic = body.get("topic")
            if topic is None:
                self._on_control(body)
                return []
            kind, _, rest = str(topic).partition(".")
            exchange_ts = ns_from_ms(body["ts"]) if body.get("ts") is not None else None
            if kind == "orderbook":
                self.note_message()
                return self._on_book(
                    body.get("type"), mapping(body.get("data"), "data"), exchange_ts, receive_ts
                )
            if kind == "publicTrade":
                self.note_message()
                for item in sequence(body.get("data"), "data"):
                    trade = parse_trade(mapping(item, "trade"), receive_ts)
                    if trade.instrument in self.books:
                        self.emit(trade)
            elif kind == "tickers":
                self.note_message()
                self._on_ticker(mapping(body.get("data"), "data"), exchange_ts, receive_ts)
            else:
                self.note_ignored(kind or rest)
        except FeedError as error:
            self.note_error(error)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.note_error(FeedError(ErrorKind.PARSE, f"{type(exc).__name__}: {exc}"))
        return []

    def _on_control(self, body: dict[str, Any]) -> None:
        op = str(body.get("op", "unknown"))
        if body.get("success") is False:
            self.note_error(FeedError(ErrorKind.API_ERROR, f"bybit {op}: {body.get('ret_msg', '')}"))
        elif op in ("ping", "pong") or body.get("ret_msg") == "pong":
            self.note_ignored("pong")
        else:
            self.note_ignored(op)

    def _on_ticker(self, data: dict[str, Any], exchange_ts: int | None, receive_ts: int) -> None:
        symbol = str(data["symbol"])
        book = self.books.get(symbol)
        if book is None:
            return
        quote = merge_ticker(self.last.get(symbol), data, exchange_ts, receive_ts)
        self.last[symbol] = quote
        if not book.synced:
            self.emit(quote)  # no live book: the ticker is the quote

    def _on_book(
        self, kind: object, data: dict[str, Any], exchange_ts: int | None, receive_ts: int
    ) -> list[str]:
        symbol = str(data["s"])
        book = self.books.get(symbol)
        if book is None:
            return []
        bids = parse_levels(data.get("b"), "b")
        asks = parse_levels(data.get("a"), "a")
        update_id = int(data["u"])
        if kind == "snapshot":
            book.load(bids, asks, update_id, exchange_ts)
            self.emit(self.book_snapshot(book, receive_ts))
        elif kind == "delta":
            if not book.synced:
                return []  # a delta before the snapshot of a (re)subscription: wait for it
            if book.seq is not None and update_id != book.seq + 1:
                return self.need_resync(symbol, "sequence_gap", f"u {update_id} after {book.seq}")
            book.apply(bids, asks, update_id, exchange_ts)
        else:
            raise FeedError(ErrorKind.PARSE, f"order book type {kind!r}")
        self.emit(self.book_quote(book, receive_ts))
        return []

    async def fetch_top(self, symbol: str) -> Quote:
        """REST `GET /v5/market/orderbook?category=…&symbol=…&limit=1` (only while the stream is down)."""
        payload = await get_json(
            self.http,
            f"{self.rest_root}/v5/market/orderbook",
            params={"category": self.category, "symbol": symbol, "limit": "1"},
        )
        return parse_rest_orderbook(payload, symbol, self.clock_ns())
