"""Coinbase Advanced Trade public WebSocket: `level2` (received as `l2_data`), `ticker`,
`market_trades` and `heartbeats`, with REST `product_book` polling while the stream is down.

Every message is `{"channel", "client_id", "timestamp" (ISO), "sequence_num", "events": [ … ]}`.
`sequence_num` counts every message of the connection, all channels together, from 0: a number
that is not the previous one + 1 means a message was lost, and it may have been a book update, so
every book of the connection is dropped and its `level2` subscription renewed (Coinbase answers a
subscription with a snapshot). `l2_data` events are `{"type": "snapshot" | "update", "product_id",
"updates": [{"side": "bid" | "offer", "event_time", "price_level", "new_quantity"}]}`, quantities
absolute (`"0"` removes the level). `ticker` events carry `tickers` (`price`, `best_bid`,
`best_bid_quantity`, `best_ask`, `best_ask_quantity`, `volume_24_h`); `market_trades` events carry
`trades` (`trade_id`, `product_id`, `price`, `size`, `side`, `time`), where `side` is the maker's
order side, so the aggressor is the other side. `heartbeats` (one a second) keep a quiet
connection open and are counted as ignored, like `subscriptions` acks; `{"type": "error",
"message"}` is an api_error. Subscriptions are one channel per request:
`{"type": "subscribe", "product_ids": [...], "channel": "level2"}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Unpack

import httpx
import orjson

from tradehall.marketdata.feed import ExchangeOptions, Sink, get_json
from tradehall.marketdata.models import Level, Quote, TradeTick, top_quote
from tradehall.marketdata.parsing import (
    NS_PER_S,
    ErrorKind,
    FeedError,
    dec,
    loads,
    mapping,
    ns_from_iso,
    opt_dec,
    sequence,
)
from tradehall.marketdata.venue_stream import VenueStreamFeed

SOURCE = "coinbase"
WS_URL = "wss://advanced-trade-ws.coinbase.com"
REST_ROOT = "https://api.coinbase.com"
CHANNELS = ("level2", "ticker", "market_trades", "heartbeats")
AGGRESSOR = {"BUY": "sell", "SELL": "buy"}
"""`market_trades` names the maker's side; the taker (aggressor) took the other one."""


def iso_ns(text: str) -> int:
    """An ISO time with up to nine fractional digits (`2023-02-09T20:32:50.714964855Z`) in ns.
    The whole seconds are parsed once per distinct second (most messages share a few)."""
    head, dot, rest = text.partition(".")
    if not dot:
        return _whole_seconds_ns(text)
    zone = rest.lstrip("0123456789")
    digits = rest[: len(rest) - len(zone)]
    return _whole_seconds_ns(head + zone) + int((digits + "000000000")[:9]) % NS_PER_S


@lru_cache(maxsize=1024)
def _whole_seconds_ns(text: str) -> int:
    return ns_from_iso(text)


def parse_updates(updates: object) -> tuple[list[Level], list[Level]]:
    bids: list[Level] = []
    asks: list[Level] = []
    for raw in sequence(updates, "updates"):
        item = mapping(raw, "update")
        level = (dec(item["price_level"], "price_level"), dec(item["new_quantity"], "new_quantity"))
        side = item["side"]
        if side == "bid":
            bids.append(level)
        elif side == "offer":
            asks.append(level)
        else:
            raise FeedError(ErrorKind.PARSE, f"level2 side {side!r}")
    return bids, asks


def parse_ticker(item: dict[str, Any], exchange_ts: int | None, receive_ts: int) -> Quote:
    return Quote(
        source=SOURCE,
        instrument=str(item["product_id"]),
        bid=opt_dec(item.get("best_bid"), "best_bid"),
        bid_size=opt_dec(item.get("best_bid_quantity"), "best_bid_quantity"),
        ask=opt_dec(item.get("best_ask"), "best_ask"),
        ask_size=opt_dec(item.get("best_ask_quantity"), "best_ask_quantity"),
        last=opt_dec(item.get("price"), "price"),
        exchange_ts=exchange_ts,
        receive_ts=receive_ts,
        volume_24h=opt_dec(item.get("volume_24_h"), "volume_24_h"),
    )


def parse_trade(item: dict[str, Any], receive_ts: int) -> TradeTick:
    maker = str(item["side"]).upper()
    if maker not in AGGRESSOR:
        raise FeedError(ErrorKind.PARSE, f"trade side {item['side']!r}")
    return TradeTick(
        source=SOURCE,
        instrument=str(item["product_id"]),
        price=dec(item["price"], "price"),
        size=dec(item["size"], "size"),
        side=AGGRESSOR[maker],
        trade_id=str(item["trade_id"]),
        exchange_ts=iso_ns(str(item["time"])),
        receive_ts=receive_ts,
    )


def parse_product_book(payload: Any, symbol: str, receive_ts: int) -> Quote:
    """REST `GET /api/v3/brokerage/market/product_book`: `{"pricebook": {"product_id", "bids":
    [{"price", "size"}], "asks": [...], "time"}, "last", …}`."""
    book = mapping(mapping(payload, "product_book").get("pricebook"), "pricebook")
    bids = [(dec(b["price"], "price"), dec(b["size"], "size")) for b in sequence(book.get("bids"), "bids")]
    asks = [(dec(a["price"], "price"), dec(a["size"], "size")) for a in sequence(book.get("asks"), "asks")]
    best_bid = max(bids, default=None)
    best_ask = min(asks, default=None)
    last = mapping(payload, "product_book").get("last")
    exchange_ts = iso_ns(str(book["time"])) if book.get("time") else None
    return top_quote(
        SOURCE, symbol, best_bid, best_ask, receive_ts, last=opt_dec(last, "last"), exchange_ts=exchange_ts
    )


