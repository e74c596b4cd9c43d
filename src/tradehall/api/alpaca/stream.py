"""Alpaca's `trade_updates` stream at `/alpaca/stream`.

The conversation Alpaca documents: the client sends `{"action": "authenticate", "data": {"key_id",
"secret_key"}}` and gets `{"stream": "authorization", "data": {"action": "authenticate", "status":
"authorized"}}` (or `"unauthorized"`, then the socket closes); it sends `{"action": "listen", "data":
{"streams": ["trade_updates"]}}` and gets `{"stream": "listening", "data": {"streams": [...]}}`; then
every change of its account's orders arrives as `{"stream": "trade_updates", "data": {"event", "order",
"timestamp", "execution_id", "position_qty", "price", "qty"}}` with `event` one of `new`, `fill`,
`partial_fill`, `canceled`, `expired`, `replaced`, `rejected`.

Frames: like Alpaca, the server sends binary frames. A client that speaks JSON (text or binary frames)
gets JSON; a client whose frames are MessagePack gets MessagePack (the same objects).

Abuse: the socket is admitted by the native `/ws` hub (`WebSocketHub.admit`), so the same settings bound
it and one address's sockets count over both endpoints: `ws_connects_per_second_per_ip` (a reconnect
loop is refused at the handshake, 403), `ws_max_connections_per_ip` (one more gets `rate_limited` and
1008), `ws_max_message_bytes` (a bigger frame: 1009). A socket that has not authenticated within
`ws_auth_timeout_seconds` gets `{"stream": "error", "data": {"error": "auth timeout"}}` and 1008.

Updates are taken from the durable journal records (the runner's listener, like the native `/ws`), in
journal order per socket. `order` is the order as `GET /v2/orders/{id}` answers when the update is
sent (read after a read barrier), with the status the event names; `position_qty` is the base asset
held after the record. A socket of a deleted key is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
import structlog
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tradehall.api.alpaca.context import AlpacaSurface
from tradehall.api.alpaca.ids import NAMESPACE, execution_uuid
from tradehall.api.alpaca.shapes import order_out
from tradehall.api.auth import Principal
from tradehall.api.convert import rfc3339_ns
from tradehall.api.errors import ApiError
from tradehall.api.ws.hub import WebSocketHub
from tradehall.api.ws.private import order_view
from tradehall.domain.enums import Liquidity, OrderStatus
from tradehall.domain.events import (
    BalanceChanged,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from tradehall.domain.fixedpoint import amount_of, decimal_of, decimal_str
from tradehall.engine import views
from tradehall.journal.records import JournalRecord

log = structlog.get_logger(__name__)

MAX_QUEUE = 10_000
"""Updates waiting for one socket; a client that lets more pile up is disconnected."""


@dataclass(frozen=True, slots=True)
class Update:
    """One trade update to build and send."""

    event: str
    order_id: int | None
    account_id: str
    market: str
    ts: int
    price: str | None = None
    qty: str | None = None
    execution_id: str | None = None
    position_qty: str | None = None
    rejected: OrderRejected | None = None


class Listener:
    """One authorised socket that listens to `trade_updates`."""

    def __init__(self, websocket: WebSocket, principal: Principal, account_id: str, msgpack: bool) -> None:
        self.websocket = websocket
        self.principal = principal
        self.account_id = account_id
        self.msgpack = msgpack
        self.queue: asyncio.Queue[Update | None] = asyncio.Queue()
        self.closed = False


class TradeUpdates:
    """The journal's order events -> the `trade_updates` of the sockets listening to their account."""

    def __init__(self, surface: AlpacaSurface) -> None:
        self.surface = surface
        self.listeners: dict[str, set[Listener]] = {}
        surface.gateway.auth.revocation_listeners.append(self.on_revoked)

    # ---- from the runner --------------------------------------------------------------------------

    def on_records(self, records: Sequence[JournalRecord]) -> None:
        if not self.listeners:
            return
        for record in records:
            updates = self._updates(record)
            for update in updates:
                for listener in self.listeners.get(update.account_id, ()):
                    if listener.queue.qsize() >= MAX_QUEUE:
                        listener.closed = True
                        listener.queue.put_nowait(None)
                        continue
                    listener.queue.put_nowait(update)

    def _updates(self, record: JournalRecord) -> list[Update]:
        listened = self.listeners
        gateway = self.surface.gateway
        found: list[Update] = []
        balances: dict[tuple[str, str], int] = {}
        for event in record.events:
            if isinstance(event, BalanceChanged) and event.account_id in listened:
                balances[(event.account_id, event.currency)] = event.total
        for event in record.events:
            account_id = getattr(event, "account_id", None)
            if account_id is None or account_id not in listened:
                continue
            if isinstance(event, OrderAccepted):
                found.append(Update("new", event.order_id, account_id, event.market, event.ts))
            elif isinstance(event, OrderFilled):
                spec = gateway.spec(event.market)
                held = balances.get((account_id, spec.base))
                if held is None:
                    account = views.account(gateway.engine, account_id)
                    balance = None if account is None else account.balance(spec.base)
                    held = 0 if balance is None else balance.total
                places = views.currency_places(gateway.engine, spec.base)
                taker = event.liquidity is Liquidity.TAKER
                found.append(
                    Update(
                        "fill" if event.status is OrderStatus.FILLED else "partial_fill",
                        event.order_id,
                        account_id,
                        event.market,
                        event.ts,
                        price=decimal_str(decimal_of(event.price, spec.tick_size)),
                        qty=decimal_str(decimal_of(event.quantity, spec.lot_size)),
                        execution_id=execution_uuid(event.trade_id * 2 + (1 if taker else 0)),
                        position_qty=decimal_str(amount_of(held, places).normalize()),
                    )
                )
            elif isinstance(event, OrderCancelled):
                found.append(Update("canceled", event.order_id, account_id, event.market, event.ts))
            elif isinstance(event, OrderExpired):
                found.append(Update("expired", event.order_id, account_id, event.market, event.ts))
            elif isinstance(event, OrderAmended):
                found.append(Update("replaced", event.order_id, account_id, event.market, event.ts))
            elif isinstance(event, OrderRejected):
                found.append(Update("rejected", None, account_id, event.market, event.ts, rejected=event))
        return found

    def on_revoked(self, user_id: str, key_id: str | None) -> None:
        for listeners in self.listeners.values():
            for listener in listeners:
                principal = listener.principal
                if principal.user_id == user_id and (key_id is None or principal.key_id == key_id):
                    listener.closed = True
                    listener.queue.put_nowait(None)

    # ---- building an update ---------------------------------------------------------------------

    async def build(self, update: Update) -> dict[str, Any] | None:
        surface = self.surface
        asset = surface.assets.of_market(surface.gateway, update.market)
        if asset is None:
            return None
        if update.rejected is not None:
            order = _rejected_order(update.rejected, asset.symbol, asset.asset_id)
        else:
            assert update.order_id is not None
            native = await order_view(surface.gateway, update.order_id)
            if native is None:
                return None
            order = order_out(native, asset.symbol, asset.asset_id)
            if update.event == "new" and order["status"] in ("filled", "partially_filled"):
                order["status"] = "new"  # as it was when it was accepted
        data: dict[str, Any] = {
            "event": update.event,
            "execution_id": update.execution_id,
            "order": order,
            "timestamp": rfc3339_ns(update.ts),
        }
        if update.event in ("fill", "partial_fill"):
            data.update(position_qty=update.position_qty, price=update.price, qty=update.qty)
        return {"stream": "trade_updates", "data": data}

    # ---- a socket ---------------------------------------------------------------------------------

    async def serve(self, websocket: WebSocket, hub: WebSocketHub) -> None:
        """One socket, admitted by the native hub (its per-address limits, frame size) and closed when
        it has not authenticated within `ws_auth_timeout_seconds`."""
        ip = await hub.admit(websocket)
        if ip is None:
            return
        try:
            await self._converse(websocket, hub)
        finally:
            hub.leave(ip)

    async def _converse(self, websocket: WebSocket, hub: WebSocketHub) -> None:
        listener: Listener | None = None
        principal: Principal | None = None
        account_id = ""
        msgpack = False
        writer: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        auth_deadline = loop.time() + self.surface.gateway.settings.ws_auth_timeout_seconds
        try:
            while listener is None or not listener.closed:
                if principal is None:
                    try:
                        message = await asyncio.wait_for(websocket.receive(), auth_deadline - loop.time())
                    except TimeoutError:
                        reply = {"stream": "error", "data": {"error": "auth timeout"}}
                        await _send(websocket, reply, msgpack)
                        await websocket.close(code=1008, reason="auth timeout")
                        return
                else:
                    message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                too_big = hub.frame_too_big(message.get("text") or message.get("bytes") or b"")
                if too_big is not None:
                    await _send(websocket, {"stream": "error", "data": {"error": too_big}}, msgpack)
                    await websocket.close(code=1009, reason="message too big")
                    return
                decoded = _decode(message)
                if decoded is None:
                    await _send(websocket, {"stream": "error", "data": {"error": "invalid syntax"}}, msgpack)
                    continue
                body, msgpack = decoded
                action = body.get("action")
                raw_data = body.get("data")
                data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
                if action in ("authenticate", "auth"):
                    principal, account_id = await self._authenticate(body, data)
                    if principal is None:
                        reply = {
                            "stream": "authorization",
                            "data": {"action": "authenticate", "status": "unauthorized"},
                        }
                        await _send(websocket, reply, msgpack)
                        await websocket.close(code=1008)
                        return
                    reply = {
                        "stream": "authorization",
                        "data": {"action": "authenticate", "status": "authorized"},
                    }
                    await _send(websocket, reply, msgpack)
                elif action == "listen":
                    if principal is None:
                        reply = {
                            "stream": "authorization",
                            "data": {"action": "listen", "status": "unauthorized"},
                        }
                        await _send(websocket, reply, msgpack)
                        continue
                    raw_streams = data.get("streams")
                    streams: list[Any] = raw_streams if isinstance(raw_streams, list) else []
                    wanted = [name for name in streams if name == "trade_updates"]
                    if wanted and listener is None:
                        listener = Listener(websocket, principal, account_id, msgpack)
                        self.listeners.setdefault(account_id, set()).add(listener)
                        writer = asyncio.create_task(self._writer(listener))
                    elif not wanted and listener is not None:
                        self._drop(listener)
                        listener.queue.put_nowait(None)
                        listener = None
                    await _send(websocket, {"stream": "listening", "data": {"streams": wanted}}, msgpack)
                else:
                    await _send(websocket, {"stream": "error", "data": {"error": "invalid action"}}, msgpack)
        except WebSocketDisconnect:
            pass
        finally:
            if listener is not None:
                self._drop(listener)
                listener.queue.put_nowait(None)
            if writer is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(writer, 5)
            if listener is not None and listener.closed:
                with contextlib.suppress(Exception):
                    await websocket.close(code=1008)

    async def _authenticate(self, body: dict[str, Any], data: dict[str, Any]) -> tuple[Principal | None, str]:
        key_id = data.get("key_id", body.get("key"))
        secret = data.get("secret_key", body.get("secret"))
        if not isinstance(key_id, str) or not isinstance(secret, str):
            return None, ""
        try:
            principal = await self.surface.authenticate(key_id, secret)
            return principal, await self.surface.account_id(principal)
        except ApiError:
            return None, ""

    def _drop(self, listener: Listener) -> None:
        listeners = self.listeners.get(listener.account_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self.listeners[listener.account_id]

    async def _writer(self, listener: Listener) -> None:
        while True:
            update = await listener.queue.get()
            if update is None:
                if listener.closed:  # revoked, or too far behind: the reader learns of it by the close
                    with contextlib.suppress(Exception):
                        await listener.websocket.close(code=1008)
                return
            try:
                message = await self.build(update)
                if message is not None:
                    await _send(listener.websocket, message, listener.msgpack)
            except Exception as error:  # the socket went away; the reader sees the disconnect
                log.info("alpaca_stream_send_failed", error=repr(error))
                return


def _rejected_order(event: OrderRejected, symbol: str, asset_id: str) -> dict[str, Any]:
    """A refused order was never stored: its update carries what the refusal says of it."""
    stamp = rfc3339_ns(event.ts)
    native = {
        "id": 0,
        "client_order_id": event.client_order_id,
        "market": event.market,
        "side": "",
        "type": "",
        "time_in_force": "gtc",
        "quantity": "0",
        "filled_quantity": "0",
        "status": "rejected",
        "created_at": stamp,
        "updated_at": stamp,
    }
    order = order_out(native, symbol, asset_id)
    # never stored, so no tradehall id: a UUID of its own, stable for the same refusal
    name = f"rejected:{event.account_id}:{event.ts}:{event.client_order_id}"
    order["id"] = str(uuid.uuid5(NAMESPACE, name))
    order["client_order_id"] = event.client_order_id or order["id"]
    order["side"] = order["type"] = order["order_type"] = None
    order["reject_reason"] = event.reason
    return order


def _decode(message: Any) -> tuple[dict[str, Any], bool] | None:
    """A client frame as (object, is MessagePack); None when it is neither JSON nor MessagePack."""
    text = message.get("text")
    raw = message.get("bytes")
    try:
        if text is not None:
            body = orjson.loads(text)
            return (body, False) if isinstance(body, dict) else None
        if raw:
            if raw[:1] in (b"{", b" ", b"\n"):
                body = orjson.loads(raw)
                return (body, False) if isinstance(body, dict) else None
            body = msgspec.msgpack.decode(raw)
            return (body, True) if isinstance(body, dict) else None
    except (orjson.JSONDecodeError, msgspec.DecodeError):
        return None
    return None


async def _send(websocket: WebSocket, message: dict[str, Any], msgpack: bool) -> None:
    await websocket.send_bytes(msgspec.msgpack.encode(message) if msgpack else orjson.dumps(message))


async def stream_endpoint(websocket: WebSocket) -> None:
    updates: TradeUpdates = websocket.app.state.alpaca_updates
    await updates.serve(websocket, websocket.app.state.hub)


STREAM_ROUTE = WebSocketRoute("/alpaca/stream", stream_endpoint)
