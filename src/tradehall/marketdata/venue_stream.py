"""The connection loop of the exchanges whose public WebSocket is subscribe-then-push with a local
book kept from a snapshot and deltas (OKX, Bybit): connect, subscribe, keep the connection alive
with the venue's own application ping, consume, resubscribe a book whose sequence broke (the venue
answers a subscription with a fresh snapshot), and poll REST while the stream is down.

A subclass gives the wire format: `subscribe_messages`, `resubscribe_messages`, `ping_message`,
`handle_message` (returns the symbols whose books must be resynced) and `fetch_top` (the REST
fallback, `rest_top` its endpoint's name).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from functools import partial
from typing import Unpack

import httpx
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from tradehall.marketdata import metrics
from tradehall.marketdata.book import SequencedBook
from tradehall.marketdata.feed import (
    ExchangeOptions,
    Feed,
    Sink,
    cancel_and_wait,
    poll_until,
    sleep_or_stop,
)
from tradehall.marketdata.models import BookSnapshot, Quote, top_quote
from tradehall.marketdata.parsing import ErrorKind, FeedError

log = structlog.get_logger(__name__)


class VenueStreamFeed(Feed):
    """Base of the OKX and Bybit feeds (see the module docstring)."""

    rest_top = ""

    def __init__(
        self,
        name: str,
        source: str,
        symbols: Sequence[str],
        sink: Sink,
        http: httpx.AsyncClient,
        *,
        ws_url: str,
        rest_root: str,
        poll_interval: float,
        stale_after: float,
        ping_interval: float,
        **options: Unpack[ExchangeOptions],
    ) -> None:
        super().__init__(name, sink, **options)
        if not symbols:
            raise ValueError(f"{source}: name at least one instrument")
        self.source = source
        self.sources = frozenset({source})
        self.symbols = list(symbols)
        self.http = http
        self.ws_url = ws_url
        self.rest_root = rest_root.rstrip("/")
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self.ping_interval = ping_interval
        self.books = {symbol: SequencedBook(symbol) for symbol in self.symbols}
        self.last: dict[str, Quote] = {}
        """Per symbol, the latest ticker-derived values (last price, 24 h volume) the book quotes carry."""
        self.resyncs = 0
        self.resyncs_by_reason: dict[str, int] = {}
        self.polls = 0
        self.pings_sent = 0
        self.reconnect_notices = 0
        self._stop = asyncio.Event()
        self._leave = asyncio.Event()

    # -- wire format (subclasses) ------------------------------------------------------------
    def subscribe_messages(self) -> list[str]:
        raise NotImplementedError

    def resubscribe_messages(self, symbol: str) -> list[str]:
        raise NotImplementedError

    def ping_message(self) -> str | None:
        """The venue's keepalive frame; None when the venue needs none (Coinbase: `heartbeats`)."""
        raise NotImplementedError

    def on_connect(self) -> None:
        """A new connection: per-connection state (Coinbase's `sequence_num`) starts again."""

    def handle_message(self, raw: bytes) -> list[str]:
        raise NotImplementedError

    async def fetch_top(self, symbol: str) -> Quote:
        """One symbol's top of book over REST (`rest_top` names the endpoint in a parse error)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    async def poll_once(self) -> list[Quote]:
        """Each symbol's top of book over REST (only while the stream is down), until the REST breaker
        opens."""
        quotes: list[Quote] = []
        for symbol in self.symbols:
            if not self.rest_breaker.allow():
                break
            fetch = partial(self.fetch_top, symbol)
            quote = await self.guarded_fetch(self.rest_breaker, self.rest_top, fetch)
            if quote is not None:
                self.emit(quote)
                quotes.append(quote)
        self.polls += 1
        return quotes

    def need_resync(self, symbol: str, reason: str, detail: str) -> list[str]:
        """Drop a book whose sequence (or checksum) broke; the loop resubscribes it for a snapshot."""
        book = self.books[symbol]
        book.reset()
        self.resyncs += 1
        self.resyncs_by_reason[reason] = self.resyncs_by_reason.get(reason, 0) + 1
        metrics.FEED_RESYNCS.labels(feed=self.name, reason=reason).inc()
        kind = ErrorKind.SEQUENCE_GAP if reason == "sequence_gap" else ErrorKind.PARSE
        self.note_error(FeedError(kind, f"{symbol}: {detail}"))
        return [symbol]

    def book_quote(self, book: SequencedBook, receive_ts: int) -> Quote:
        best_bid, best_ask = book.top_levels()
        ticker = self.last.get(book.symbol)
        return top_quote(
            self.source,
            book.symbol,
            best_bid,
            best_ask,
            receive_ts,
            last=ticker.last if ticker is not None else None,
            exchange_ts=book.exchange_ts,
            volume_24h=ticker.volume_24h if ticker is not None else None,
        )

    def book_snapshot(self, book: SequencedBook, receive_ts: int) -> BookSnapshot:
        return BookSnapshot(
            source=self.source,
            instrument=book.symbol,
            bids=book.bids.sorted_levels(),
            asks=book.asks.sorted_levels(),
            sequence=book.seq,
            exchange_ts=book.exchange_ts,
            receive_ts=receive_ts,
        )

    def announce_reconnect(self, detail: str) -> None:
        """The venue said it will close this connection soon: reconnect now, without REST polling."""
        self.reconnect_notices += 1
        log.info("feed_reconnect_notice", feed=self.name, detail=detail)
        self._leave.set()

    async def run(self) -> None:
        self._stop.clear()
        while not self._stop.is_set():
            if self.breaker.allow():
                self._leave.clear()
                try:
                    async with connect(self.ws_url, open_timeout=5, ping_interval=None) as ws:
                        self.set_connected(True, "stream")
                        self.on_connect()
                        for message in self.subscribe_messages():
                            await ws.send(message)
                        pinger = asyncio.create_task(self._keepalive(ws))
                        try:
                            await self._consume(ws)
                        finally:
                            await cancel_and_wait(pinger)
                except (OSError, TimeoutError, WebSocketException) as exc:
                    self.breaker.record_failure()
                    self.note_error(FeedError(ErrorKind.CONNECTION, f"{type(exc).__name__}: {exc}"))
                finally:
                    for book in self.books.values():
                        book.reset()
                if self._leave.is_set() and not self._stop.is_set():
                    continue
            self.set_connected(False, "polling")
            delay = self.backoff.next_delay(self.breaker.seconds_until_retry())
            await poll_until(self.clock, self.clock() + delay, self.poll_once, self.poll_interval, self._stop)

    async def stop(self) -> None:
        self._stop.set()
        await super().stop()

    async def _keepalive(self, ws: ClientConnection) -> None:
        """The venues' application-level ping (a text frame), which they require within 30 s."""
        ping = self.ping_message()
        while ping is not None:
            await sleep_or_stop(self.ping_interval, self._stop)
            if self._stop.is_set():
                return
            with contextlib.suppress(ConnectionClosed):
                await ws.send(ping)
                self.pings_sent += 1

    async def _consume(self, ws: ClientConnection) -> None:
        async def handle(raw: bytes) -> None:
            for symbol in self.handle_message(raw):
                for message in self.resubscribe_messages(symbol):
                    await ws.send(message)

        await self.consume_stream(
            ws, handle, stop=self._stop, stale_after=self.stale_after, backoff=self.backoff, leave=self._leave
        )
