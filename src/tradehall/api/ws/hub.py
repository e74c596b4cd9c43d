"""The WebSocket hub: subscriptions, fan-out of engine and bus events, the protocol, a socket's life.

Over 400 lines: the hub is the one registry of connections, channels, users and addresses, and the
code that changes it (subscriptions, credentials, a socket's life) stays beside it, so every index is
updated in one place. The mixins beside it share that registry: `fanout`
(durable records to subscribers) with `private` (the private channels' REST objects), `bus_source`
(the bus instead of this process's engine), `protocol` (the client's requests); `connection`,
`snapshots` and `expiry` stand alone.

Protocol (docs/api.md): client ops `auth`, `subscribe`, `unsubscribe`, `ping`, `order` (the POST /orders
body), `cancel` ({"order_id"}), each with an optional `id` that its reply echoes; server ops
`authenticated`, `subscribed`, `unsubscribed`, `error`, `pong`, `order`, `cancel`, `heartbeat`, and
data messages `{"channel", "type": "snapshot"|"update", "sequence", "data"}` (`event` too on an
`orders` update), whose `data` is the REST object of the channel.

`book:SYM` sends a snapshot of the engine's book and then one update per `BookChanged` event, whose
`sequence` is the engine's per-market book counter (the REST book's `sequence`). The snapshot may
already include changes whose records are not durable yet; updates up to the snapshot's sequence are
skipped, so the first update is always snapshot + 1. Other channels use the journal record's seq.

The loop that serves sockets also runs the engine, so nothing a client sends may cost unbounded work:
a message is at most `ws_max_message_bytes`, names at most `ws_max_channels_per_message` channels
(repeats count once), a connection holds at most `ws_max_subscriptions`, and a snapshot is built once
per book sequence and shared (`snapshots`). Each connection's outbound queue is bounded in messages
and bytes, and every send in time: a client that does not read is closed with 1013, its queue
dropped at once, and when even the close cannot be written, its transport is aborted. Connections are
capped per address and per user. Credentials are re-checked on every private operation: a deleted
key (the authenticator's revocation listeners) or an expired token (`expiry`) ends the socket's
private subscriptions and refuses later private operations with `unauthorized`; public channels stay.

With `TRADEHALL_WS_SOURCE=bus` the `book:` and `trades:` channels are fed from the event bus
(`trades.*`, `market-data.book-ticks`; a consumer name of its own per process, so every gateway sees
every message; duplicates dropped by seq) instead of this process's runner, so gateway processes
without the engine can serve clients of one engine. Book snapshots then come from the engine's
`GET /markets/{symbol}/book` at `TRADEHALL_ENGINE_URL` (this process's engine when unset), one fetch
per market at a time shared by every connection waiting for it; the hub keeps the last deltas per
market to replay those the bus delivered before the snapshot arrived, and a gap in a connection's
book sequence resyncs it with a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, cast

import orjson
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tradehall.api import convert
from tradehall.api.auth import Principal
from tradehall.api.gateway import Gateway
from tradehall.api.login_throttle import Tarpit
from tradehall.api.metrics import WS_CONNECTIONS
from tradehall.api.ratelimit import TokenBucketLimiter
from tradehall.api.ws.bus_source import BusSource
from tradehall.api.ws.connection import (
    ADMIN_CHANNELS,
    BOOK_DEPTH,
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TOO_BIG,
    PRIVATE_CHANNELS,
    PUBLIC_KINDS,
    Connection,
    RequestId,
)
from tradehall.api.ws.expiry import ExpiryWatch
from tradehall.api.ws.fanout import RecordFanout, candle_dict
from tradehall.api.ws.protocol import WS_CLOSED, RequestHandler, error_message
from tradehall.api.ws.snapshots import SnapshotCache, data_message
from tradehall.domain.errors import Code
from tradehall.engine import views

log = structlog.get_logger(__name__)

router = APIRouter()

HEARTBEAT_SECONDS = 15.0


def _abort_of(websocket: WebSocket) -> Callable[[], None] | None:
    """The socket's transport's `abort`, to drop a connection whose close frame cannot be written.

    ASGI does not expose the transport; uvicorn's `send` is a bound method of its protocol, which
    holds it (an asyncio or a uvloop transport: duck-typed), and Starlette wraps that `send` in
    closures. Best effort: None under another server.
    """
    todo: list[Any] = [getattr(websocket, "_send", None)]
    seen: set[int] = set()
    while todo and len(seen) < 32:
        candidate = todo.pop()
        if candidate is None or id(candidate) in seen:
            continue
        seen.add(id(candidate))
        transport = getattr(getattr(candidate, "__self__", None), "transport", None)
        abort = getattr(transport, "abort", None)
        if callable(abort):
            return cast(Callable[[], None], abort)
        for cell in getattr(candidate, "__closure__", None) or ():
            with contextlib.suppress(ValueError):
                if callable(cell.cell_contents):
                    todo.append(cell.cell_contents)
    return None


class WebSocketHub(RecordFanout, BusSource, RequestHandler):
    def __init__(
        self,
        gateway: Gateway,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self.heartbeat_seconds = heartbeat_seconds
        settings = gateway.settings
        self.max_subscriptions = settings.ws_max_subscriptions
        self.max_queue = settings.ws_send_queue
        self.max_queue_bytes = settings.ws_send_queue_bytes
        self.send_timeout = settings.ws_send_timeout_seconds
        self.max_message_bytes = settings.ws_max_message_bytes
        self.max_channels_per_message = settings.ws_max_channels_per_message
        self.max_per_ip = settings.ws_max_connections_per_ip
        self.max_per_user = settings.ws_max_connections_per_user
        # a reconnect loop (connect, misbehave, get closed, connect again) is refused at the handshake
        rate = settings.ws_connects_per_second_per_ip
        self.connects = TokenBucketLimiter(rate, max(1, int(2 * rate)))
        # ... after a pause (a sleeping coroutine, no CPU), so a loop that reconnects at once slows down
        self.refusal_pause = Tarpit(1.0)
        self.connections: set[Connection] = set()
        self.public: dict[str, set[Connection]] = {}
        self.private: dict[tuple[str, str], set[Connection]] = {}
        self.by_ip: dict[str, int] = {}
        self.by_user: dict[str, set[Connection]] = {}
        self.snapshots = SnapshotCache()
        self.expiry = ExpiryWatch(self._expired, clock)
        self.alerts_firing: Callable[[], list[dict[str, Any]]] | None = None
        """The alerts firing now (the `alerts` channel's snapshot), set by the app when a monitor runs."""
        self.alert_sequence = 0
        self.slow_consumers = 0
        """Connections closed for not reading (tests and logs)."""
        self.aborted = 0
        """Connections whose transport was aborted: not even a close frame could be written."""
        self._init_bus_source()
        self._init_private()
        auth = getattr(gateway, "auth", None)
        if auth is not None:
            auth.revocation_listeners.append(self.on_revoked)
        with contextlib.suppress(RuntimeError):  # created on the loop (the app's lifespan): subscribe now
            asyncio.get_running_loop()
            self.start_bus()

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in every connection's outbound queue."""
        return sum(connection.queued_bytes for connection in self.connections)

    # ---- subscriptions ----------------------------------------------------------------------------

    def _validate_channel(self, connection: Connection, channel: str) -> tuple[Code, str] | None:
        """None when `channel` may be subscribed, else the error's code and message."""
        if channel in PRIVATE_CHANNELS or channel in ADMIN_CHANNELS:
            principal = self._principal(connection)
            if principal is None:
                return Code.UNAUTHORIZED, f"{channel} needs auth first"
            if channel in ADMIN_CHANNELS and not principal.is_admin:
                return Code.FORBIDDEN, f"{channel} is for admins"
            return None
        kind, _, rest = channel.partition(":")
        if kind not in PUBLIC_KINDS or not rest:
            return Code.INVALID_REQUEST, f"unknown channel {channel[:100]!r}"
        symbol = rest
        if kind == "candles":
            symbol, _, interval = rest.rpartition(":")
            if interval not in ("1m", "5m", "15m", "1h", "1d") or not symbol:
                return Code.INVALID_REQUEST, f"unknown channel {channel[:100]!r}"
        remote = self.from_bus and kind in ("book", "trades") and symbol in self._remote_markets
        if not views.has_market(self.gateway.engine, symbol) and not remote:
            return Code.NOT_FOUND, f"market {symbol[:100]} not found"
        return None

    def _too_many_channels(self, connection: Connection, channels: list[str], ref: RequestId | None) -> bool:
        if len(channels) <= self.max_channels_per_message:
            return False
        message = f"at most {self.max_channels_per_message} channels per message"
        connection.reply(error_message(Code.INVALID_REQUEST, message), ref)
        return True

    async def subscribe(
        self, connection: Connection, channels: list[str], ref: RequestId | None = None
    ) -> None:
        """Repeats count once; each new channel gets its snapshot right after it is registered."""
        if self._too_many_channels(connection, channels, ref):
            return
        await self.learn_markets(channels)
        accepted: list[str] = []
        new = 0
        for channel in dict.fromkeys(channels):
            if connection.closing:
                return
            if channel in connection.channels:
                accepted.append(channel)
                continue
            problem = self._validate_channel(connection, channel)
            if problem is not None:
                code, message = problem
                connection.reply(error_message(code, message, channel=channel), ref)
                continue
            if len(connection.channels) + new >= self.max_subscriptions:
                message = f"subscription limit of {self.max_subscriptions} channels reached"
                connection.reply(error_message(Code.INVALID_REQUEST, message, channel=channel), ref)
                continue
            new += 1
            accepted.append(channel)
        connection.reply({"op": "subscribed", "channels": accepted}, ref)
        for channel in accepted:
            if connection.closing:
                return
            if (channel in PRIVATE_CHANNELS or channel in ADMIN_CHANNELS) and connection.principal is None:
                # revoked while an earlier snapshot yielded
                connection.send_json({"op": "unsubscribed", "channels": [channel], "reason": "unauthorized"})
                continue
            # registered and snapshotted with no await between: no update can come before its snapshot
            self._register(connection, channel)
            self._snapshot(connection, channel)
            await asyncio.sleep(0)  # the engine's loop: let orders in between two snapshots

    def _register(self, connection: Connection, channel: str) -> None:
        connection.channels.add(channel)
        if channel in PRIVATE_CHANNELS:
            assert connection.principal is not None
            self.private.setdefault((connection.principal.user_id, channel), set()).add(connection)
        else:
            self.public.setdefault(channel, set()).add(connection)

    def _snapshot(self, connection: Connection, channel: str) -> None:
        durable = self.gateway.service.runner.durable_seq
        kind, _, rest = channel.partition(":")
        if kind == "book" and self.from_bus:
            self._send_book_snapshot(connection, rest)
        elif kind == "book":
            sequence = self.gateway.market(rest).book_sequence
            connection.book_sequence[rest] = sequence
            connection.push(
                self.snapshots.get(
                    channel,
                    BOOK_DEPTH,
                    sequence,
                    lambda: convert.book_dict(self.gateway.book(rest, BOOK_DEPTH)),
                )
            )
        elif kind == "ticker":
            data = convert.ticker_dict(self.gateway.market(rest), self.gateway.volumes.volume(rest))
            connection.push(data_message(channel, "snapshot", durable, data))
        elif kind == "candles":
            symbol, _, interval = rest.rpartition(":")
            spec = self.gateway.spec(symbol)

            def candles() -> list[dict[str, Any]]:  # the latest 100, oldest first like REST
                latest = self.gateway.candles.bars(symbol, interval)[:100]
                return [candle_dict(bar, spec) for bar in reversed(latest)]

            connection.push(self.snapshots.get(channel, 100, durable, candles))
        elif channel in PRIVATE_CHANNELS and connection.principal is not None:
            self.private_snapshot(connection, channel, durable)
        elif channel == "alerts":
            firing = self.alerts_firing() if self.alerts_firing is not None else []
            connection.push(data_message(channel, "snapshot", self.alert_sequence, firing))

    def publish_alert(self, alert: dict[str, Any]) -> None:
        """An alert fired or resolved: an `alerts` update to every admin subscribed (sequence counts
        the alert messages of this process; the snapshot is the alerts firing)."""
        self.alert_sequence += 1
        subscribers = self.public.get("alerts")
        if not subscribers:
            return
        text = data_message("alerts", "update", self.alert_sequence, alert)
        for connection in list(subscribers):
            principal = self._principal(connection)
            if principal is not None and principal.is_admin:
                connection.push(text)

    def unsubscribe(self, connection: Connection, channels: list[str], ref: RequestId | None = None) -> None:
        if self._too_many_channels(connection, channels, ref):
            return
        removed = [channel for channel in dict.fromkeys(channels) if channel in connection.channels]
        for channel in removed:
            self._unregister(connection, channel)
        connection.reply({"op": "unsubscribed", "channels": removed}, ref)

    def _unregister(self, connection: Connection, channel: str) -> None:
        connection.channels.discard(channel)
        if channel in PRIVATE_CHANNELS:
            if connection.principal is not None:
                key = (connection.principal.user_id, channel)
                targets = self.private.get(key)
                if targets is not None:
                    targets.discard(connection)
                    if not targets:
                        del self.private[key]
            return
        subscribers = self.public.get(channel)
        if subscribers is not None:
            subscribers.discard(connection)
            if not subscribers:
                del self.public[channel]
        if channel.startswith("book:"):
            connection.book_sequence.pop(channel[5:], None)

    def unsubscribe_all(self, connection: Connection) -> None:
        for channel in list(connection.channels):
            self._unregister(connection, channel)

    # ---- credentials ------------------------------------------------------------------------------

    def _principal(self, connection: Connection) -> Principal | None:
        """Who may do private things on `connection` now: checked on every private operation."""
        if connection.principal is not None and self.expiry.expired(connection):
            self.revoke(connection)
        return connection.principal

    def revoke(self, connection: Connection, reason: str = "unauthorized") -> None:
        """End the private subscriptions (the client is told which) and forget the principal."""
        ended = [c for c in (*PRIVATE_CHANNELS, *ADMIN_CHANNELS) if c in connection.channels]
        for channel in ended:
            self._unregister(connection, channel)
        self._set_principal(connection, None)
        if ended:
            connection.send_json({"op": "unsubscribed", "channels": ended, "reason": reason})

    def on_revoked(self, user_id: str, key_id: str | None) -> None:
        """The authenticator's revocation listener: a deleted key, or a disabled user (key_id None)."""
        for connection in list(self.by_user.get(user_id, ())):
            principal = connection.principal
            if principal is not None and (key_id is None or principal.key_id == key_id):
                log.info("ws_credentials_revoked", connection=connection.id, user=user_id, key=key_id)
                self.revoke(connection)

    def _expired(self, connection: Connection) -> None:
        if connection.principal is not None:
            log.info("ws_token_expired", connection=connection.id, user=connection.principal.user_id)
            self.revoke(connection)

    def _set_principal(
        self, connection: Connection, principal: Principal | None, expires_at: float | None = None
    ) -> None:
        previous = connection.principal
        if previous is not None and (principal is None or previous.user_id != principal.user_id):
            users = self.by_user.get(previous.user_id)
            if users is not None:
                users.discard(connection)
                if not users:
                    del self.by_user[previous.user_id]
        connection.principal = principal
        if principal is not None:
            self.by_user.setdefault(principal.user_id, set()).add(connection)
        if expires_at is None:
            self.expiry.unwatch(connection)
        else:
            self.expiry.watch(connection, expires_at)

    # ---- one connection ---------------------------------------------------------------------------

    def release(self, connection: Connection) -> None:
        """No more work for `connection`: out of every channel and index (idempotent)."""
        self.unsubscribe_all(connection)
        self._set_principal(connection, None)

    async def close(self) -> None:
        await self._close_bus_source()
        await self._close_private()
        await self.expiry.close()
        for connection in list(self.connections):
            connection.finish(CLOSE_GOING_AWAY)

    async def admit(self, websocket: WebSocket) -> str | None:
        """Accept `websocket` within its address's limits and count it there: its address, or None when
        refused (a reconnect loop at the handshake, HTTP 403; one socket too many with `rate_limited` and
        1008). Every WebSocket endpoint (`/ws`, `/alpaca/stream`) is admitted here, so the limits of one
        address hold over all of them; `leave` gives the place back."""
        ip = websocket.client.host if websocket.client is not None else "unknown"
        wait = self.connects.take(ip)
        if wait > 0:
            WS_CLOSED.labels(reason="connects_per_ip").inc()
            await self.refusal_pause.hold(wait)
            await websocket.close(code=1008)  # before accept: the handshake is answered 403
            return None
        await websocket.accept()
        if self.by_ip.get(ip, 0) >= self.max_per_ip:
            WS_CLOSED.labels(reason="connections_per_ip").inc()
            await self._refuse(websocket, f"at most {self.max_per_ip} WebSocket connections per address")
            return None
        self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        return ip

    def leave(self, ip: str) -> None:
        """An admitted socket of `ip` ended."""
        left = self.by_ip.get(ip, 1) - 1
        if left > 0:
            self.by_ip[ip] = left
        else:
            self.by_ip.pop(ip, None)

    def frame_too_big(self, raw: str | bytes) -> str | None:
        """Why a client frame is refused for its size (the socket is then closed with 1009), or None."""
        if len(raw) <= self.max_message_bytes:
            return None
        WS_CLOSED.labels(reason="message_too_big").inc()
        return f"a message may carry at most {self.max_message_bytes} bytes"

    async def serve(self, websocket: WebSocket) -> None:
        ip = await self.admit(websocket)
        if ip is None:
            return
        self.start_bus()
        self.expiry.start()
        connection = Connection(
            websocket, self.max_queue, max_bytes=self.max_queue_bytes, ip=ip, on_fail=self.release
        )
        self.connections.add(connection)
        WS_CONNECTIONS.inc()
        writer = asyncio.create_task(self._writer(connection))
        heartbeat = asyncio.create_task(self._heartbeat(connection))
        tasks: set[asyncio.Task[None]] = set()
        try:
            headers = websocket.headers
            if headers.get("authorization") or headers.get("x-api-key"):
                await self._authenticate(
                    connection, headers.get("authorization"), headers.get("x-api-key"), None
                )
            while not connection.closing:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                raw: str | bytes | None = message.get("text")
                if raw is None:
                    raw = message.get("bytes") or b""
                message_text = self.frame_too_big(raw)
                if message_text is not None:
                    connection.send_json(error_message(Code.PAYLOAD_TOO_LARGE, message_text))
                    connection.finish(CLOSE_TOO_BIG, "message too big")
                    break
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                await self._handle(connection, text, tasks)
        except WebSocketDisconnect:
            pass
        finally:
            self.release(connection)
            self.connections.discard(connection)
            self.leave(ip)
            WS_CONNECTIONS.dec()
            heartbeat.cancel()
            for task in list(tasks):
                task.cancel()
            connection.finish(connection.close_code)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer, 2 * self.send_timeout + 1.0)

    async def _refuse(self, websocket: WebSocket, message: str) -> None:
        with contextlib.suppress(Exception):
            text = orjson.dumps(error_message(Code.RATE_LIMITED, message)).decode()
            await asyncio.wait_for(websocket.send_text(text), self.send_timeout)
            await asyncio.wait_for(websocket.close(CLOSE_POLICY, "too many connections"), self.send_timeout)

    async def _writer(self, connection: Connection) -> None:
        """Sends what is queued, each send within `send_timeout`: one deadline per wake-up, moved on
        after every message (not a `wait_for`, a task, per message)."""
        websocket = connection.websocket
        queue = connection.queue
        loop = asyncio.get_running_loop()
        stuck = False
        try:
            text = await queue.get()
            while text is not None:
                async with asyncio.timeout(self.send_timeout) as deadline:
                    while text is not None:
                        connection.taken(text)
                        await websocket.send_text(text)
                        if queue.empty():
                            break
                        text = queue.get_nowait()
                        deadline.reschedule(loop.time() + self.send_timeout)
                if text is not None:
                    text = await queue.get()
        except TimeoutError:  # the peer's window stayed shut for a whole timeout: it does not read
            stuck = True
            connection.fail(CLOSE_SLOW_CONSUMER, "slow consumer")
        except Exception:  # the peer went away; the reader sees the disconnect
            connection.closing = True
            return
        if connection.close_code == CLOSE_SLOW_CONSUMER:
            self.slow_consumers += 1
            WS_CLOSED.labels(reason="slow_consumer").inc()
            log.info("ws_slow_consumer", connection=connection.id, stuck=stuck)
        if not stuck:
            try:
                await asyncio.wait_for(
                    websocket.close(code=connection.close_code, reason=connection.close_reason),
                    self.send_timeout,
                )
                return
            except TimeoutError:
                pass
            except Exception:
                return
        # not even a close frame fits: drop the TCP connection, and with it the bytes it holds
        abort = _abort_of(websocket)
        if abort is not None:
            abort()
            self.aborted += 1
            log.info("ws_transport_aborted", connection=connection.id)
        else:
            log.warning("ws_abort_unavailable", connection=connection.id)

    async def _heartbeat(self, connection: Connection) -> None:
        while not connection.closing:
            await asyncio.sleep(self.heartbeat_seconds)
            connection.send_json({"op": "heartbeat", "seq": self.gateway.service.runner.durable_seq})


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    hub: WebSocketHub = websocket.app.state.hub
    await hub.serve(websocket)
