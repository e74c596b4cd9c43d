"""OKX v5 public WebSocket: `books5` / `books` (order book), `tickers` and `trades`, with REST
`/api/v5/market/books` polling while the stream is down.

Every push is `{"arg": {"channel", "instId"}, "data": [ … ]}` (`books` adds `"action"`:
`snapshot` | `update`). Levels are `[price, size, "0" (deprecated), order count]` strings; a size
of `"0"` in an update removes the level. `books5` pushes the whole top five each time (a snapshot
without `action`). `books` is a snapshot then updates chained by `prevSeqId` = the previous
message's `seqId` (an update with no change repeats its `seqId`); a break is a gap: the book is
dropped, unsubscribed and subscribed again, and OKX answers with a fresh snapshot. The CRC32
`checksum` of the top 25 levels is verified only when asked (`verify_checksum`): OKX's own
documentation example does not match its book and recorders report it as 0 live, so a 0 is
treated as absent; after three mismatches in a row on one instrument its checks stop (logged), since
resubscribing forever would leave it without quotes. Control traffic: `{"event": "subscribe" |
"unsubscribe", …}` acks (ignored),
`{"event": "error", "code", "msg"}` (api_error), `{"event": "notice", "code": "64008"}` (the
connection closes soon for an upgrade: reconnect now) and the text frame `pong`, the answer to
the text `ping` the feed sends when it has been quiet (OKX closes a connection silent for 30 s).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Unpack

import httpx
import orjson
import structlog

from tradehall.marketdata.book import SequencedBook
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

log = structlog.get_logger(__name__)

SOURCE = "okx"
WS_URL = "wss://ws.okx.com:8443/ws/v5/public"
REST_ROOT = "https://www.okx.com"
BOOK_CHANNELS = frozenset({"books5", "books", "bbo-tbt"})
CHANNELS = frozenset({*BOOK_CHANNELS, "tickers", "trades"})
RECONNECT_NOTICE = "64008"
CHECKSUM_LEVELS = 25
MAX_CHECKSUM_FAILURES = 3
"""Consecutive mismatches (each followed by a fresh snapshot) after which an instrument's checksums
are no longer checked: resubscribing forever would leave it without quotes."""


def check_channels(channels: Sequence[str]) -> tuple[str, ...]:
    """The configured channels, refused at start when the feed cannot parse one, or when two book
    channels would fight over one local book."""
    names = tuple(channels)
    if not names:
        raise ValueError("okx_channels is empty: name at least one channel")
    unknown = [name for name in names if name not in CHANNELS]
    if unknown:
        raise ValueError(f"unknown OKX channel {unknown[0]!r}; known: {', '.join(sorted(CHANNELS))}")
    if len(BOOK_CHANNELS & set(names)) > 1:
        raise ValueError("name one OKX book channel: books5, books or bbo-tbt")
    return names


def parse_levels(rows: object, what: str) -> list[Level]:
    """`[[price, size, "0", orders], …]` → (price, size); extra columns are ignored."""
    return [(dec(row[0], what), dec(row[1], what)) for row in sequence(rows, what)]


def checksum(book: SequencedBook) -> int:
    """OKX's book checksum: CRC32 (as a signed 32-bit integer) of `bid:size:ask:size:…` over the
    best 25 levels of each side, interleaved, prices and sizes as plain decimals."""
    bids, asks = book.depth(CHECKSUM_LEVELS)
    parts: list[str] = []
    for index in range(CHECKSUM_LEVELS):
        if index < len(bids):
            parts += (format(bids[index][0], "f"), format(bids[index][1], "f"))
        if index < len(asks):
            parts += (format(asks[index][0], "f"), format(asks[index][1], "f"))
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def parse_ticker(item: dict[str, Any], receive_ts: int) -> Quote:
    """`tickers`: `last`, `bidPx`/`bidSz`, `askPx`/`askSz`, `vol24h` (base currency for spot,
    contracts for derivatives), `ts` in ms. An empty price means that side is empty."""
    return Quote(
        source=SOURCE,
        instrument=str(item["instId"]),
        bid=opt_dec(item.get("bidPx"), "bidPx"),
        bid_size=opt_dec(item.get("bidSz"), "bidSz"),
        ask=opt_dec(item.get("askPx"), "askPx"),
        ask_size=opt_dec(item.get("askSz"), "askSz"),
        last=opt_dec(item.get("last"), "last"),
        exchange_ts=ns_from_ms(item["ts"]) if item.get("ts") else None,
        receive_ts=receive_ts,
        volume_24h=opt_dec(item.get("vol24h"), "vol24h"),
    )


def parse_trade(item: dict[str, Any], receive_ts: int) -> TradeTick:
    """`trades`: `px`, `sz`, taker `side` (buy | sell), `tradeId`, `ts` ms (`count` trades merged)."""
    side = str(item["side"])
    if side not in ("buy", "sell"):
        raise FeedError(ErrorKind.PARSE, f"trade side {side!r}")
    return TradeTick(
        source=SOURCE,
        instrument=str(item["instId"]),
        price=dec(item["px"], "px"),
        size=dec(item["sz"], "sz"),
        side=side,
        trade_id=str(item["tradeId"]),
        exchange_ts=ns_from_ms(item["ts"]),
        receive_ts=receive_ts,
    )


def parse_rest_books(payload: Any, symbol: str, receive_ts: int) -> Quote:
    """REST `GET /api/v5/market/books`: `{"code": "0", "msg": "", "data": [{"asks", "bids", "ts"}]}`;
    a non-zero `code` is the venue's error."""
    body = mapping(payload, "books")
    if str(body.get("code")) != "0":
        raise FeedError(ErrorKind.API_ERROR, f"okx {body.get('code')}: {body.get('msg', '')}")
    data = sequence(body.get("data"), "books data")
    if not data:
        raise FeedError(ErrorKind.PARSE, "books data is empty")
    item = mapping(data[0], "books item")
    bids = parse_levels(item.get("bids"), "bids")
    asks = parse_levels(item.get("asks"), "asks")
    best_bid = max(bids, default=None)
    best_ask = min(asks, default=None)
    exchange_ts = ns_from_ms(item["ts"]) if item.get("ts") else None
    return top_quote(SOURCE, symbol, best_bid, best_ask, receive_ts, exchange_ts=exchange_ts)


