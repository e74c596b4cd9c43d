"""The client's requests on `/ws`: parse, check, dispatch; every reply echoes the request's `id`.

A mixin of the hub (`WebSocketHub`). Orders and cancels run the REST code paths themselves
(`place_order`, the `DELETE /orders/{id}` handler, the fast path's validation error), so a failure
has the same code on both transports.

A `batch` carries up to `MAX_BATCH` orders and cancels in one frame and is answered by one frame whose
`replies` are, in order, what each request would have been answered alone. Its members are handled
concurrently, in the order given, so their commands reach the engine together (one journal group
commit) and a frame, a parse and a send are paid once for many orders.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import jwt
import orjson
import structlog
from prometheus_client import Counter
from pydantic import ValidationError

from tradehall.api.auth import TRADE, Principal
from tradehall.api.errors import ApiError
from tradehall.api.fastpath import validation_error
from tradehall.api.gateway import Gateway
from tradehall.api.routes.orders import cancel_order_data, place_order
from tradehall.api.schemas import OrderCreate
from tradehall.api.ws.connection import CLOSE_POLICY, Connection, RequestId
from tradehall.api.ws.expiry import ExpiryWatch
from tradehall.domain.errors import Code, TradehallError

log = structlog.get_logger(__name__)

MAX_ID_CHARS = 128
MAX_BATCH = 100
"""Requests in one `batch` (the frame's size limit, `ws_max_message_bytes`, holds too)."""
TRADE_OPS = ("order", "cancel")

WS_CLOSED = Counter(
    "tradehall_ws_closed_total",
    "WebSocket connections the server closed or refused, by reason.",
    ["reason"],
)


def error_message(code: Code, message: str, **extra: Any) -> dict[str, Any]:
    return {"op": "error", "code": code.value, "message": message, **extra}


def _token_expiry(authorization: str) -> float | None:
    """The `exp` of a bearer token the authenticator has just verified (None when it has none)."""
    _, _, token = authorization.partition(" ")
    try:
        claims = jwt.decode(token.strip(), options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _id_problem(ref: object) -> bool:
    """True when `ref` is no valid request id (an integer, or a string of at most MAX_ID_CHARS)."""
    return ref is not None and (
        isinstance(ref, bool)
        or not isinstance(ref, str | int)
        or (isinstance(ref, str) and len(ref) > MAX_ID_CHARS)
    )


ID_MESSAGE = f"id must be an integer or a string of at most {MAX_ID_CHARS} characters"


def _tag(ref: RequestId | None) -> str | None:
    """The client's id in a correlation id, when it is a plain token (else the message's number)."""
    if isinstance(ref, int):
        return str(ref)
    if ref and ref.isascii() and ref.replace("-", "").replace("_", "").replace(".", "").isalnum():
        return ref
    return None


class RequestHandler:
    gateway: Gateway
    expiry: ExpiryWatch
    by_user: dict[str, set[Connection]]
    max_per_user: int

    if TYPE_CHECKING:  # the hub's

        async def subscribe(
            self, connection: Connection, channels: list[str], ref: RequestId | None = None
        ) -> None: ...

        def unsubscribe(
            self, connection: Connection, channels: list[str], ref: RequestId | None = None
        ) -> None: ...

        def _principal(self, connection: Connection) -> Principal | None: ...

        def revoke(self, connection: Connection, reason: str = "unauthorized") -> None: ...

        def _set_principal(
            self, connection: Connection, principal: Principal | None, expires_at: float | None = None
        ) -> None: ...

    async def _authenticate(
        self, connection: Connection, authorization: str | None, api_key: str | None, ref: RequestId | None
    ) -> None:
        try:
            principal = await self.gateway.auth.authenticate(authorization, api_key)
        except ApiError as error:
            connection.reply(error_message(error.code, error.detail), ref)
            return
        # a token's `exp`, or a key's expiry: either ends the socket's private side when due
        if api_key:
            expires_at = principal.expires_at
        else:
            expires_at = _token_expiry(authorization) if authorization else None
        if expires_at is not None and self.expiry.clock() >= expires_at:
            what = "API key" if api_key else "token"
            connection.reply(error_message(Code.UNAUTHORIZED, f"{what} expired"), ref)
            return
        if connection.closing:
            return
        current = connection.principal
        if current is None or current.user_id != principal.user_id:
            if len(self.by_user.get(principal.user_id, ())) >= self.max_per_user:
                WS_CLOSED.labels(reason="connections_per_user").inc()
                message = f"at most {self.max_per_user} WebSocket connections per user"
                connection.reply(error_message(Code.RATE_LIMITED, message), ref)
                connection.finish(CLOSE_POLICY, "too many connections")
                return
            if current is not None:
                self.revoke(connection, reason="user_changed")
        self._set_principal(connection, principal, expires_at)
        connection.reply({"op": "authenticated", "user_id": principal.user_id, "role": principal.role}, ref)

    async def _handle(self, connection: Connection, raw: str, tasks: set[asyncio.Task[None]]) -> None:
        if connection.closing:
            return
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            connection.send_json(error_message(Code.INVALID_REQUEST, "malformed JSON"))
            return
        if not isinstance(message, dict):
            connection.send_json(error_message(Code.INVALID_REQUEST, "expected a JSON object"))
            return
        ref = message.get("id")
        if _id_problem(ref):
            connection.send_json(error_message(Code.INVALID_REQUEST, ID_MESSAGE))
            return
        op = message.get("op")
        if op == "ping":
            connection.reply({"op": "pong"}, ref)
        elif op == "auth":
            token = message.get("token")
            api_key = message.get("api_key")
            await self._authenticate(
                connection,
                f"Bearer {token}" if isinstance(token, str) and token else None,
                api_key if isinstance(api_key, str) else None,
                ref,
            )
        elif op in ("subscribe", "unsubscribe"):
            channels = message.get("channels")
            if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
                connection.reply(
                    error_message(Code.INVALID_REQUEST, "channels must be a list of strings"), ref
                )
            elif op == "subscribe":
                await self.subscribe(connection, channels, ref)
            else:
                self.unsubscribe(connection, channels, ref)
        elif op in TRADE_OPS:
            task = asyncio.create_task(self._trade_op(connection, op, message, ref))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif op == "batch":
            requests = message.get("requests")
            if not isinstance(requests, list) or not 0 < len(requests) <= MAX_BATCH:
                text = f"requests must be a list of 1 to {MAX_BATCH} order and cancel requests"
                connection.reply(error_message(Code.INVALID_REQUEST, text), ref)
                return
            task = asyncio.create_task(self._trade_batch(connection, requests, ref))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            text = (
                f"unknown op {op!r}" if isinstance(op, str | None) and len(op or "") <= 32 else "unknown op"
            )
            connection.reply(error_message(Code.INVALID_REQUEST, text), ref)

    async def _trade_op(
        self, connection: Connection, op: str, message: dict[str, Any], ref: RequestId | None
    ) -> None:
        connection.reply(await self._trade_reply(connection, op, message, ref), ref)

    async def _trade_batch(self, connection: Connection, requests: list[Any], ref: RequestId | None) -> None:
        """One reply for the whole frame: `replies[i]` answers `requests[i]` as it would alone (its own
        `id` echoed). The members run as concurrent tasks started in order: each reaches the engine
        in that order, and they share the journal's group commit."""
        replies: list[dict[str, Any] | None] = [None] * len(requests)
        running: list[tuple[int, RequestId | None, asyncio.Task[dict[str, Any]]]] = []
        for index, member in enumerate(requests):
            if not isinstance(member, dict):
                replies[index] = error_message(Code.INVALID_REQUEST, "expected a JSON object")
                continue
            member_ref = member.get("id")
            if _id_problem(member_ref):
                replies[index] = error_message(Code.INVALID_REQUEST, ID_MESSAGE)
                continue
            op = member.get("op")
            if op not in TRADE_OPS:
                refused = error_message(Code.INVALID_REQUEST, "a batch holds only order and cancel requests")
                if member_ref is not None:
                    refused["id"] = member_ref
                replies[index] = refused
                continue
            coroutine = self._trade_reply(connection, str(op), member, member_ref)
            running.append((index, member_ref, asyncio.create_task(coroutine)))
        if running:
            await asyncio.wait([task for _, _, task in running])
        for index, member_ref, task in running:
            error = task.exception()
            if error is None:
                reply = task.result()
            else:  # a bug, not a refusal: the member says so, the others keep their answers
                log.error("ws_batch_member_failed", connection=connection.id, error=repr(error))
                reply = error_message(Code.INTERNAL, "internal error", request=requests[index].get("op"))
            if member_ref is not None:
                reply["id"] = member_ref
            replies[index] = reply
        connection.reply({"op": "batch", "replies": replies}, ref)

    async def _trade_reply(
        self, connection: Connection, op: str, message: dict[str, Any], ref: RequestId | None
    ) -> dict[str, Any]:
        """An order or a cancel: the same code path as REST, so the same codes for the same failures."""
        message.pop("id", None)
        message.pop("op", None)
        reply: dict[str, Any] = {"op": op}
        try:
            principal = self._principal(connection)
            if principal is None:
                raise ApiError(Code.UNAUTHORIZED, "authenticate first (auth), with credentials still valid")
            self.gateway.limiter.check(principal.limiter_key)
            principal.require(TRADE)  # a `read` key: 403 forbidden, as on REST
            # the connection's id and the client's message id: traceable from either side
            connection.messages += 1
            correlation = f"ws-{connection.id}-{_tag(ref) or connection.messages}"
            if op == "order":
                try:
                    body = OrderCreate.model_validate(message)
                except ValidationError as invalid:
                    raise validation_error(invalid) from None
                data, status = await place_order(self.gateway, principal, body, correlation, transport="ws")
            else:
                order_id = message.get("order_id")
                if isinstance(order_id, int) and not isinstance(order_id, bool):
                    order_id = str(order_id)
                if not isinstance(order_id, str):
                    raise ApiError(Code.INVALID_REQUEST, "order_id is required")
                data, status = await cancel_order_data(order_id, principal, self.gateway, correlation), 200
            reply["status"] = status
            reply["data"] = data
        except (ApiError, TradehallError) as error:
            reply = error_message(error.code, error.detail, request=op)
            if isinstance(error, ApiError) and error.fields:
                reply.update(error.fields)  # e.g. `reject_reason`, as in the REST problem body
        return reply
