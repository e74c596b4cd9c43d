"""Polymarket: CLOB market channel (book, price_change, last_trade_price, tick_size_change,
best_bid_ask, new_market, market_resolved), CLOB REST books only while the channel is down, and Gamma
status polling for resolution and cancellation.

A `price_change` is a delta: for a token without a snapshot it is held until a REST `/book` has been
loaded, then applied. Each change carries the provider's best bid/ask after it; a local book that
disagrees is rebuilt from a fresh snapshot (`tradehall_feed_resyncs_total{reason}`). The per-change
`hash` cannot be recomputed locally (its input is not published), so it is not checked. The
pre-2025-09 `price_change` shapes (flat, and `changes[]` under one `asset_id`) are still applied and
counted by shape. Module over 400 lines: one provider's parsers, book and feed belong together.

Gamma encodes `outcomes`, `outcomePrices` and `clobTokenIds` as JSON arrays inside strings; index i
lines up across the three. CLOB numbers are non-canonical strings (".48") and times are millisecond
strings; level order is not reliable, so books are sorted here. A market that resolves 50-50 is the
ambiguous case: it is reported as VOID.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
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
from tradehall.marketdata.models import (
    BookSnapshot,
    Level,
    MarketState,
    MarketStatusUpdate,
    Quote,
    TradeTick,
    top_quote,
)
from tradehall.marketdata.parsing import ErrorKind, FeedError, dec, loads, mapping, ns_from_ms, opt_dec

log = structlog.get_logger(__name__)

SOURCE = "polymarket"
GAMMA_ROOT = "https://gamma-api.polymarket.com"
CLOB_ROOT = "https://clob.polymarket.com"
WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
ONE = Decimal(1)
HALF = Decimal("0.5")
ZERO = Decimal(0)

DATA_EVENTS = frozenset(
    {"book", "price_change", "last_trade_price", "tick_size_change", "best_bid_ask", "market_resolved"}
)
"""Event types that carry data of the subscribed tokens (health); `new_market` only when it is ours."""

MAX_PENDING = 1000
"""Changes held per token while its snapshot is being fetched."""

Resync = tuple[str, str]
"""(token, reason): a token whose book must be (re)loaded from a REST snapshot."""


def json_list(value: Any, what: str) -> list[Any]:
    """Gamma's arrays-inside-strings (`"[\\"Yes\\", \\"No\\"]"`); a real array is accepted too."""
    if isinstance(value, list):
        return value
    if value in (None, ""):
        return []
    if not isinstance(value, str):
        raise FeedError(ErrorKind.PARSE, f"{what} is neither an array nor a string")
    decoded = loads(value)
    if not isinstance(decoded, list):
        raise FeedError(ErrorKind.PARSE, f"{what} does not hold an array")
    return decoded


@dataclass(frozen=True, slots=True)
class GammaMarket:
    id: str
    slug: str
    condition_id: str
    outcomes: tuple[str, ...]
    outcome_prices: tuple[Decimal, ...]
    token_ids: tuple[str, ...]
    active: bool
    closed: bool
    accepting_orders: bool
    best_bid: Decimal | None
    best_ask: Decimal | None
    last_trade_price: Decimal | None
    uma_resolution_status: str

    @property
    def yes_token(self) -> str:
        return self.token_ids[self._yes_index()] if self.token_ids else ""

    def _yes_index(self) -> int:
        for index, outcome in enumerate(self.outcomes):
            if outcome.strip().lower() == "yes":
                return index
        return 0


def parse_gamma_market(payload: Any) -> GammaMarket:
    """One market object, or the first of a list (`/markets?slug=…` answers with a list)."""
    if isinstance(payload, list):
        if not payload:
            raise FeedError(ErrorKind.PARSE, "no market in the Gamma answer")
        payload = payload[0]
    body = mapping(payload, "gamma market")
    return GammaMarket(
        id=str(body.get("id", "")),
        slug=str(body.get("slug", "")),
        condition_id=str(body.get("conditionId", "")),
        outcomes=tuple(str(item) for item in json_list(body.get("outcomes"), "outcomes")),
        outcome_prices=tuple(
            dec(item, "outcomePrices") for item in json_list(body.get("outcomePrices"), "outcomePrices")
        ),
        token_ids=tuple(str(item) for item in json_list(body.get("clobTokenIds"), "clobTokenIds")),
        active=bool(body.get("active", False)),
        closed=bool(body.get("closed", False)),
        accepting_orders=bool(body.get("acceptingOrders", False)),
        best_bid=opt_dec(body.get("bestBid"), "bestBid"),
        best_ask=opt_dec(body.get("bestAsk"), "bestAsk"),
        last_trade_price=opt_dec(body.get("lastTradePrice"), "lastTradePrice"),
        uma_resolution_status=str(body.get("umaResolutionStatus") or ""),
    )