class OkxFeed(VenueStreamFeed):
    rest_top = "books"

    def __init__(
        self,
        symbols: Sequence[str],
        sink: Sink,
        http: httpx.AsyncClient,
        *,
        ws_url: str = WS_URL,
        rest_root: str = REST_ROOT,
        channels: Sequence[str] = ("books5", "tickers", "trades"),
        verify_checksum: bool = False,
        poll_interval: float = 1.0,
        stale_after: float = 60.0,
        ping_interval: float = 20.0,
        name: str = SOURCE,
        **options: Unpack[ExchangeOptions],
    ) -> None:
        super().__init__(
            name,
            SOURCE,
            symbols,
            sink,
            http,
            ws_url=ws_url,
            rest_root=rest_root,
            poll_interval=poll_interval,
            stale_after=stale_after,
            ping_interval=ping_interval,
            **options,
        )
        self.channels = check_channels(channels)
        self.book_channel = next((c for c in self.channels if c in BOOK_CHANNELS), None)
        self.verify_checksum = verify_checksum
        self.checksum_failures: dict[str, int] = {}
        """Consecutive checksum mismatches per instrument; at `MAX_CHECKSUM_FAILURES` its checks stop."""

    def subscribe_messages(self) -> list[str]:
        args = [
            {"channel": channel, "instId": symbol} for symbol in self.symbols for channel in self.channels
        ]
        return [orjson.dumps({"op": "subscribe", "args": args}).decode()]

    def resubscribe_messages(self, symbol: str) -> list[str]:
        arg = [{"channel": self.book_channel, "instId": symbol}]
        return [
            orjson.dumps({"op": "unsubscribe", "args": arg}).decode(),
            orjson.dumps({"op": "subscribe", "args": arg}).decode(),
        ]

    def ping_message(self) -> str:
        return "ping"

    def handle_message(self, raw: bytes) -> list[str]:
        """One frame; returns the symbols whose book must be resubscribed."""
        if raw == b"pong":
            self.note_ignored("pong")
            return []
        receive_ts = self.clock_ns()
        try:
            body = mapping(loads(raw), "message")
            event = body.get("event")
            if event is not None:
                self._on_event(body, str(event))
                return []
            arg = mapping(body.get("arg"), "arg")
            channel = arg.get("channel")
            data = sequence(body.get("data"), "data")
            if channel in BOOK_CHANNELS:
                self.note_message()
                return self._on_book(str(arg.get("instId")), body.get("action"), data, receive_ts)
            if channel == "tickers":
                self.note_message()
                for item in data:
                    self._on_ticker(parse_ticker(mapping(item, "ticker"), receive_ts))
            elif channel == "trades":
                self.note_message()
                for item in data:
                    trade = parse_trade(mapping(item, "trade"), receive_ts)
                    if trade.instrument in self.books:
                        self.emit(trade)
            else:
                self.note_ignored(str(channel))
        except FeedError as error:
            self.note_error(error)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.note_error(FeedError(ErrorKind.PARSE, f"{type(exc).__name__}: {exc}"))
        return []

    def _on_event(self, body: dict[str, Any], event: str) -> None:
        if event == "error":
            self.note_error(FeedError(ErrorKind.API_ERROR, f"okx {body.get('code')}: {body.get('msg', '')}"))
        elif event == "notice" and str(body.get("code")) == RECONNECT_NOTICE:
            self.note_ignored("notice")
            self.announce_reconnect(str(body.get("msg", "")))
        else:
            self.note_ignored(event)

    def _on_ticker(self, quote: Quote) -> None:
        book = self.books.get(quote.instrument)
        if book is None:
            return
        self.last[quote.instrument] = quote
        if self.book_channel is None or not book.synced:
            self.emit(quote)  # no live book: the ticker's top of book is the quote

    def _on_book(self, symbol: str, action: object, data: list[Any], receive_ts: int) -> list[str]:
        book = self.books.get(symbol)
        if book is None:
            return []
        for raw_item in data:
            item = mapping(raw_item, "book")
            bids = parse_levels(item.get("bids"), "bids")
            asks = parse_levels(item.get("asks"), "asks")
            seq = int(item["seqId"]) if item.get("seqId") is not None else None
            exchange_ts = ns_from_ms(item["ts"]) if item.get("ts") else None
            if action == "update":
                if not book.synced:
                    return []  # an update before the snapshot of a (re)subscription: wait for it
                prev = int(item["prevSeqId"]) if item.get("prevSeqId") is not None else None
                if prev is not None and book.seq is not None and prev != book.seq:
                    return self.need_resync(
                        symbol, "sequence_gap", f"prevSeqId {prev} after seqId {book.seq}"
                    )
                book.apply(bids, asks, seq, exchange_ts)
            else:  # "snapshot", or books5 / bbo-tbt (whole top of book each push)
                book.load(bids, asks, seq, exchange_ts)
            mismatch = self._checksum_mismatch(book, action, item.get("checksum"))
            if mismatch is not None:
                return self.need_resync(symbol, "checksum", mismatch)
            if action == "snapshot":
                self.emit(self.book_snapshot(book, receive_ts))
        self.emit(self.book_quote(book, receive_ts))
        return []

    def _checksum_mismatch(self, book: SequencedBook, action: object, expected: object) -> str | None:
        """What is wrong when checksums are verified and a `books` push's does not match the book."""
        if not self.verify_checksum or action is None or expected in (None, 0):
            return None
        failures = self.checksum_failures.get(book.symbol, 0)
        if failures >= MAX_CHECKSUM_FAILURES:
            return None  # a fresh snapshot failed as often: the check, not the book, is wrong
        actual = checksum(book)
        if actual == int(str(expected)):
            self.checksum_failures[book.symbol] = 0
            return None
        self.checksum_failures[book.symbol] = failures + 1
        if failures + 1 == MAX_CHECKSUM_FAILURES:
            log.error("okx_checksum_disabled", feed=self.name, instrument=book.symbol, failures=failures + 1)
        return f"checksum {expected} != {actual}"

    async def fetch_top(self, symbol: str) -> Quote:
        """REST `GET /api/v5/market/books?instId=…&sz=1` (only while the stream is down)."""
        payload = await get_json(
            self.http, f"{self.rest_root}/api/v5/market/books", params={"instId": symbol, "sz": "1"}
        )
        return parse_rest_books(payload, symbol, self.clock_ns())
