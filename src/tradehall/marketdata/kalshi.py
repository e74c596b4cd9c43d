"""Kalshi prediction markets: WebSocket order book (bids only) with REST fallback, and status polling.

Kalshi publishes bids only: YES bids and NO bids, ascending, best last. A YES ask is 1 - the best NO
bid (buying YES at p is selling NO at 1 - p). Prices come as cents (legacy integers) or dollars
(`*_dollars` strings); both are accepted. `seq` is contiguous per subscription id; a gap means the
local book is wrong, so the feed resubscribes for a fresh snapshot. REST polling runs only while the
WebSocket is down, in the same task, so ticks are never duplicated.

Channels: `orderbook_delta` (the book), `ticker` and `ticker_v2` (best YES bid/ask and last price;
they make the quote of a market whose book has no snapshot, else only its `last`; `ticker_v2` sends
only the fields that changed, merged here), and `trade` (a `TradeTick`; its `ts` is in seconds). A
gap resubscribes the order book alone: the ticker and trade subscriptions are left as they are.
Module over 400 lines: one provider's parsers, book and feed belong together.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Unpack

import httpx
import orjson
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from tradehall.marketdata import metrics
from tradehall.marketdata.book import LevelBook
from tradehall.marketdata.feed import (
    ExchangeOptions,
    Feed,
    Sink,
    cancel_and_wait,
    get_json,
    poll_until,
    sleep_or_stop,
)
from tradehall.marketdata.models import Level, MarketState, MarketStatusUpdate, Quote, TradeTick
from tradehall.marketdata.parsing import (
    ErrorKind,
    FeedError,
    dec,
    dollars_from_cents,
    loads,
    mapping,
    ns_from_iso,
    ns_from_ms,
    ns_from_seconds,
)

log = structlog.get_logger(__name__)

SOURCE = "kalshi"
REST_ROOT = "https://external-api.kalshi.com/trade-api/v2"
WS_URL = "wss://external-api-ws.kalshi.com/trade-api/ws/v2"
"""Kalshi's recommended hosts for API traders (the shared `api.elections.kalshi.com` still works);
defaults of `[endpoints]` in the market-data configuration, which is where they are changed."""
BOOK_CHANNELS = ("orderbook_delta",)
MARKET_CHANNELS = ("orderbook_delta", "ticker", "trade")
DATA_TYPES = frozenset({"orderbook_snapshot", "orderbook_delta", "ticker", "ticker_v2", "trade"})
"""Message types that carry market data (health); acks and other types are counted as ignored."""
ONE = Decimal(1)
SECONDS_LIMIT = 100_000_000_000
"""An integer `ts` above this is milliseconds (as seconds it would be after the year 5000)."""


def exchange_ts_of(msg: Mapping[str, Any]) -> int | None:
    """`ts_ms` (milliseconds), else `ts`: ISO text, or an integer in seconds (milliseconds when huge)."""
    if msg.get("ts_ms") not in (None, ""):
        return ns_from_ms(msg["ts_ms"])
    stamp = msg.get("ts")
    if isinstance(stamp, str) and stamp:
        return ns_from_iso(stamp)
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        return ns_from_ms(stamp) if stamp > SECONDS_LIMIT else ns_from_seconds(stamp)
    created = msg.get("created_time")
    return ns_from_iso(created) if isinstance(created, str) and created else None


def parse_trade(msg: Mapping[str, Any], receive_ts: int) -> TradeTick:
    """A `trade` message: YES price (dollars or cents), size (`count_fp` or `count`), taker side
    ("yes" → a buy of YES, "no" → a sell of YES), `ts` in seconds."""
    price = price_of(msg, "yes_price")
    if price is None:
        price = price_of(msg, "price")
    if price is None:
        raise FeedError(ErrorKind.PARSE, "trade without a price")
    size = msg.get("count_fp") if msg.get("count_fp") not in (None, "") else msg["count"]
    taker = str(msg.get("taker_side", "")).lower()
    return TradeTick(
        source=SOURCE,
        instrument=str(msg.get("market_ticker") or msg["ticker"]),
        price=price,
        size=dec(size, "count"),
        side={"yes": "buy", "no": "sell"}.get(taker),
        trade_id=str(msg["trade_id"]) if msg.get("trade_id") else None,
        exchange_ts=exchange_ts_of(msg),
        receive_ts=receive_ts,
    )


def price_of(body: Mapping[str, Any], name: str) -> Decimal | None:
    """`<name>_dollars` (string dollars) when present, else `<name>` in cents; None when absent."""
    dollars = body.get(f"{name}_dollars")
    if dollars not in (None, ""):
        return dec(dollars, f"{name}_dollars")
    cents = body.get(name)
    if cents is None or cents == "":
        return None
    return dollars_from_cents(cents, name)


@dataclass(frozen=True, slots=True)
class KalshiMarket:
    ticker: str
    status: str
    result: str
    yes_bid: Decimal | None
    yes_ask: Decimal | None
    no_bid: Decimal | None
    no_ask: Decimal | None
    last_price: Decimal | None
    settlement_value: Decimal | None
    close_ts: int | None


def parse_market(payload: Any) -> KalshiMarket:
    body = mapping(payload, "market body")
    market = mapping(body.get("market", body), "market")
    settlement = market.get("settlement_value_dollars")
    close_time = market.get("close_time")
    return KalshiMarket(
        ticker=str(market["ticker"]),
        status=str(market.get("status", "")),
        result=str(market.get("result") or ""),
        yes_bid=price_of(market, "yes_bid"),
        yes_ask=price_of(market, "yes_ask"),
        no_bid=price_of(market, "no_bid"),
        no_ask=price_of(market, "no_ask"),
        last_price=price_of(market, "last_price"),
        settlement_value=dec(settlement) if settlement not in (None, "") else None,
        close_ts=ns_from_iso(close_time) if isinstance(close_time, str) and close_time else None,
    )


def market_state(market: KalshiMarket) -> MarketState:
    """Settled with a result → SETTLED_YES/NO; `void` → VOID; closed/determined-without-result → CLOSED."""
    result = market.result.lower()
    if market.status in ("settled", "determined", "finalized") or result:
        if result == "yes":
            return MarketState.SETTLED_YES
        if result == "no":
            return MarketState.SETTLED_NO
        if result == "void":
            return MarketState.VOID
        return MarketState.CLOSED
    if market.status in ("active", "open"):
        return MarketState.OPEN
    return MarketState.CLOSED


def _rows(rows: Any, cents: bool, what: str) -> list[Level]:
    if rows is None:
        return []  # a side with no bids is absent
    if not isinstance(rows, list):
        raise FeedError(ErrorKind.PARSE, f"{what} is not an array")
    if cents:
        return [(dollars_from_cents(row[0], what), dec(row[1], what)) for row in rows]
    return [(dec(row[0], what), dec(row[1], what)) for row in rows]


def parse_book_sides(body: Mapping[str, Any]) -> tuple[list[Level], list[Level]]:
    """(YES bids, NO bids) from any of Kalshi's spellings: `*_dollars_fp`, `*_dollars`, cents."""
    for yes_key, no_key, cents in (
        ("yes_dollars_fp", "no_dollars_fp", False),
        ("yes_dollars", "no_dollars", False),
        ("yes", "no", True),
    ):
        if yes_key in body or no_key in body:
            return _rows(body.get(yes_key), cents, yes_key), _rows(body.get(no_key), cents, no_key)
    return [], []


