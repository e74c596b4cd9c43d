"""The WebSocket `/ws`: public market channels, private account channels, order entry.

Protocol (API.md): client ops `auth`, `subscribe`, `unsubscribe`, `ping`, `order` (the POST /orders
body), `cancel` ({"order_id"}); server ops `subscribed`, `unsubscribed`, `error`, `pong`, `order`,
`heartbeat`, and data messages `{"channel", "type": "snapshot"|"update", "sequence", "data"}`.

`book:SYM` sends a snapshot of the engine's book and then one update per `BookChanged` event, whose
`sequence` is the engine's per-market book counter (the REST book's `sequence`). The snapshot may
already include changes whose records are not durable yet; updates up to the snapshot's sequence are
skipped, so the first update is always snapshot + 1. Other channels use the journal record's seq.

Each connection has a bounded send queue drained by its own task. A client that lets it fill up is
disconnected with close code 1013 (try again later) instead of growing memory without bound.

With `TRADEHALL_WS_SOURCE=bus` the `book:` and `trades:` channels are fed from the event bus
(`trades.*`, `market-data.book-ticks`; a consumer name of its own per process, so every gateway sees
every message; duplicates dropped by seq) instead of this process's runner, so gateway processes
without the engine can serve clients of one engine. Book snapshots then come from the engine's
`GET /markets/{symbol}/book` at `TRADEHALL_ENGINE_URL` (this process's engine when unset); the hub
keeps the last deltas per market to replay those the bus delivered before the snapshot arrived, and a
gap in a connection's book sequence resyncs it with a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from tradehall.api import convert
from tradehall.api.auth import Principal
from tradehall.api.errors import ApiError
from tradehall.api.gateway import Gateway
from tradehall.api.metrics import WS_CONNECTIONS
from tradehall.api.routes.orders import place_order
from tradehall.api.schemas import OrderCreate
from tradehall.bus import Deduper, EventBus, StartPosition, create_bus
from tradehall.bus.envelope import Envelope
from tradehall.domain.commands import CancelOrder
from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.events import (
    BalanceChanged,
    BookChanged,
    MarkPriceUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderTriggered,
    PositionChanged,
    TradeExecuted,
)
from tradehall.domain.fixedpoint import amount_of, decimal_of, decimal_str
from tradehall.journal.records import JournalRecord

log = structlog.get_logger(__name__)

router = APIRouter()

PRIVATE_CHANNELS = ("orders", "fills", "positions", "account")
PUBLIC_KINDS = ("book", "trades", "ticker", "candles")
CLOSE_SLOW_CONSUMER = 1013
CLOSE_POLICY = 1008
HEARTBEAT_SECONDS = 15.0
BOOK_REPLAY_DELTAS = 1000
"""Book deltas kept per market (bus source) to replay after a snapshot that was behind the bus."""
BUS_PATTERNS = ("trades.*", "market-data.book-ticks")
RESYNCING = -1
"""A connection's book sequence while its snapshot is being fetched: deltas wait in the replay buffer."""
_ORDER_EVENTS = (OrderAccepted, OrderFilled, OrderCancelled, OrderExpired, OrderAmended, OrderTriggered)


class SlowConsumerError(Exception):
    pass


class Connection:
    def __init__(self, websocket: WebSocket, max_queue: int) -> None:
        self.websocket = websocket
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(max_queue)
        self.principal: Principal | None = None
        self.channels: set[str] = set()
        self.book_sequence: dict[str, int] = {}
        self.book_snapshots: set[str] = set()
        self.closing = False
        self.close_code = 1000
        self.id = uuid.uuid4().hex[:16]
        self.messages = 0

    def push(self, text: str) -> None:
        if self.closing:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.closing = True
            self.close_code = CLOSE_SLOW_CONSUMER
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    def send_json(self, payload: dict[str, Any]) -> None:
        self.push(orjson.dumps(payload).decode())


def _data(channel: str, kind: str, sequence: int, data: Any) -> str:
    return orjson.dumps({"channel": channel, "type": kind, "sequence": sequence, "data": data}).decode()