def gamma_state(market: GammaMarket) -> MarketState:
    """Closed with prices 1/0 → settled; 0.5/0.5 → VOID (the ambiguous resolution); else OPEN/CLOSED."""
    if market.closed:
        prices = market.outcome_prices
        if len(prices) == 2:
            yes = prices[market._yes_index()]
            no = prices[1 - market._yes_index()]
            if yes == ONE and no == 0:
                return MarketState.SETTLED_YES
            if no == ONE and yes == 0:
                return MarketState.SETTLED_NO
            if yes == HALF and no == HALF:
                return MarketState.VOID
        return MarketState.CLOSED
    if market.active and market.accepting_orders:
        return MarketState.OPEN
    return MarketState.CLOSED


def _book_levels(rows: Any, what: str) -> list[Level]:
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise FeedError(ErrorKind.PARSE, f"{what} is not an array")
    return [(dec(row["price"], what), dec(row["size"], what)) for row in rows]


def parse_book(payload: Any, receive_ts: int) -> BookSnapshot:
    """CLOB REST book or a `book` message; bids sorted best (highest) first, asks lowest first."""
    body = mapping(payload, "book")
    bids = sorted(_book_levels(body.get("bids"), "bids"), reverse=True)
    asks = sorted(_book_levels(body.get("asks"), "asks"))
    stamp = body.get("timestamp")
    return BookSnapshot(
        source=SOURCE,
        instrument=str(body["asset_id"]),
        bids=tuple(level for level in bids if level[1] > 0),
        asks=tuple(level for level in asks if level[1] > 0),
        exchange_ts=ns_from_ms(stamp) if stamp not in (None, "") else None,
        receive_ts=receive_ts,
    )


def parse_prices(payload: Any, receive_ts: int) -> list[Quote]:
    """CLOB REST `/prices`: `{token: {"BUY": p, "SELL": p}}`, prices as JSON numbers or strings.
    BUY is the bid side and SELL the ask side, as in `price_change`; a missing side stays None."""
    quotes = []
    for token, sides in mapping(payload, "prices").items():
        body = mapping(sides, "prices entry")
        quotes.append(
            Quote(
                source=SOURCE,
                instrument=str(token),
                bid=opt_dec(body.get("BUY"), "BUY"),
                ask=opt_dec(body.get("SELL"), "SELL"),
                receive_ts=receive_ts,
            )
        )
    return quotes


@dataclass(frozen=True, slots=True)
class PriceChange:
    """One level's new aggregate size, with the provider's best bid/ask after it (None: not sent)."""

    token: str
    side: str
    price: Decimal
    size: Decimal
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None


def _change(token: str, row: Mapping[str, Any]) -> PriceChange:
    side = str(row["side"]).upper()
    if side not in ("BUY", "SELL"):
        raise FeedError(ErrorKind.PARSE, f"unknown side {side!r}")
    return PriceChange(
        token,
        side,
        dec(row["price"], "price"),
        dec(row["size"], "size"),
        opt_dec(row.get("best_bid"), "best_bid"),
        opt_dec(row.get("best_ask"), "best_ask"),
    )


def parse_price_change(body: Mapping[str, Any]) -> tuple[str, list[PriceChange]]:
    """(shape, changes) of the three shapes: `price_changes` (current), `changes[]` and the flat
    form (both before 2025-09, one token per message, no best bid/ask)."""
    if "price_changes" in body:
        rows = body["price_changes"]
        if not isinstance(rows, list):
            raise FeedError(ErrorKind.PARSE, "price_changes is not an array")
        return "price_changes", [_change(str(row["asset_id"]), row) for row in rows]
    token = str(body["asset_id"])
    if "changes" in body:
        rows = body["changes"]
        if not isinstance(rows, list):
            raise FeedError(ErrorKind.PARSE, "changes is not an array")
        return "legacy_changes", [_change(token, row) for row in rows]
    return "legacy_flat", [_change(token, body)]


