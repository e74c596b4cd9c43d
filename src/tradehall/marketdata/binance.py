"""Binance spot public data: `trade`, `aggTrade`, `bookTicker`, `depth@100ms`, `kline_<interval>`
and `ticker` streams, with REST fallback.

Over 400 lines because the connection, its REST fallback and the depth book share one state (the
books are reset on every reconnect); the other stream parsers live in `binance_streams.py`.

Depth follows Binance's local-book recipe: buffer diffs, fetch a snapshot, refetch it while its
`lastUpdateId` is older than the first buffered `U`, drop diffs with `u` <= `lastUpdateId`, and treat
a diff whose `U` is beyond the local id + 1 as a gap that forces a rebuild. REST `bookTicker`
polling runs only while the stream is down, in the same task, so the two never overlap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Unpack

import httpx
import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from tradehall.marketdata import binance_streams
from tradehall.marketdata.book import LevelBook
from tradehall.marketdata.feed import ExchangeOptions, Feed, Sink, get_json, poll_until
from tradehall.marketdata.models import BookDelta, BookSide, BookSnapshot, Level, Quote, TradeTick, top_quote
from tradehall.marketdata.parsing import NS_PER_MS, ErrorKind, FeedError, dec, loads, mapping, ns_from_ms

log = structlog.get_logger(__name__)

SOURCE = "binance"
REST_ROOT = "https://api.binance.com"
WS_ROOT = "wss://stream.binance.com:9443"
MAX_BUFFERED_DIFFS = 10_000


class DepthUpdate(msgspec.Struct, frozen=True, gc=False):
    symbol: str
    first_id: int
    """`U`."""
    final_id: int
    """`u`."""
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    event_ts: int | None


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


def _levels(rows: Any, what: str) -> tuple[Level, ...]:
    """[[price, qty], …] of strings; the hot path of depth parsing, so `Decimal` is called directly."""
    if not isinstance(rows, list):
        raise FeedError(ErrorKind.PARSE, f"{what} is not an array")
    try:
        levels = tuple(
            [(Decimal(price), Decimal(qty)) for price, qty in rows if type(price) is str and type(qty) is str]
        )
    except (InvalidOperation, TypeError, ValueError):
        levels = ()
    if len(levels) != len(rows):
        # the general path: reads floats via `str`, and names a bad value in its error
        if any(not isinstance(row, list) or len(row) != 2 for row in rows):
            raise FeedError(ErrorKind.PARSE, f"{what} holds a level that is not [price, qty]")
        return tuple((dec(row[0], what), dec(row[1], what)) for row in rows)
    for price, qty in levels:
        if not (price.is_finite() and qty.is_finite()):
            raise FeedError(ErrorKind.PARSE, f"{what} holds a non-finite number")
    return levels


def unwrap(message: Any) -> dict[str, Any]:
    """The payload of a raw (`/ws/…`) or combined (`/stream?streams=…`) stream message."""
    body = mapping(message, "stream message")
    data = body.get("data")
    if "stream" in body and isinstance(data, dict):
        return data
    return body


def parse_trade(body: dict[str, Any], receive_ts: int) -> TradeTick:
    # `m` true means the buyer was the maker, so the aggressor sold.
    return TradeTick(
        source=SOURCE,
        instrument=str(body["s"]).lower(),
        price=dec(body["p"], "p"),
        size=dec(body["q"], "q"),
        side="sell" if body.get("m") else "buy",
        trade_id=str(body["t"]),
        exchange_ts=ns_from_ms(body["T"]) if "T" in body else None,
        receive_ts=receive_ts,
    )


def parse_book_ticker(body: dict[str, Any], receive_ts: int) -> Quote:
    """Stream form (`b`,`B`,`a`,`A`) or REST form (`bidPrice`, …); neither carries a timestamp."""
    if "bidPrice" in body:
        symbol = body["symbol"]
        bid, bid_size, ask, ask_size = body["bidPrice"], body["bidQty"], body["askPrice"], body["askQty"]
    else:
        symbol = body["s"]
        bid, bid_size, ask, ask_size = body["b"], body["B"], body["a"], body["A"]
    return Quote(
        source=SOURCE,
        instrument=str(symbol).lower(),
        bid=dec(bid, "bid"),
        ask=dec(ask, "ask"),
        bid_size=dec(bid_size, "bid size"),
        ask_size=dec(ask_size, "ask size"),
        exchange_ts=ns_from_ms(body["E"]) if "E" in body else None,
        receive_ts=receive_ts,
    )


def parse_depth_update(body: dict[str, Any]) -> DepthUpdate:
    return DepthUpdate(
        symbol=str(body["s"]).lower(),
        first_id=int(body["U"]),
        final_id=int(body["u"]),
        bids=_levels(body.get("b", []), "b"),
        asks=_levels(body.get("a", []), "a"),
        event_ts=ns_from_ms(body["E"]) if "E" in body else None,
    )


class _WireDepth(msgspec.Struct):
    s: str
    U: int
    u: int
    b: tuple[Level, ...]
    a: tuple[Level, ...]
    E: int | None = None


class _WireCombinedDepth(msgspec.Struct):
    data: _WireDepth


_decode_combined_depth = msgspec.json.Decoder(_WireCombinedDepth).decode
_decode_raw_depth = msgspec.json.Decoder(_WireDepth).decode


def decode_depth(raw: bytes) -> DepthUpdate | None:
    """The fast path for `depthUpdate` messages: typed decoding, Decimals built from the JSON text
    in C. None when the message is not a well-formed depth update (the general path then reports
    exactly what is wrong with it)."""
    try:
        wire = _decode_combined_depth(raw).data if raw.startswith(b'{"stream"') else _decode_raw_depth(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    for price, qty in wire.b + wire.a:
        if not (price.is_finite() and qty.is_finite()):
            return None
    return DepthUpdate(
        wire.s.lower(),
        wire.U,
        wire.u,
        wire.b,
        wire.a,
        wire.E * NS_PER_MS if wire.E is not None else None,
    )


def parse_depth_snapshot(payload: Any) -> DepthSnapshot:
    body = mapping(payload, "depth body")
    if "code" in body and "lastUpdateId" not in body:
        raise FeedError(ErrorKind.API_ERROR, f"{body.get('code')}: {body.get('msg')}")
    return DepthSnapshot(
        last_update_id=int(body["lastUpdateId"]),
        bids=_levels(body["bids"], "bids"),
        asks=_levels(body["asks"], "asks"),
    )


def parse_klines(payload: Any) -> list[tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]]:
    """(open time ns, open, high, low, close, volume)."""
    if not isinstance(payload, list):
        raise FeedError(ErrorKind.PARSE, "klines body is not an array")
    return [
        (ns_from_ms(row[0]), dec(row[1]), dec(row[2]), dec(row[3]), dec(row[4]), dec(row[5]))
        for row in payload
    ]


def check_rest_error(payload: Any) -> None:
    if isinstance(payload, dict) and "code" in payload and "msg" in payload:
        raise FeedError(ErrorKind.API_ERROR, f"{payload['code']}: {payload['msg']}")


class SyncResult(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"
    BUFFERED = "buffered"
    NEED_SNAPSHOT = "need_snapshot"
    REFETCH = "refetch"
    GAP = "gap"
    SYNCED = "synced"


class DepthBook:
    """The local order book of one symbol, kept in sync by Binance's snapshot + diff rules."""

    __slots__ = ("asks", "bids", "buffer", "last_update_id", "snapshot_requested", "symbol", "synced")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = LevelBook(highest_first=True)
        self.asks = LevelBook(highest_first=False)
        self.buffer: list[DepthUpdate] = []
        self.last_update_id = 0
        self.synced = False
        self.snapshot_requested = False

    def on_diff(self, update: DepthUpdate) -> SyncResult:
        if not self.synced:
            if len(self.buffer) >= MAX_BUFFERED_DIFFS:
                del self.buffer[0]  # the snapshot must then be newer; bounded memory while REST is down
            self.buffer.append(update)
            if not self.snapshot_requested:
                self.snapshot_requested = True
                return SyncResult.NEED_SNAPSHOT
            return SyncResult.BUFFERED
        if update.final_id <= self.last_update_id:
            return SyncResult.IGNORED
        if update.first_id > self.last_update_id + 1:
            self.reset()
            self.buffer.append(update)
            self.snapshot_requested = True
            return SyncResult.GAP
        self._apply(update)
        return SyncResult.APPLIED

    def on_snapshot(self, snapshot: DepthSnapshot) -> SyncResult:
        """SYNCED, REFETCH (snapshot older than the buffer) or GAP (buffered diffs do not join up)."""
        if self.buffer and snapshot.last_update_id < self.buffer[0].first_id:
            return SyncResult.REFETCH
        self.bids.clear()
        self.asks.clear()
        for price, size in snapshot.bids:
            self.bids.set(price, size)
        for price, size in snapshot.asks:
            self.asks.set(price, size)
        self.last_update_id = snapshot.last_update_id
        pending, self.buffer = self.buffer, []
        self.synced = True
        self.snapshot_requested = False
        for update in pending:
            if update.final_id <= self.last_update_id:
                continue
            if update.first_id > self.last_update_id + 1:
                self.reset()
                self.buffer.append(update)
                self.snapshot_requested = True
                return SyncResult.GAP
            self._apply(update)
        return SyncResult.SYNCED

    def _apply(self, update: DepthUpdate) -> None:
        self.bids.set_levels(update.bids)
        self.asks.set_levels(update.asks)
        self.last_update_id = update.final_id

    def reset(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.buffer = []
        self.synced = False

    def top(self, receive_ts: int, exchange_ts: int | None = None) -> Quote:
        best_bid = self.bids.best()
        best_ask = self.asks.best()
        return top_quote(SOURCE, self.symbol, best_bid, best_ask, receive_ts, exchange_ts=exchange_ts)

    def snapshot(self, receive_ts: int) -> BookSnapshot:
        return BookSnapshot(
            source=SOURCE,
            instrument=self.symbol,
            bids=self.bids.sorted_levels(),
            asks=self.asks.sorted_levels(),
            sequence=self.last_update_id,
            receive_ts=receive_ts,
        )


class BinanceFeed(Feed):
    def __init__(
        self,
        symbols: Sequence[str],
        sink: Sink,
        http: httpx.AsyncClient,
        *,
        ws_root: str = WS_ROOT,
        rest_root: str = REST_ROOT,
        streams: Sequence[str] = ("trade", "bookTicker", "depth@100ms"),
        depth_limit: int = 1000,
        poll_interval: float = 1.0,
        stale_after: float = 30.0,
        emit_deltas: bool = False,
        refetch_delay: float = 0.25,
        name: str = SOURCE,
        **options: Unpack[ExchangeOptions],
    ) -> None:
        super().__init__(name, sink, **options)
        self.sources = frozenset({SOURCE})
        self.symbols = [symbol.lower() for symbol in symbols]
        self.http = http
        self.ws_root = ws_root.rstrip("/")
        self.rest_root = rest_root.rstrip("/")
        self.streams = binance_streams.check_streams(streams)
        self.depth_limit = depth_limit
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self.emit_deltas = emit_deltas
        self.books = {symbol: DepthBook(symbol) for symbol in self.symbols}
        self.resyncs = 0
        self.refetches = 0
        self.refetch_delay = refetch_delay
        self.polls = 0
        self._quotes_from_depth = "bookTicker" not in self.streams
        book_streams = {"bookTicker", "depth", "depth@100ms", "depth@1000ms"}
        self._quotes_from_ticker = not book_streams & set(self.streams)
        """A 24 h ticker's top of book is up to a second old: it is the quote only without a book stream."""
        self.server_shutdowns = 0
        self._stop = asyncio.Event()
        self._leave = asyncio.Event()
        self._snapshot_tasks: set[asyncio.Task[None]] = set()

    @property
    def stream_url(self) -> str:
        names = [f"{symbol}@{stream}" for symbol in self.symbols for stream in self.streams]
        return f"{self.ws_root}/stream?streams={'/'.join(names)}"

    async def run(self) -> None:
        self._stop.clear()
        while not self._stop.is_set():
            if self.breaker.allow():
                self._leave.clear()
                try:
                    async with connect(self.stream_url, open_timeout=5, ping_interval=20) as ws:
                        self.set_connected(True, "stream")
                        await self._consume(ws)
                except (OSError, TimeoutError, WebSocketException) as exc:
                    self.breaker.record_failure()
                    self.note_error(FeedError(ErrorKind.CONNECTION, f"{type(exc).__name__}: {exc}"))
                finally:
                    self._cancel_snapshots()
                    for book in self.books.values():
                        book.reset()
                        book.snapshot_requested = False
                if self._leave.is_set() and not self._stop.is_set():
                    continue  # the server announced its shutdown: reconnect now, before it closes
            self.set_connected(False, "polling")
            await poll_until(
                self.clock,
                self.clock() + self.backoff.next_delay(self.breaker.seconds_until_retry()),
                self.poll_once,
                self.poll_interval,
                self._stop,
            )

    async def stop(self) -> None:
        self._stop.set()
        self._cancel_snapshots()
        await super().stop()

    async def _consume(self, ws: ClientConnection) -> None:
        await self.consume_stream(
            ws,
            self.handle_message,
            stop=self._stop,
            stale_after=self.stale_after,
            backoff=self.backoff,
            leave=self._leave,
        )

    def handle_message(self, raw: bytes) -> None:
        """One stream message; a bad one is counted and skipped. Only messages that carry data count
        as messages (health); acks and unused types are counted by type as ignored."""
        receive_ts = self.clock_ns()
        if b'"depthUpdate"' in raw:
            update = decode_depth(raw)
            if update is not None:
                self.note_message()
                self._on_depth(update, receive_ts)
                return
        try:
            body = unwrap(loads(raw))
            event_type = body.get("e")
            if event_type == "depthUpdate":
                self.note_message()
                self._on_depth(parse_depth_update(body), receive_ts)
            elif event_type == "trade":
                self.note_message()
                self.emit(parse_trade(body, receive_ts))
            elif event_type == "aggTrade":
                self.note_message()
                self.emit(binance_streams.parse_agg_trade(body, receive_ts))
            elif event_type == "kline":
                self.note_message()
                self.emit(binance_streams.parse_kline(body, receive_ts))
            elif event_type == "24hrTicker":
                if self._quotes_from_ticker:
                    quote = binance_streams.parse_ticker_24h(body, receive_ts)
                    self.note_message()
                    self.emit(quote)
                else:
                    self.note_ignored("24hrTicker")
            elif event_type in (None, "bookTicker") and "b" in body and "a" in body and "s" in body:
                # spot sends no `e`; the futures streams send `"e": "bookTicker"`
                self.note_message()
                self.emit(parse_book_ticker(body, receive_ts))
            elif binance_streams.is_server_shutdown(body):
                self.server_shutdowns += 1
                self.note_ignored("serverShutdown")
                log.info("binance_server_shutdown", feed=self.name)
                self._leave.set()
            elif binance_streams.is_ack(body):
                self.note_ignored("ack")
            elif (error := binance_streams.error_frame(body)) is not None:
                self.note_error(error)
            else:
                self.note_ignored(str(event_type) if event_type is not None else "unknown")
        except FeedError as error:
            self.note_error(error)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.note_error(FeedError(ErrorKind.PARSE, f"{type(exc).__name__}: {exc}"))

    def _on_depth(self, update: DepthUpdate, receive_ts: int) -> None:
        book = self.books.get(update.symbol)
        if book is None:
            return
        result = book.on_diff(update)
        if result is SyncResult.APPLIED:
            if self.emit_deltas:
                for price, size in update.bids:
                    self.emit(
                        BookDelta(
                            SOURCE,
                            book.symbol,
                            BookSide.BID,
                            price,
                            size,
                            update.final_id,
                            update.event_ts,
                            receive_ts,
                        )
                    )
                for price, size in update.asks:
                    self.emit(
                        BookDelta(
                            SOURCE,
                            book.symbol,
                            BookSide.ASK,
                            price,
                            size,
                            update.final_id,
                            update.event_ts,
                            receive_ts,
                        )
                    )
            if self._quotes_from_depth:
                self.emit(book.top(receive_ts, update.event_ts))
        elif result in (SyncResult.NEED_SNAPSHOT, SyncResult.GAP):
            if result is SyncResult.GAP:
                self.resyncs += 1
                self.note_error(FeedError(ErrorKind.SEQUENCE_GAP, f"{book.symbol} depth gap"))
            task = asyncio.create_task(self._sync(book))
            self._snapshot_tasks.add(task)
            task.add_done_callback(self._snapshot_tasks.discard)

    async def _sync(self, book: DepthBook, attempts: int = 5) -> None:
        for _ in range(attempts):
            await asyncio.sleep(0)  # let the diffs that are already queued reach the buffer first
            try:
                snapshot = await self.fetch_depth(book.symbol)
            except FeedError as error:
                self.note_error(error)
                await asyncio.sleep(self.backoff.base)
                continue
            result = book.on_snapshot(snapshot)
            if result is SyncResult.SYNCED:
                self.emit(book.snapshot(self.clock_ns()))
                if self._quotes_from_depth:
                    self.emit(book.top(self.clock_ns()))
                return
            if result is SyncResult.GAP:
                self.resyncs += 1
                self.note_error(FeedError(ErrorKind.SEQUENCE_GAP, f"{book.symbol} depth gap after snapshot"))
            elif result is SyncResult.REFETCH:
                self.refetches += 1
                await asyncio.sleep(self.refetch_delay)  # the REST snapshot lags the stream: give it time
        book.snapshot_requested = False

    async def fetch_klines(
        self, symbol: str, interval: str = "1m", limit: int = 500
    ) -> list[tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]]:
        """Candle history (open time ns, O, H, L, C, volume) for backfilling."""
        payload = await get_json(
            self.http,
            f"{self.rest_root}/api/v3/klines",
            params={"symbol": symbol.upper(), "interval": interval, "limit": str(limit)},
        )
        check_rest_error(payload)
        return parse_klines(payload)

    async def fetch_ticker_24h(self, symbol: str) -> Quote:
        """REST `ticker/24hr`: last price, top of book and the 24 h base volume."""
        payload = await get_json(
            self.http, f"{self.rest_root}/api/v3/ticker/24hr", params={"symbol": symbol.upper()}
        )
        check_rest_error(payload)
        return binance_streams.parse_ticker_24h(mapping(payload, "ticker/24hr"), self.clock_ns())

    async def fetch_depth(self, symbol: str) -> DepthSnapshot:
        payload = await get_json(
            self.http,
            f"{self.rest_root}/api/v3/depth",
            params={"symbol": symbol.upper(), "limit": str(self.depth_limit)},
        )
        return parse_depth_snapshot(payload)

    async def poll_once(self) -> list[Quote]:
        """REST `bookTicker` for every symbol (only called while the stream is down)."""
        quotes = []
        for symbol in self.symbols:
            if not self.rest_breaker.allow():
                break

            async def fetch(symbol: str = symbol) -> Quote:
                payload = await get_json(
                    self.http, f"{self.rest_root}/api/v3/ticker/bookTicker", params={"symbol": symbol.upper()}
                )
                check_rest_error(payload)
                return parse_book_ticker(mapping(payload, "bookTicker"), self.clock_ns())

            quote = await self.guarded_fetch(self.rest_breaker, "bookTicker", fetch)
            if quote is None:
                continue
            self.emit(quote)
            quotes.append(quote)
        self.polls += 1
        return quotes

    def _cancel_snapshots(self) -> None:
        for task in list(self._snapshot_tasks):
            task.cancel()
        self._snapshot_tasks.clear()