def parse_orderbook(payload: Any) -> tuple[list[Level], list[Level]]:
    """REST `GET /markets/{ticker}/orderbook`: `orderbook_fp` (dollars) or legacy `orderbook` (cents)."""
    body = mapping(payload, "orderbook body")
    book = body.get("orderbook_fp") or body.get("orderbook")
    if book is None:
        return [], []
    return parse_book_sides(mapping(book, "orderbook"))


class DeltaResult(StrEnum):
    APPLIED = "applied"
    GAP = "gap"
    UNKNOWN_SID = "unknown_sid"


class KalshiBook:
    """YES bids and NO bids of one market; quotes in YES terms."""

    __slots__ = ("last", "no", "seq", "sid", "ticker", "ticker_ask", "ticker_bid", "yes")

    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self.yes = LevelBook(highest_first=True)
        self.no = LevelBook(highest_first=True)
        self.sid: int | None = None
        self.seq: int | None = None
        self.last: Decimal | None = None
        self.ticker_bid: Decimal | None = None
        self.ticker_ask: Decimal | None = None
        """Best YES bid/ask as the ticker channels last said (kept across partial `ticker_v2`)."""

    def load(
        self, yes: Sequence[Level], no: Sequence[Level], sid: int | None = None, seq: int | None = None
    ) -> None:
        self.yes.clear()
        self.no.clear()
        for price, size in yes:
            self.yes.set(price, size)
        for price, size in no:
            self.no.set(price, size)
        self.sid = sid
        self.seq = seq

    def apply_delta(self, side: str, price: Decimal, change: Decimal, seq: int | None) -> DeltaResult:
        if seq is not None and self.seq is not None and seq != self.seq + 1:
            return DeltaResult.GAP
        (self.yes if side == "yes" else self.no).add(price, change)
        if seq is not None:
            self.seq = seq
        return DeltaResult.APPLIED

    def top(self, receive_ts: int, exchange_ts: int | None = None) -> Quote:
        yes_bid = self.yes.best()
        no_bid = self.no.best()
        return Quote(
            source=SOURCE,
            instrument=self.ticker,
            bid=yes_bid[0] if yes_bid else None,
            bid_size=yes_bid[1] if yes_bid else None,
            ask=ONE - no_bid[0] if no_bid else None,
            ask_size=no_bid[1] if no_bid else None,
            last=self.last,
            exchange_ts=exchange_ts,
            receive_ts=receive_ts,
        )