class TokenBook:
    __slots__ = ("asks", "bids", "last", "pending", "synced", "tick_size", "token")

    def __init__(self, token: str) -> None:
        self.token = token
        self.bids = LevelBook(highest_first=True)
        self.asks = LevelBook(highest_first=False)
        self.last: Decimal | None = None
        self.tick_size: Decimal | None = None
        self.synced = False
        """True once a snapshot (a `book` message or REST `/book`) was loaded."""
        self.pending: list[PriceChange] = []
        """Changes that arrived before the snapshot; applied right after it."""

    def load(self, snapshot: BookSnapshot) -> None:
        self.bids.clear()
        self.asks.clear()
        for price, size in snapshot.bids:
            self.bids.set(price, size)
        for price, size in snapshot.asks:
            self.asks.set(price, size)
        self.synced = True

    def apply(self, change: PriceChange) -> bool:
        """Set the level; False when the provider's best bid/ask after it disagrees with this book
        (a best bid of 0 or a best ask of 1 means that side is empty)."""
        (self.bids if change.side == "BUY" else self.asks).set(change.price, change.size)
        bid = self.bids.best()
        ask = self.asks.best()
        if change.best_bid is not None and (bid[0] if bid else ZERO) != change.best_bid:
            return False
        return change.best_ask is None or (ask[0] if ask else ONE) == change.best_ask

    def top(self, receive_ts: int, exchange_ts: int | None = None) -> Quote:
        bid = self.bids.best()
        ask = self.asks.best()
        return top_quote(SOURCE, self.token, bid, ask, receive_ts, last=self.last, exchange_ts=exchange_ts)


@dataclass(frozen=True, slots=True)
class PolymarketMarketRef:
    """A configured market: its Gamma slug and, once known, its YES/NO token ids."""

    slug: str
    yes_token: str = ""
    no_token: str = ""