class WebSocketHub:
    def __init__(self, gateway: Gateway, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.gateway = gateway
        self.heartbeat_seconds = heartbeat_seconds
        self.max_subscriptions = gateway.settings.ws_max_subscriptions
        self.max_queue = gateway.settings.ws_send_queue
        self.connections: set[Connection] = set()
        self.public: dict[str, set[Connection]] = {}
        self.private: dict[tuple[str, str], set[Connection]] = {}
        settings = gateway.settings
        self.from_bus = settings.ws_source == "bus"
        self.engine_url = settings.engine_url.rstrip("/") if settings.engine_url else None
        self._bus: EventBus | None = None
        self._bus_tasks: list[asyncio.Task[None]] = []
        self._deduper = Deduper()
        self._recent_book: dict[str, deque[tuple[int, str]]] = {}
        self._remote_markets: set[str] = set()
        self._http: httpx.AsyncClient | None = None
        self._resyncs: set[asyncio.Task[None]] = set()
        self.resyncs = 0
        """Book snapshots fetched after a gap (tests and logs)."""
        with contextlib.suppress(RuntimeError):  # created on the loop (the app's lifespan): subscribe now
            asyncio.get_running_loop()
            self.start_bus()

    # ---- fan-out of durable records ---------------------------------------------------------------

    def on_records(self, records: Sequence[JournalRecord]) -> None:
        if not self.connections:
            return
        for record in records:
            tickers: set[str] = set()
            for event in record.events:
                if isinstance(event, BookChanged):
                    if not self.from_bus:
                        self._book_update(event)
                    tickers.add(event.market)
                elif isinstance(event, TradeExecuted):
                    if not self.from_bus:
                        self._trade(event, record.seq)
                    tickers.add(event.market)
                elif isinstance(event, MarkPriceUpdated):
                    tickers.add(event.market)
                elif self.private:
                    self._private(event, record.seq)
            for symbol in tickers:
                self._ticker(symbol, record.seq)

    def _book_update(self, event: BookChanged) -> None:
        channel = f"book:{event.market}"
        subscribers = self.public.get(channel)
        if not subscribers:
            return
        market = self.gateway.engine.markets.get(event.market)
        if market is None:
            return
        text = _data(
            channel,
            "update",
            event.sequence,
            {
                "symbol": event.market,
                "bids": convert.levels(event.bids, market.spec),
                "asks": convert.levels(event.asks, market.spec),
            },
        )
        for connection in list(subscribers):
            if event.sequence > connection.book_sequence.get(event.market, 0):
                connection.book_sequence[event.market] = event.sequence
                connection.push(text)

    def _trade(self, event: TradeExecuted, seq: int) -> None:
        channel = f"trades:{event.market}"
        subscribers = self.public.get(channel)
        if not subscribers:
            return
        spec = self.gateway.engine.markets[event.market].spec
        text = _data(
            channel,
            "update",
            seq,
            {
                "id": str(event.trade_id),
                "market": event.market,
                "price": decimal_str(decimal_of(event.price, spec.tick_size)),
                "quantity": decimal_str(decimal_of(event.quantity, spec.lot_size)),
                "side": event.taker_side.value,
                "executed_at": convert.rfc3339_ns(event.ts),
            },
        )
        for connection in list(subscribers):
            connection.push(text)

    def _ticker(self, symbol: str, seq: int) -> None:
        channel = f"ticker:{symbol}"
        subscribers = self.public.get(channel)
        if not subscribers:
            return
        market = self.gateway.engine.markets[symbol]
        text = _data(channel, "update", seq, convert.ticker_dict(market, self.gateway.volumes.volume(symbol)))
        for connection in list(subscribers):
            connection.push(text)

    # ---- fan-out from the bus ---------------------------------------------------------------------

    def start_bus(self) -> None:
        """Subscribe to the bus (once, on the first connection: it needs the running loop)."""
        if not self.from_bus or self._bus_tasks:
            return
        self._bus = create_bus(self.gateway.settings)
        consumer = f"ws-{uuid.uuid4().hex[:12]}"  # one per process: every gateway gets every message
        self._bus_tasks = [
            asyncio.create_task(self._consume(self._bus, pattern, consumer), name=f"ws-bus:{pattern}")
            for pattern in BUS_PATTERNS
        ]
        log.info("ws_bus_source_started", consumer=consumer, backend=self._bus.name)

    async def _consume(self, bus: EventBus, pattern: str, consumer: str) -> None:
        while True:
            try:
                await bus.start()  # idempotent; the broker may be down when the gateway starts
                async for delivery in bus.subscribe(pattern, consumer, StartPosition.LATEST):
                    if self._deduper.is_new(delivery.envelope):
                        try:
                            self.on_envelope(delivery.envelope)
                        except Exception as exc:  # one bad message must not end the fan-out
                            log.error("ws_bus_message_failed", id=delivery.envelope.id, error=repr(exc))
                    await bus.ack(delivery)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: subscribe again after a pause
                log.warning("ws_bus_subscription_failed", pattern=pattern, error=repr(exc))
                await asyncio.sleep(1.0)

    def on_envelope(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if envelope.type == "BookChanged":
            symbol = str(payload["market"])
            sequence = int(payload["sequence"])
            channel = f"book:{symbol}"
            text = _data(
                channel,
                "update",
                sequence,
                {"symbol": symbol, "bids": payload.get("bids", []), "asks": payload.get("asks", [])},
            )
            recent = self._recent_book.setdefault(symbol, deque(maxlen=BOOK_REPLAY_DELTAS))
            recent.append((sequence, text))
            for connection in list(self.public.get(channel, ())):
                current = connection.book_sequence.get(symbol, RESYNCING)
                if current == RESYNCING or sequence <= current:
                    continue
                if sequence == current + 1:
                    connection.book_sequence[symbol] = sequence
                    connection.push(text)
                else:
                    log.info("ws_book_gap", market=symbol, expected=current + 1, got=sequence)
                    self._send_book_snapshot(connection, symbol)
        elif envelope.type == "TradeExecuted":
            channel = f"trades:{payload['market']}"
            subscribers = self.public.get(channel)
            if not subscribers:
                return
            text = _data(
                channel,
                "update",
                envelope.seq,
                {
                    "id": str(payload["trade_id"]),
                    "market": payload["market"],
                    "price": payload["price"],
                    "quantity": payload["quantity"],
                    "side": payload["taker_side"],
                    "executed_at": convert.rfc3339_ns(int(payload["ts"])),
                },
            )
            for connection in list(subscribers):
                connection.push(text)

    def _send_book_snapshot(self, connection: Connection, symbol: str) -> None:
        connection.book_sequence[symbol] = RESYNCING
        task = asyncio.create_task(self._book_snapshot_task(connection, symbol))
        self._resyncs.add(task)
        task.add_done_callback(self._resyncs.discard)

    async def _book_snapshot_task(self, connection: Connection, symbol: str) -> None:
        channel = f"book:{symbol}"
        try:
            data = await self._fetch_book(symbol)
        except Exception as exc:
            log.warning("ws_book_snapshot_failed", market=symbol, error=repr(exc))
            connection.send_json(
                {
                    "op": "error",
                    "code": Code.MARKET_DATA_UNAVAILABLE.value,
                    "message": f"book snapshot of {symbol} unavailable",
                    "channel": channel,
                }
            )
            self.unsubscribe(connection, [channel])
            return
        if channel not in connection.channels:
            return
        if symbol in connection.book_snapshots:
            self.resyncs += 1
        connection.book_snapshots.add(symbol)
        sequence = int(data["sequence"])
        connection.push(_data(channel, "snapshot", sequence, data))
        # deltas the bus delivered while the snapshot was on its way
        for delta_sequence, text in self._recent_book.get(symbol, ()):
            if delta_sequence == sequence + 1:
                sequence = delta_sequence
                connection.push(text)
        connection.book_sequence[symbol] = sequence

    async def _fetch_book(self, symbol: str) -> dict[str, Any]:
        if self.engine_url is None:
            return convert.book_dict(self.gateway.engine.markets[symbol], 1000)
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        response = await self._http.get(f"{self.engine_url}/markets/{symbol}/book", params={"depth": 1000})
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def learn_markets(self, channels: list[str]) -> None:
        """Bus source: markets the engine knows (asked over HTTP) for the book/trades channels."""
        if not self.from_bus:
            return
        for channel in channels:
            kind, _, symbol = channel.partition(":")
            if kind not in ("book", "trades") or not symbol:
                continue
            if symbol in self.gateway.engine.markets or symbol in self._remote_markets:
                continue
            if self.engine_url is None:
                continue
            try:
                if self._http is None:
                    self._http = httpx.AsyncClient(timeout=5.0)
                response = await self._http.get(f"{self.engine_url}/markets/{symbol}")
            except httpx.HTTPError as exc:
                log.warning("ws_engine_unreachable", url=self.engine_url, error=repr(exc))
                continue
            if response.status_code == 200:
                self._remote_markets.add(symbol)

    def on_candle(self, market: str, interval: str, bar: Any) -> None:
        channel = f"candles:{market}:{interval}"
        subscribers = self.public.get(channel)
        if not subscribers:
            return
        spec = self.gateway.engine.markets[market].spec
        text = _data(channel, "update", bar.start, _candle(bar, spec))
        for connection in list(subscribers):
            connection.push(text)

    def _owner(self, account_id: str) -> str | None:
        account = self.gateway.engine.accounts.get(account_id)
        return None if account is None else account.owner

    def _private(self, event: Any, seq: int) -> None:
        engine = self.gateway.engine
        if isinstance(event, _ORDER_EVENTS):
            owner = self._owner(event.account_id)
            targets = self.private.get((owner or "", "orders"))
            if targets:
                order = engine.orders.get(event.order_id)
                data: dict[str, Any]
                if order is not None:
                    market = engine.markets[order.market]
                    data = convert.order_from_engine(
                        order, market.spec, engine.config.decimals(market.spec.quote)
                    )
                else:
                    data = {"id": str(event.order_id), "account_id": event.account_id, "market": event.market}
                    status = getattr(event, "status", None)
                    if isinstance(event, OrderCancelled):
                        status = "cancelled"
                    elif isinstance(event, OrderExpired):
                        status = "expired"
                    data["status"] = str(status) if status is not None else None
                data["event"] = type(event).__name__
                text = _data("orders", "update", seq, data)
                for connection in list(targets):
                    connection.push(text)
            if isinstance(event, OrderFilled):
                fill_targets = self.private.get((owner or "", "fills"))
                if fill_targets:
                    spec = engine.markets[event.market].spec
                    fill = convert.fill_from_event(event, spec, engine.config.decimals(spec.quote))
                    fill["account_id"] = event.account_id
                    text = _data("fills", "update", seq, fill)
                    for connection in list(fill_targets):
                        connection.push(text)
        elif isinstance(event, PositionChanged):
            targets = self.private.get((self._owner(event.account_id) or "", "positions"))
            if targets:
                market = engine.markets[event.market]
                position = market.positions.get(event.account_id)
                if position is None:
                    return
                data = convert.position_dict(engine, market, position)
                if position.quantity == 0:
                    data["side"] = "flat"
                text = _data("positions", "update", seq, data)
                for connection in list(targets):
                    connection.push(text)
        elif isinstance(event, BalanceChanged):
            targets = self.private.get((self._owner(event.account_id) or "", "account"))
            if targets:
                places = engine.config.decimals(event.currency)
                data = {
                    "account_id": event.account_id,
                    "currency": event.currency,
                    "total": decimal_str(amount_of(event.total, places)),
                    "held": decimal_str(amount_of(event.held, places)),
                    "available": decimal_str(amount_of(event.total - event.held, places)),
                    "reason": event.reason,
                }
                text = _data("account", "update", seq, data)
                for connection in list(targets):
                    connection.push(text)

    # ---- subscriptions ----------------------------------------------------------------------------

    def _validate_channel(self, connection: Connection, channel: str) -> str | None:
        """None when `channel` may be subscribed, else the error message."""
        if channel in PRIVATE_CHANNELS:
            return None if connection.principal is not None else f"{channel} needs auth first"
        kind, _, rest = channel.partition(":")
        if kind not in PUBLIC_KINDS or not rest:
            return f"unknown channel {channel!r}"
        symbol = rest
        if kind == "candles":
            symbol, _, interval = rest.rpartition(":")
            if interval not in ("1m", "5m", "15m", "1h", "1d") or not symbol:
                return f"unknown channel {channel!r}"
        remote = self.from_bus and kind in ("book", "trades") and symbol in self._remote_markets
        if symbol not in self.gateway.engine.markets and not remote:
            return f"market {symbol} not found"
        return None

    def subscribe(self, connection: Connection, channels: list[str]) -> None:
        accepted: list[str] = []
        for channel in channels:
            if channel in connection.channels:
                accepted.append(channel)
                continue
            problem = self._validate_channel(connection, channel)
            if problem is not None:
                code = Code.UNAUTHORIZED if channel in PRIVATE_CHANNELS else Code.NOT_FOUND
                if problem.startswith("unknown"):
                    code = Code.INVALID_REQUEST
                connection.send_json(
                    {"op": "error", "code": code.value, "message": problem, "channel": channel}
                )
                continue
            if len(connection.channels) >= self.max_subscriptions:
                connection.send_json(
                    {
                        "op": "error",
                        "code": Code.INVALID_REQUEST.value,
                        "message": f"subscription limit of {self.max_subscriptions} channels reached",
                        "channel": channel,
                    }
                )
                continue
            connection.channels.add(channel)
            if channel in PRIVATE_CHANNELS:
                assert connection.principal is not None
                self.private.setdefault((connection.principal.user_id, channel), set()).add(connection)
            else:
                self.public.setdefault(channel, set()).add(connection)
            accepted.append(channel)
        connection.send_json({"op": "subscribed", "channels": accepted})
        for channel in accepted:
            self._snapshot(connection, channel)

    def _snapshot(self, connection: Connection, channel: str) -> None:
        engine = self.gateway.engine
        kind, _, rest = channel.partition(":")
        if kind == "book" and self.from_bus:
            self._send_book_snapshot(connection, rest)
        elif kind == "book":
            market = engine.markets[rest]
            data = convert.book_dict(market, 1000)
            connection.book_sequence[rest] = market.book_sequence
            connection.push(_data(channel, "snapshot", market.book_sequence, data))
        elif kind == "ticker":
            market = engine.markets[rest]
            data = convert.ticker_dict(market, self.gateway.volumes.volume(rest))
            connection.push(_data(channel, "snapshot", self.gateway.service.runner.durable_seq, data))
        elif kind == "candles":
            symbol, _, interval = rest.rpartition(":")
            spec = engine.markets[symbol].spec
            bars = self.gateway.candles.bars(symbol, interval)[:100]
            candles = [_candle(bar, spec) for bar in bars]
            connection.push(_data(channel, "snapshot", self.gateway.service.runner.durable_seq, candles))
        elif channel == "positions" and connection.principal is not None:
            items = []
            for account in self.gateway.accounts_of(connection.principal):
                for position in engine.positions_of(account.account_id):
                    items.append(convert.position_dict(engine, engine.markets[position.market], position))
            connection.push(_data(channel, "snapshot", self.gateway.service.runner.durable_seq, items))
        elif channel == "account" and connection.principal is not None:
            items = [convert.account_dict(engine, a) for a in self.gateway.accounts_of(connection.principal)]
            connection.push(_data(channel, "snapshot", self.gateway.service.runner.durable_seq, items))
        elif channel == "orders" and connection.principal is not None:
            owned = {a.account_id for a in self.gateway.accounts_of(connection.principal)}
            items = []
            for order in sorted(engine.orders.values(), key=lambda o: -o.order_id):
                if order.account_id in owned:
                    market = engine.markets[order.market]
                    items.append(
                        convert.order_from_engine(
                            order, market.spec, engine.config.decimals(market.spec.quote)
                        )
                    )
            connection.push(_data(channel, "snapshot", self.gateway.service.runner.durable_seq, items))

    def unsubscribe(self, connection: Connection, channels: list[str]) -> None:
        removed = []
        for channel in channels:
            if channel not in connection.channels:
                continue
            connection.channels.discard(channel)
            removed.append(channel)
            if channel in PRIVATE_CHANNELS and connection.principal is not None:
                self.private.get((connection.principal.user_id, channel), set()).discard(connection)
            else:
                self.public.get(channel, set()).discard(connection)
                if channel.startswith("book:"):
                    connection.book_sequence.pop(channel[5:], None)
        connection.send_json({"op": "unsubscribed", "channels": removed})

    def drop(self, connection: Connection) -> None:
        self.unsubscribe_all(connection)
        self.connections.discard(connection)

    def unsubscribe_all(self, connection: Connection) -> None:
        for channel in list(connection.channels):
            if channel in PRIVATE_CHANNELS and connection.principal is not None:
                self.private.get((connection.principal.user_id, channel), set()).discard(connection)
            else:
                self.public.get(channel, set()).discard(connection)
        connection.channels.clear()

    async def close(self) -> None:
        for task in [*self._bus_tasks, *self._resyncs]:
            task.cancel()
        for task in [*self._bus_tasks, *self._resyncs]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._bus_tasks = []
        if self._bus is not None:
            with contextlib.suppress(Exception):
                await self._bus.close()
        if self._http is not None:
            await self._http.aclose()
        for connection in list(self.connections):
            connection.closing = True
            connection.close_code = 1001
            with contextlib.suppress(asyncio.QueueFull):
                connection.queue.put_nowait(None)

    # ---- one connection ---------------------------------------------------------------------------

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.start_bus()
        connection = Connection(websocket, self.max_queue)
        self.connections.add(connection)
        WS_CONNECTIONS.inc()
        writer = asyncio.create_task(self._writer(connection))
        heartbeat = asyncio.create_task(self._heartbeat(connection))
        tasks: set[asyncio.Task[None]] = set()
        try:
            headers = websocket.headers
            if headers.get("authorization") or headers.get("x-api-key"):
                with contextlib.suppress(ApiError):
                    connection.principal = await self.gateway.auth.authenticate(
                        headers.get("authorization"), headers.get("x-api-key")
                    )
            while not connection.closing:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                raw = message.get("text")
                if raw is None:
                    raw_bytes = message.get("bytes")
                    raw = raw_bytes.decode("utf-8", "replace") if raw_bytes is not None else ""
                await self._handle(connection, raw, tasks)
        except WebSocketDisconnect:
            pass
        finally:
            self.drop(connection)
            WS_CONNECTIONS.dec()
            heartbeat.cancel()
            for task in list(tasks):
                task.cancel()
            if not connection.closing:
                connection.closing = True
                with contextlib.suppress(asyncio.QueueFull):
                    connection.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer, 5.0)

    async def _writer(self, connection: Connection) -> None:
        websocket = connection.websocket
        try:
            while True:
                text = await connection.queue.get()
                if text is None:
                    break
                await websocket.send_text(text)
        except Exception:  # the peer went away; the reader sees the disconnect
            connection.closing = True
        if connection.close_code != 1000 or connection.closing:
            with contextlib.suppress(Exception):
                reason = "slow consumer" if connection.close_code == CLOSE_SLOW_CONSUMER else ""
                await websocket.close(code=connection.close_code, reason=reason)

    async def _heartbeat(self, connection: Connection) -> None:
        while not connection.closing:
            await asyncio.sleep(self.heartbeat_seconds)
            connection.send_json({"op": "heartbeat", "seq": self.gateway.service.runner.durable_seq})

    async def _handle(self, connection: Connection, raw: str, tasks: set[asyncio.Task[None]]) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            connection.send_json(
                {"op": "error", "code": Code.INVALID_REQUEST.value, "message": "malformed JSON"}
            )
            return
        if not isinstance(message, dict):
            connection.send_json(
                {"op": "error", "code": "invalid_request", "message": "expected a JSON object"}
            )
            return
        op = message.get("op")
        if op == "ping":
            connection.send_json({"op": "pong"})
        elif op == "auth":
            await self._auth(connection, message)
        elif op in ("subscribe", "unsubscribe"):
            channels = message.get("channels")
            if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
                connection.send_json(
                    {
                        "op": "error",
                        "code": "invalid_request",
                        "message": "channels must be a list of strings",
                    }
                )
                return
            if op == "subscribe":
                await self.learn_markets(channels)
                self.subscribe(connection, channels)
            else:
                self.unsubscribe(connection, channels)
        elif op in ("order", "cancel"):
            task = asyncio.create_task(self._trade_op(connection, op, message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            connection.send_json({"op": "error", "code": "invalid_request", "message": f"unknown op {op!r}"})

    async def _auth(self, connection: Connection, message: dict[str, Any]) -> None:
        token = message.get("token")
        api_key = message.get("api_key")
        try:
            principal = await self.gateway.auth.authenticate(
                f"Bearer {token}" if isinstance(token, str) and token else None,
                api_key if isinstance(api_key, str) else None,
            )
        except ApiError as error:
            connection.send_json({"op": "error", "code": error.code.value, "message": error.detail})
            return
        if connection.principal is not None and connection.principal.user_id != principal.user_id:
            self.unsubscribe_all(connection)
        connection.principal = principal
        connection.send_json({"op": "authenticated", "user_id": principal.user_id, "role": principal.role})

    async def _trade_op(self, connection: Connection, op: str, message: dict[str, Any]) -> None:
        ref = message.pop("id", None)
        message.pop("op", None)
        reply: dict[str, Any] = {"op": op}
        if ref is not None:
            reply["id"] = ref
        principal = connection.principal
        try:
            if principal is None:
                raise ApiError(Code.UNAUTHORIZED, "auth first")
            self.gateway.limiter.check(principal.limiter_key)
            # the connection's id and the client's message id: traceable from either side
            connection.messages += 1
            correlation = f"ws-{connection.id}-{ref if ref is not None else connection.messages}"
            if op == "order":
                try:
                    body = OrderCreate.model_validate(message)
                except ValidationError as error:
                    first = error.errors()[0]
                    where = ".".join(str(p) for p in first.get("loc", ()))
                    raise ApiError(Code.INVALID_ORDER, f"{where}: {first.get('msg')}") from None
                data, status = await place_order(self.gateway, principal, body, correlation, transport="ws")
            else:
                order_id = message.get("order_id")
                if isinstance(order_id, str) and order_id.isdigit():
                    order_id = int(order_id)
                if not isinstance(order_id, int) or isinstance(order_id, bool):
                    raise ApiError(Code.INVALID_REQUEST, "order_id is required")
                order = self.gateway.engine.orders.get(order_id)
                if order is None:
                    raise ApiError(Code.CONFLICT, f"order {order_id} is not open")
                account = self.gateway.account(principal, order.account_id)
                await self.gateway.execute(
                    CancelOrder(order_id=order_id, account_id=account.account_id, correlation_id=correlation)
                )
                market = self.gateway.engine.markets[order.market]
                data = convert.order_from_engine(order, market.spec, self.gateway.quote_places(market))
                status = 200
            reply["status"] = status
            reply["data"] = data
        except ApiError as error:
            reply = {"op": "error", "code": error.code.value, "message": error.detail, "request": op}
            if ref is not None:
                reply["id"] = ref
        except TradehallError as error:
            reply = {"op": "error", "code": error.code.value, "message": error.detail, "request": op}
            if ref is not None:
                reply["id"] = ref
        connection.send_json(reply)


def _candle(bar: Any, spec: Any) -> dict[str, Any]:
    return {
        "t": convert.rfc3339_ns(bar.start),
        "open": decimal_str(decimal_of(bar.open, spec.tick_size)),
        "high": decimal_str(decimal_of(bar.high, spec.tick_size)),
        "low": decimal_str(decimal_of(bar.low, spec.tick_size)),
        "close": decimal_str(decimal_of(bar.close, spec.tick_size)),
        "volume": decimal_str(decimal_of(bar.volume, spec.lot_size)),
    }


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    hub: WebSocketHub = websocket.app.state.hub
    await hub.serve(websocket)
