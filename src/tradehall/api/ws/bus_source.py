"""`TRADEHALL_WS_SOURCE=bus`: the `book:` and `trades:` channels fed from the event bus.

A mixin of the hub (`WebSocketHub`). The bus (`trades.*`, `market-data.book-ticks`) is read with a
consumer name of its own per process, so every gateway sees every message; duplicates are dropped by
seq. Book snapshots come from the engine's `GET /markets/{symbol}/book` at `TRADEHALL_ENGINE_URL`
(this process's engine when unset), one fetch per market at a time, shared by every connection
waiting for it. The last deltas per market are kept to replay those the bus delivered before the
snapshot arrived, and a gap in a connection's book sequence resyncs it with a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from tradehall.api import convert
from tradehall.api.gateway import Gateway
from tradehall.api.ws.connection import BOOK_DEPTH, Connection, RequestId
from tradehall.api.ws.snapshots import SnapshotCache
from tradehall.api.ws.snapshots import data_message as _data
from tradehall.bus import Deduper, EventBus, StartPosition, create_bus
from tradehall.bus.envelope import Envelope
from tradehall.domain.errors import Code
from tradehall.engine import views

log = structlog.get_logger(__name__)

BOOK_REPLAY_DELTAS = 1000
"""Book deltas kept per market (bus source) to replay after a snapshot that was behind the bus."""
BUS_PATTERNS = ("trades.*", "market-data.book-ticks")
RESYNCING = -1
"""A connection's book sequence while its snapshot is being fetched: deltas wait in the replay buffer."""


class BusSource:
    gateway: Gateway
    public: dict[str, set[Connection]]
    snapshots: SnapshotCache

    def _init_bus_source(self) -> None:
        settings = self.gateway.settings
        self.from_bus = settings.ws_source == "bus"
        self.engine_url = settings.engine_url.rstrip("/") if settings.engine_url else None
        self._bus: EventBus | None = None
        self._bus_tasks: list[asyncio.Task[None]] = []
        self._deduper = Deduper()
        self._recent_book: dict[str, deque[tuple[int, str]]] = {}
        self._remote_markets: set[str] = set()
        self._http: httpx.AsyncClient | None = None
        self._resyncs: set[asyncio.Task[None]] = set()
        self._book_fetches: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self.resyncs = 0
        """Book snapshots fetched after a gap (tests and logs)."""

    if TYPE_CHECKING:  # the hub's

        def unsubscribe(
            self, connection: Connection, channels: list[str], ref: RequestId | None = None
        ) -> None: ...

    async def _close_bus_source(self) -> None:
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
            data = await self._shared_fetch(symbol)
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
        if channel not in connection.channels or connection.closing:
            return
        if symbol in connection.book_snapshots:
            self.resyncs += 1
        connection.book_snapshots.add(symbol)
        sequence = int(data["sequence"])
        connection.push(self.snapshots.get(channel, BOOK_DEPTH, sequence, lambda: data))
        # deltas the bus delivered while the snapshot was on its way
        for delta_sequence, text in self._recent_book.get(symbol, ()):
            if delta_sequence == sequence + 1:
                sequence = delta_sequence
                connection.push(text)
        connection.book_sequence[symbol] = sequence

    async def _shared_fetch(self, symbol: str) -> dict[str, Any]:
        """One fetch per market at a time: every connection that waits for it gets its answer."""
        task = self._book_fetches.get(symbol)
        if task is None:
            task = asyncio.create_task(self._fetch_book(symbol))
            self._book_fetches[symbol] = task
            task.add_done_callback(lambda _: self._book_fetches.pop(symbol, None))
        return await asyncio.shield(task)

    async def _fetch_book(self, symbol: str) -> dict[str, Any]:
        if self.engine_url is None:
            return convert.book_dict(self.gateway.book(symbol, BOOK_DEPTH))
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        response = await self._http.get(
            f"{self.engine_url}/markets/{symbol}/book", params={"depth": BOOK_DEPTH}
        )
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
            if views.has_market(self.gateway.engine, symbol) or symbol in self._remote_markets:
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