def parse_delta(msg: Mapping[str, Any]) -> tuple[str, str, Decimal, Decimal, int | None]:
    """(ticker, side, price in dollars, signed size change, exchange ts ns)."""
    if "price_dollars" in msg:
        price = dec(msg["price_dollars"], "price_dollars")
    else:
        price = dollars_from_cents(msg["price"], "price")
    change = dec(msg["delta_fp"] if "delta_fp" in msg else msg["delta"], "delta")
    side = str(msg["side"]).lower()
    if side not in ("yes", "no"):
        raise FeedError(ErrorKind.PARSE, f"unknown side {side!r}")
    if "ts_ms" in msg:
        exchange_ts: int | None = ns_from_ms(msg["ts_ms"])
    elif isinstance(msg.get("ts"), str):
        exchange_ts = ns_from_iso(msg["ts"])
    else:
        exchange_ts = None
    return str(msg["market_ticker"]), side, price, change, exchange_ts


AuthHeaders = Callable[[], Mapping[str, str]]
"""Returns `KALSHI-ACCESS-KEY`, `-TIMESTAMP`, `-SIGNATURE` for the handshake; called at every connect
(a fresh timestamp). `kalshi_auth.KalshiSigner` is one; Kalshi refuses unsigned handshakes."""


class KalshiFeed(Feed):
    def __init__(
        self,
        tickers: Sequence[str],
        sink: Sink,
        http: httpx.AsyncClient,
        *,
        ws_url: str = WS_URL,
        rest_root: str = REST_ROOT,
        auth_headers: AuthHeaders | None = None,
        poll_interval: float = 2.0,
        status_interval: float = 10.0,
        stale_after: float = 60.0,
        name: str = SOURCE,
        **options: Unpack[ExchangeOptions],
    ) -> None:
        super().__init__(name, sink, **options)
        self.tickers = list(tickers)
        self.http = http
        self.ws_url = ws_url
        self.rest_root = rest_root.rstrip("/")
        self.auth_headers = auth_headers
        self.poll_interval = poll_interval
        self.status_interval = status_interval
        self.stale_after = stale_after
        self.books = {ticker: KalshiBook(ticker) for ticker in self.tickers}
        self.states: dict[str, MarketState] = {}
        self.resubscribes = 0
        self.polls = 0
        self._by_sid: dict[int, str] = {}
        self._ids = itertools.count(1)
        self._stop = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._status_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        self._stop.clear()
        self._status_task = asyncio.create_task(self._status_loop())
        try:
            while not self._stop.is_set():
                if self.breaker.allow():
                    try:
                        headers = dict(self.auth_headers()) if self.auth_headers else None
                        async with connect(self.ws_url, open_timeout=5, additional_headers=headers) as ws:
                            self._ws = ws
                            self.set_connected(True, "stream")
                            for ticker in self.tickers:
                                await self._subscribe(ws, ticker)
                            await self._consume(ws)
                    except (OSError, TimeoutError, WebSocketException) as exc:
                        self.breaker.record_failure()
                        self.note_error(FeedError(ErrorKind.CONNECTION, f"{type(exc).__name__}: {exc}"))
                    finally:
                        self._ws = None
                        self._by_sid.clear()
                self.set_connected(False, "polling")
                delay = self.backoff.next_delay(self.breaker.seconds_until_retry())
                await poll_until(
                    self.clock, self.clock() + delay, self.poll_once, self.poll_interval, self._stop
                )
        finally:
            if self._status_task is not None:
                await cancel_and_wait(self._status_task)

    async def stop(self) -> None:
        self._stop.set()
        await super().stop()

    async def _subscribe(
        self, ws: ClientConnection, ticker: str, channels: Sequence[str] = MARKET_CHANNELS
    ) -> None:
        message = {
            "id": next(self._ids),
            "cmd": "subscribe",
            "params": {"channels": list(channels), "market_ticker": ticker},
        }
        await ws.send(orjson.dumps(message).decode())

    async def _resubscribe(self, ws: ClientConnection, ticker: str, sid: int | None) -> None:
        self.resubscribes += 1
        metrics.FEED_RESYNCS.labels(feed=self.name, reason="sequence_gap").inc()
        if sid is not None:
            self._by_sid.pop(sid, None)
            unsubscribe = {"id": next(self._ids), "cmd": "unsubscribe", "params": {"sids": [sid]}}
            await ws.send(orjson.dumps(unsubscribe).decode())
        self.books[ticker].sid = None
        self.books[ticker].seq = None
        # Exactly what was unsubscribed: the order book's subscription (ticker and trade stay).
        await self._subscribe(ws, ticker, BOOK_CHANNELS)

    async def _consume(self, ws: ClientConnection) -> None:
        async def handle(raw: bytes) -> None:
            gap = self.handle_message(raw)
            if gap is not None:
                await self._resubscribe(ws, *gap)

        await self.consume_stream(
            ws, handle, stop=self._stop, stale_after=self.stale_after, backoff=self.backoff
        )

    def handle_message(self, raw: bytes) -> tuple[str, int | None] | None:
        """Apply one WebSocket message; returns (ticker, sid) when that book must be resubscribed."""
        receive_ts = self.clock_ns()
        try:
            body = mapping(loads(raw), "message")
            kind = body.get("type")
            if kind in DATA_TYPES:
                self.note_message()
            if kind == "orderbook_delta":
                return self._on_delta(body, receive_ts)
            if kind == "orderbook_snapshot":
                self._on_snapshot(body, receive_ts)
            elif kind in ("ticker", "ticker_v2"):
                self._on_ticker(mapping(body.get("msg"), "ticker msg"), receive_ts)
            elif kind == "trade":
                trade = parse_trade(mapping(body.get("msg"), "trade msg"), receive_ts)
                book = self.books.get(trade.instrument)
                if book is not None:
                    book.last = trade.price
                    self.emit(trade)
            elif kind in ("subscribed", "unsubscribed", "ok"):
                ack = body.get("msg")
                msg: dict[str, Any] = ack if isinstance(ack, dict) else {}
                sid = msg.get("sid", body.get("sid"))
                log.debug("kalshi_ack", type=kind, channel=msg.get("channel"), sid=sid)
                self.note_ignored(str(kind))
            elif kind == "error":
                msg = body.get("msg") or {}
                self.note_error(FeedError(ErrorKind.API_ERROR, f"{msg.get('code')}: {msg.get('msg')}"))
            elif kind not in DATA_TYPES:
                self.note_ignored(str(kind))
        except FeedError as error:
            self.note_error(error)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.note_error(FeedError(ErrorKind.PARSE, f"{type(exc).__name__}: {exc}"))
        return None

    def _on_ticker(self, msg: Mapping[str, Any], receive_ts: int) -> None:
        """Merge the fields present; a market without a book snapshot gets its quote from here."""
        book = self.books.get(str(msg.get("market_ticker")))
        if book is None:
            return
        last = price_of(msg, "price")
        bid = price_of(msg, "yes_bid")
        ask = price_of(msg, "yes_ask")
        if last is not None:
            book.last = last
        if bid is not None:
            book.ticker_bid = bid if bid > 0 else None
        if ask is not None:
            book.ticker_ask = ask if ask < ONE else None
        if book.sid is not None or (last is None and bid is None and ask is None):
            return  # the live book makes the quotes; its next one carries this `last`
        self.emit(
            Quote(
                source=SOURCE,
                instrument=book.ticker,
                bid=book.ticker_bid,
                ask=book.ticker_ask,
                last=book.last,
                exchange_ts=exchange_ts_of(msg),
                receive_ts=receive_ts,
            )
        )

    def _on_snapshot(self, body: Mapping[str, Any], receive_ts: int) -> None:
        msg = mapping(body.get("msg"), "snapshot msg")
        ticker = str(msg["market_ticker"])
        book = self.books.get(ticker)
        if book is None:
            return
        yes, no = parse_book_sides(msg)
        sid = int(body["sid"]) if "sid" in body else None
        book.load(yes, no, sid, int(body["seq"]) if "seq" in body else None)
        if sid is not None:
            self._by_sid[sid] = ticker
        self.emit(book.top(receive_ts))

    def _on_delta(self, body: Mapping[str, Any], receive_ts: int) -> tuple[str, int | None] | None:
        msg = mapping(body.get("msg"), "delta msg")
        ticker, side, price, change, exchange_ts = parse_delta(msg)
        book = self.books.get(ticker)
        if book is None:
            return None
        sid = int(body["sid"]) if "sid" in body else None
        seq = int(body["seq"]) if "seq" in body else None
        if book.sid is None or (sid is not None and sid != book.sid):
            return None  # no snapshot yet, or a late message of a subscription we already replaced
        if book.apply_delta(side, price, change, seq) is DeltaResult.GAP:
            self.note_error(FeedError(ErrorKind.SEQUENCE_GAP, f"{ticker} seq {seq} after {book.seq}"))
            return ticker, book.sid
        self.emit(book.top(receive_ts, exchange_ts))
        return None

    async def poll_once(self) -> list[Quote]:
        """REST order books (only while the WebSocket is down)."""
        quotes = []
        for ticker in self.tickers:
            if not self.rest_breaker.allow():
                break

            async def fetch(ticker: str = ticker) -> tuple[Any, Any]:
                payload = await get_json(self.http, f"{self.rest_root}/markets/{ticker}/orderbook")
                return parse_orderbook(payload)

            sides = await self.guarded_fetch(self.rest_breaker, "orderbook", fetch)
            if sides is None:
                continue
            yes, no = sides
            book = self.books[ticker]
            book.load(yes, no)
            quote = book.top(self.clock_ns())
            self.emit(quote)
            quotes.append(quote)
        self.polls += 1
        return quotes

    async def poll_status_once(self) -> list[MarketStatusUpdate]:
        """`GET /markets/{ticker}` for each market; emits a status update only when the state changes."""
        updates = []
        for ticker in self.tickers:
            try:
                market = parse_market(await get_json(self.http, f"{self.rest_root}/markets/{ticker}"))
            except FeedError as error:
                self.note_error(error)
                continue
            except (KeyError, TypeError) as exc:
                self.note_error(FeedError(ErrorKind.PARSE, f"market: {exc}"))
                continue
            state = market_state(market)
            if self.states.get(ticker) is state:
                continue
            self.states[ticker] = state
            update = MarketStatusUpdate(
                source=SOURCE,
                instrument=ticker,
                state=state,
                detail=f"status={market.status} result={market.result}",
                receive_ts=self.clock_ns(),
            )
            self.emit(update)
            updates.append(update)
        return updates

    async def _status_loop(self) -> None:
        while not self._stop.is_set():
            await self.poll_status_once()
            await sleep_or_stop(self.status_interval, self._stop)