class CoinbaseFeed(VenueStreamFeed):
    rest_top = "product_book"

    def __init__(
        self,
        symbols: Sequence[str],
        sink: Sink,
        http: httpx.AsyncClient,
        *,
        ws_url: str = WS_URL,
        rest_root: str = REST_ROOT,
        poll_interval: float = 1.0,
        stale_after: float = 30.0,
        name: str = SOURCE,
        **options: Unpack[ExchangeOptions],
    ) -> None:
        super().__init__(
            name,
            SOURCE,
            [symbol.upper() for symbol in symbols],
            sink,
            http,
            ws_url=ws_url,
            rest_root=rest_root,
            poll_interval=poll_interval,
            stale_after=stale_after,
            ping_interval=3600.0,
            **options,
        )
        self.last_sequence: int | None = None
        self.sequence_gaps = 0

    def on_connect(self) -> None:
        self.last_sequence = None

    def _request(self, kind: str, channel: str, symbols: list[str]) -> str:
        return orjson.dumps({"type": kind, "product_ids": symbols, "channel": channel}).decode()

    def subscribe_messages(self) -> list[str]:
        return [self._request("subscribe", channel, self.symbols) for channel in CHANNELS]

    def resubscribe_messages(self, symbol: str) -> list[str]:
        return [
            self._request("unsubscribe", "level2", [symbol]),
            self._request("subscribe", "level2", [symbol]),
        ]

    def ping_message(self) -> str | None:
        return None  # the heartbeats channel keeps the connection alive

    def handle_message(self, raw: bytes) -> list[str]:
        """One message; returns the symbols whose level2 subscription must be renewed."""
        receive_ts = self.clock_ns()
        try:
            body = mapping(loads(raw), "message")
            if body.get("type") == "error":
                self.note_error(FeedError(ErrorKind.API_ERROR, f"coinbase: {body.get('message', '')}"))
                return []
            resync = self._check_sequence(body.get("sequence_num"))
            channel = body.get("channel")
            events = sequence(body.get("events"), "events")
            exchange_ts = iso_ns(str(body["timestamp"])) if body.get("timestamp") else None
            if channel == "l2_data":
                self.note_message()
                for event in events:
                    resync += self._on_l2(mapping(event, "l2 event"), exchange_ts, receive_ts)
            elif channel == "ticker":
                self.note_message()
                for event in events:
                    for item in sequence(mapping(event, "ticker event").get("tickers"), "tickers"):
                        self._on_ticker(parse_ticker(mapping(item, "ticker"), exchange_ts, receive_ts))
            elif channel == "market_trades":
                self.note_message()
                for event in events:
                    for item in sequence(mapping(event, "trades event").get("trades"), "trades"):
                        trade = parse_trade(mapping(item, "trade"), receive_ts)
                        if trade.instrument in self.books:
                            self.emit(trade)
            else:
                self.note_ignored(str(channel))
            return sorted(set(resync))
        except FeedError as error:
            self.note_error(error)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.note_error(FeedError(ErrorKind.PARSE, f"{type(exc).__name__}: {exc}"))
        return []

    def _check_sequence(self, number: object) -> list[str]:
        """A lost message of the connection may have been any book's update: resync them all."""
        if number is None:
            return []
        current = int(str(number))
        previous, self.last_sequence = self.last_sequence, current
        if previous is None or current == previous + 1:
            return []
        self.sequence_gaps += 1
        resync: list[str] = []
        for symbol, book in self.books.items():
            if book.synced:
                resync += self.need_resync(symbol, "sequence_gap", f"sequence_num {current} after {previous}")
        if not resync:
            self.note_error(FeedError(ErrorKind.SEQUENCE_GAP, f"sequence_num {current} after {previous}"))
        return resync

    def _on_l2(self, event: dict[str, Any], exchange_ts: int | None, receive_ts: int) -> list[str]:
        symbol = str(event["product_id"])
        book = self.books.get(symbol)
        if book is None:
            return []
        bids, asks = parse_updates(event.get("updates"))
        if event.get("type") == "snapshot":
            book.load(bids, asks, self.last_sequence, exchange_ts)
            self.emit(self.book_snapshot(book, receive_ts))
        elif event.get("type") == "update":
            if not book.synced:
                return []  # an update before the (re)subscription's snapshot: wait for it
            book.apply(bids, asks, self.last_sequence, exchange_ts)
        else:
            raise FeedError(ErrorKind.PARSE, f"l2_data event type {event.get('type')!r}")
        self.emit(self.book_quote(book, receive_ts))
        return []

    def _on_ticker(self, quote: Quote) -> None:
        book = self.books.get(quote.instrument)
        if book is None:
            return
        self.last[quote.instrument] = quote
        if not book.synced:
            self.emit(quote)  # no live book: the ticker is the quote

    async def fetch_top(self, symbol: str) -> Quote:
        """REST `GET /api/v3/brokerage/market/product_book?product_id=…&limit=1` (only while down)."""
        payload = await get_json(
            self.http,
            f"{self.rest_root}/api/v3/brokerage/market/product_book",
            params={"product_id": symbol, "limit": "1"},
        )
        return parse_product_book(payload, symbol, self.clock_ns())