class PolymarketFeed(Feed):
    def __init__(
        self,
        markets: Sequence[PolymarketMarketRef],
        sink: Sink,
        http: httpx.AsyncClient,
        *,
        ws_url: str = WS_URL,
        gamma_root: str = GAMMA_ROOT,
        clob_root: str = CLOB_ROOT,
        status_interval: float = 10.0,
        stale_after: float = 60.0,
        keepalive_interval: float | None = 10.0,
        poll_interval: float = 2.0,
        name: str = SOURCE,
        **options: Unpack[ExchangeOptions],
    ) -> None:
        super().__init__(name, sink, **options)
        self.keepalive_interval = keepalive_interval
        self.poll_interval = poll_interval
        self.polls = 0
        self.markets = {ref.slug: ref for ref in markets}
        self.http = http
        self.ws_url = ws_url
        self.gamma_root = gamma_root.rstrip("/")
        self.clob_root = clob_root.rstrip("/")
        self.status_interval = status_interval
        self.stale_after = stale_after
        self.books: dict[str, TokenBook] = {}
        self.states: dict[str, MarketState] = {}
        self._yes_of: dict[str, str] = {}
        """Any token id (YES or NO) → the YES token that names the market in events."""
        self.shapes: dict[str, int] = {}
        """Messages of an older or informational shape (accepted or refused), by shape."""
        self.resyncs: dict[str, int] = {}
        """Books reloaded from a REST snapshot, by reason."""
        self._ws: ClientConnection | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        for ref in markets:
            self._register(ref)

    def _register(self, ref: PolymarketMarketRef) -> None:
        self.markets[ref.slug] = ref
        for token in (ref.yes_token, ref.no_token):
            if token:
                self.books.setdefault(token, TokenBook(token))
                self._yes_of[token] = ref.yes_token

    @property
    def token_ids(self) -> list[str]:
        return [token for ref in self.markets.values() for token in (ref.yes_token, ref.no_token) if token]

    async def run(self) -> None:
        self._stop.clear()
        status_task = asyncio.create_task(self._status_loop())
        try:
            while not self._stop.is_set():
                if self.breaker.allow() and self.token_ids:
                    try:
                        async with connect(self.ws_url, open_timeout=5) as ws:
                            self._ws = ws
                            self.set_connected(True, "stream")
                            subscribe = {
                                "assets_ids": self.token_ids,
                                "type": "market",
                                "custom_feature_enabled": True,
                            }
                            await ws.send(orjson.dumps(subscribe).decode())
                            keepalive = asyncio.create_task(self._keepalive(ws))
                            try:
                                await self._consume(ws)
                            finally:
                                await cancel_and_wait(keepalive)
                    except (OSError, TimeoutError, WebSocketException) as exc:
                        self.breaker.record_failure()
                        self.note_error(FeedError(ErrorKind.CONNECTION, f"{type(exc).__name__}: {exc}"))
                    finally:
                        self._ws = None
                self.set_connected(False, "polling")
                delay = self.backoff.next_delay(self.breaker.seconds_until_retry())
                await poll_until(
                    self.clock, self.clock() + delay, self.poll_books_once, self.poll_interval, self._stop
                )
        finally:
            await cancel_and_wait(status_task)

    async def stop(self) -> None:
        self._stop.set()
        await super().stop()

    async def _keepalive(self, ws: ClientConnection) -> None:
        """The market channel expects an application-level "PING" text now and then (it answers "PONG")."""
        if self.keepalive_interval is None:
            return
        while True:
            await asyncio.sleep(self.keepalive_interval)
            await ws.send("PING")

    async def _consume(self, ws: ClientConnection) -> None:
        await self.consume_stream(
            ws, self.on_raw, stop=self._stop, stale_after=self.stale_after, backoff=self.backoff
        )

    async def on_raw(self, raw: bytes) -> None:
        """One stream message, then the snapshots it asked for (in the feed's task, in order)."""
        for token, reason in self.handle_message(raw):
            await self.resync(token, reason)

    async def resync(self, token: str, reason: str) -> None:
        """Reload a token's book from REST `/book`, then apply the changes held meanwhile."""
        book = self.books.get(token)
        if book is None or not self.rest_breaker.allow():
            return  # an open REST breaker: the book stays unsynced and is asked for again later
        self.resyncs[reason] = self.resyncs.get(reason, 0) + 1
        metrics.FEED_RESYNCS.labels(feed=self.name, reason=reason).inc()
        book.synced = False
        snapshot = await self.guarded_fetch(self.rest_breaker, "book", partial(self.fetch_book, token))
        if snapshot is None:
            return  # stays unsynced: the next change asks again
        book.load(snapshot)
        pending, book.pending = book.pending, []
        for change in pending:
            # Sizes are absolute, so a change the snapshot already holds is applied harmlessly; the
            # best bid/ask it carried may predate the snapshot, so it is not checked here.
            (book.bids if change.side == "BUY" else book.asks).set(change.price, change.size)
        self.emit(snapshot)
        self.emit(book.top(self.clock_ns(), snapshot.exchange_ts))

    def handle_message(self, raw: bytes) -> list[Resync]:
        """Apply one WebSocket message; returns the tokens whose book must be loaded from REST."""
        receive_ts = self.clock_ns()
        resyncs: list[Resync] = []
        try:
            if raw.strip() in (b"PONG", b"pong"):
                self.note_ignored("PONG")
                return resyncs
            decoded = loads(raw)
            for body in decoded if isinstance(decoded, list) else [decoded]:
                event = mapping(body, "event")
                if event.get("event_type") in DATA_EVENTS:
                    self.note_message()
                self._on_event(event, receive_ts, resyncs)
        except FeedError as error:
            self.note_error(error)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.note_error(FeedError(ErrorKind.PARSE, f"{type(exc).__name__}: {exc}"))
        return resyncs

    def _count_shape(self, shape: str) -> None:
        self.shapes[shape] = self.shapes.get(shape, 0) + 1
        metrics.FEED_MESSAGE_SHAPES.labels(feed=self.name, shape=shape).inc()

    def _on_changes(
        self, body: Mapping[str, Any], receive_ts: int, exchange_ts: int | None, resyncs: list[Resync]
    ) -> None:
        shape, changes = parse_price_change(body)
        if shape != "price_changes":
            self._count_shape(shape)
        touched: list[TokenBook] = []
        for change in changes:
            book = self.books.get(change.token)
            if book is None:
                continue
            if not book.synced:
                # Until a snapshot loads, every message asks for one again (a failed fetch is retried).
                # Held changes older than the snapshot are redundant: keep only the latest ones.
                book.pending.append(change)
                del book.pending[:-MAX_PENDING]
                if (change.token, "no_snapshot") not in resyncs:
                    resyncs.append((change.token, "no_snapshot"))
                continue
            if not book.apply(change):
                book.synced = False
                resyncs.append((change.token, "best_mismatch"))
                if book in touched:
                    touched.remove(book)
                continue
            if book not in touched:
                touched.append(book)
        for book in touched:
            if book.synced:
                self.emit(book.top(receive_ts, exchange_ts))

    def _on_best_bid_ask(
        self, body: Mapping[str, Any], receive_ts: int, exchange_ts: int | None, resyncs: list[Resync]
    ) -> None:
        """A synced book must agree with it (else it is rebuilt); without a book it is the quote."""
        token = str(body["asset_id"])
        book = self.books.get(token)
        if book is None:
            return
        bid = opt_dec(body.get("best_bid"), "best_bid")
        ask = opt_dec(body.get("best_ask"), "best_ask")
        if book.synced:
            local_bid = book.bids.best()
            local_ask = book.asks.best()
            if (bid is not None and (local_bid[0] if local_bid else ZERO) != bid) or (
                ask is not None and (local_ask[0] if local_ask else ONE) != ask
            ):
                book.synced = False
                resyncs.append((token, "best_mismatch"))
            return
        self.emit(
            Quote(
                source=SOURCE,
                instrument=token,
                bid=bid if bid else None,
                ask=ask if ask is not None and ask != ONE else None,
                last=book.last,
                exchange_ts=exchange_ts,
                receive_ts=receive_ts,
            )
        )

    def _on_new_market(self, body: Mapping[str, Any], resyncs: list[Resync]) -> None:
        """A configured slug whose tokens are not known yet learns them here (and subscribes)."""
        slug = str(body.get("slug", ""))
        ref = self.markets.get(slug)
        tokens = [str(t) for t in json_list(body.get("clob_token_ids") or body.get("assets_ids"), "ids")]
        outcomes = [str(o).strip().lower() for o in json_list(body.get("outcomes"), "outcomes")]
        if ref is None or ref.yes_token or len(tokens) != 2:
            self.note_ignored("new_market")
            return
        self.note_message()
        yes_index = outcomes.index("yes") if "yes" in outcomes else 0
        self._register(PolymarketMarketRef(slug, tokens[yes_index], tokens[1 - yes_index]))
        log.info("polymarket_tokens_learnt", slug=slug, source="new_market")
        self._subscribe_later(tokens)

    def _on_event(
        self, body: Mapping[str, Any], receive_ts: int, resyncs: list[Resync] | None = None
    ) -> None:
        resyncs = [] if resyncs is None else resyncs
        kind = body.get("event_type")
        stamp = body.get("timestamp")
        exchange_ts = ns_from_ms(stamp) if stamp not in (None, "") else None
        if kind == "book":
            snapshot = parse_book(body, receive_ts)
            book = self.books.get(snapshot.instrument)
            if book is None:
                return
            book.load(snapshot)
            book.pending.clear()
            if body.get("tick_size") not in (None, ""):
                book.tick_size = dec(body["tick_size"], "tick_size")
            self.emit(snapshot)
            self.emit(book.top(receive_ts, exchange_ts))
        elif kind == "price_change":
            self._on_changes(body, receive_ts, exchange_ts, resyncs)
        elif kind == "tick_size_change":
            book = self.books.get(str(body["asset_id"]))
            if book is not None:
                book.tick_size = dec(body["new_tick_size"], "new_tick_size")
        elif kind == "best_bid_ask":
            self._on_best_bid_ask(body, receive_ts, exchange_ts, resyncs)
        elif kind == "new_market":
            self._on_new_market(body, resyncs)
        elif kind == "last_trade_price":
            token = str(body["asset_id"])
            book = self.books.get(token)
            if book is None:
                return
            price = dec(body["price"], "price")
            book.last = price
            side = str(body.get("side", "")).lower()
            self.emit(
                TradeTick(
                    source=SOURCE,
                    instrument=token,
                    price=price,
                    size=dec(body["size"], "size"),
                    side=side if side in ("buy", "sell") else None,
                    exchange_ts=exchange_ts,
                    receive_ts=receive_ts,
                )
            )
        elif kind == "market_resolved":
            self._on_resolved(body, receive_ts, exchange_ts)
        else:
            self.note_ignored(str(kind))

    def _on_resolved(self, body: Mapping[str, Any], receive_ts: int, exchange_ts: int | None) -> None:
        winner = str(body.get("winning_asset_id", ""))
        yes_token = self._yes_of.get(winner)
        if yes_token is None:
            for token in body.get("assets_ids", []):
                yes_token = self._yes_of.get(str(token))
                if yes_token is not None:
                    break
        if yes_token is None:
            return
        state = MarketState.SETTLED_YES if winner == yes_token else MarketState.SETTLED_NO
        self._set_state(
            yes_token, state, f"market_resolved {body.get('winning_outcome', '')}", receive_ts, exchange_ts
        )

    def _set_state(
        self, yes_token: str, state: MarketState, detail: str, receive_ts: int, exchange_ts: int | None = None
    ) -> MarketStatusUpdate | None:
        if self.states.get(yes_token) is state:
            return None
        self.states[yes_token] = state
        update = MarketStatusUpdate(SOURCE, yes_token, state, detail, exchange_ts, receive_ts)
        self.emit(update)
        return update

    async def fetch_gamma(self, slug: str) -> GammaMarket:
        return parse_gamma_market(
            await get_json(self.http, f"{self.gamma_root}/markets", params={"slug": slug})
        )

    async def fetch_book(self, token: str) -> BookSnapshot:
        return parse_book(
            await get_json(self.http, f"{self.clob_root}/book", params={"token_id": token}), self.clock_ns()
        )

    async def fetch_prices(self, tokens: Sequence[str]) -> list[Quote]:
        """CLOB REST `/prices` for both sides of `tokens` (prices come as JSON numbers)."""
        params = {
            "token_ids": ",".join(token for token in tokens for _ in ("BUY", "SELL")),
            "sides": ",".join("BUY,SELL" for _ in tokens),
        }
        payload = await get_json(self.http, f"{self.clob_root}/prices", params=params)
        return parse_prices(payload, self.clock_ns())

    async def _subscribe_live(self, tokens: Sequence[str]) -> None:
        """Tokens learnt while connected join the live connection (the market channel's dynamic
        subscribe); without a connection they are in the next connection's first subscription."""
        ws = self._ws
        if ws is None:
            return
        message = {"assets_ids": list(tokens), "operation": "subscribe", "custom_feature_enabled": True}
        try:
            await ws.send(orjson.dumps(message).decode())
        except WebSocketException as exc:
            self.note_error(FeedError(ErrorKind.CONNECTION, f"subscribe: {type(exc).__name__}"))

    def _subscribe_later(self, tokens: Sequence[str]) -> None:
        """Tokens learnt while connected join the live connection (the market channel's dynamic
        subscribe); without a connection they are in the next connection's first subscription."""
        if self._ws is None or not tokens:
            return
        task = asyncio.get_running_loop().create_task(self._subscribe_live(tokens))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def poll_books_once(self) -> list[Quote]:
        """CLOB REST books of every token (only while the WebSocket is down)."""
        quotes = []
        for token, book in list(self.books.items()):
            if not self.rest_breaker.allow():
                break
            snapshot = await self.guarded_fetch(self.rest_breaker, "book", partial(self.fetch_book, token))
            if snapshot is None:
                continue
            book.load(snapshot)
            quote = book.top(self.clock_ns(), snapshot.exchange_ts)
            self.emit(snapshot)
            self.emit(quote)
            quotes.append(quote)
        self.polls += 1
        return quotes

    async def poll_status_once(self) -> list[MarketStatusUpdate]:
        """Gamma for each market: learns token ids, and catches resolution when the stream is silent."""
        updates = []
        for slug, ref in list(self.markets.items()):
            try:
                market = await self.fetch_gamma(slug)
            except FeedError as error:
                self.note_error(error)
                continue
            except (KeyError, TypeError) as exc:
                self.note_error(FeedError(ErrorKind.PARSE, f"gamma: {exc}"))
                continue
            if not ref.yes_token and len(market.token_ids) == 2:
                yes_index = market._yes_index()
                self._register(
                    PolymarketMarketRef(slug, market.token_ids[yes_index], market.token_ids[1 - yes_index])
                )
                ref = self.markets[slug]
                await self._subscribe_live([ref.yes_token, ref.no_token])
            if not ref.yes_token:
                continue
            update = self._set_state(
                ref.yes_token,
                gamma_state(market),
                f"gamma closed={market.closed} prices={list(market.outcome_prices)}",
                self.clock_ns(),
            )
            if update is not None:
                updates.append(update)
        return updates

    async def _status_loop(self) -> None:
        while not self._stop.is_set():
            await self.poll_status_once()
            await sleep_or_stop(self.status_interval, self._stop)
