"""The order hot path as plain Starlette routes, in front of the FastAPI router.

FastAPI's dependency solving and route matching cost more than the engine does for an order, so
`POST /orders`, `DELETE /orders/{id}` and the Alpaca surface's `POST /alpaca/v2/orders` are served
here with the same steps done by hand: auth and
rate limit, the same pydantic schema (validated straight from the raw bytes), the same route logic
and error handlers. The FastAPI routes of the same paths stay registered: they document the API in
OpenAPI and serve as reference; these routes match first.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tradehall.api.alpaca import hot as alpaca
from tradehall.api.auth import TRADE, Principal
from tradehall.api.errors import ApiError
from tradehall.api.gateway import COMMAND_SENT, Gateway
from tradehall.api.routes.common import json_response
from tradehall.api.routes.orders import cancel_order, place_order
from tradehall.api.schemas import OrderCreate
from tradehall.domain.errors import Code


async def _principal(request: Request, gateway: Gateway) -> Principal:
    """The caller, if it may trade (both routes here trade): 401, 429, or 403 for a `read` key,
    before the body is read, as the FastAPI routes' `TraderDep` does."""
    headers = request.headers
    principal = await gateway.auth.authenticate(headers.get("authorization"), headers.get("x-api-key"))
    gateway.limiter.check(principal.limiter_key)
    structlog.contextvars.bind_contextvars(user=principal.username)
    principal.require(TRADE)
    return principal


def validation_error(error: ValidationError) -> ApiError:
    """The FastAPI handler's answer for a body of the wrong shape, from a pydantic error."""
    details: list[dict[str, Any]] = [
        {
            "loc": ["body", *(str(part) for part in item.get("loc", ()))],
            "msg": str(item.get("msg", "")),
            "type": str(item.get("type", "")),
        }
        for item in error.errors()
    ]
    first = details[0] if details else {"loc": ["body"], "msg": "invalid body", "type": ""}
    code = Code.INVALID_REQUEST if any(d["type"] == "json_invalid" for d in details) else Code.INVALID_ORDER
    where = ".".join(first["loc"][1:])
    return ApiError(code, f"{where}: {first['msg']}" if where else str(first["msg"]), errors=details)


async def post_order(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    principal = await _principal(request, gateway)
    raw = await request.body()
    try:
        body = OrderCreate.model_validate_json(raw)
    except ValidationError as error:
        raise validation_error(error) from None
    order, status = await place_order(gateway, principal, body, str(request.state.correlation_id))
    return json_response(order, status)


async def delete_order(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    principal = await _principal(request, gateway)
    order_id = str(request.path_params["order_id"])
    return await cancel_order(order_id, principal, gateway, str(request.state.correlation_id))


ROUTES = [
    Route("/orders", post_order, methods=["POST"]),
    Route("/orders/{order_id}", delete_order, methods=["DELETE"]),
    Route("/alpaca/v2/orders", alpaca.post_order, methods=["POST"]),
]


_POST_ORDER, _DELETE_ORDER, _ALPACA_POST_ORDER = ROUTES
_HOT_POSTS = {"/orders": _POST_ORDER, "/alpaca/v2/orders": _ALPACA_POST_ORDER}

UNBARRIERED_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Liveness and metrics answer even when the engine process is down."""
STALE_REFUSALS = frozenset({403, 404})
"""What a replica behind the engine may wrongly answer on the order path (an account, market or order it
does not know yet): checked again after it caught up, when no command was sent."""


class TradehallApp(FastAPI):
    """FastAPI, except that the order hot path skips the framework's middleware stack.

    `POST /orders` and `DELETE /orders/{id}` go through our own request context and body limit
    straight to the routes above; their exceptions go to the same handlers as everywhere else.
    Measured on this path, the stack of telemetry, body-limit, exception and exit-stack layers cost
    about as much as the handler itself.
    """

    hot_path: ASGIApp | None = None
    read_barrier: Callable[[], Awaitable[None]] | None = None
    """In a gateway process (`serve --workers N`): waits until its replica of the engine shows all
    that the engine process has made durable, before a request is served (read-after-write across
    gateways). Not before the order fast path: the engine decides an order or a cancel on its own
    state, so the replica is only caught up when a local check refused (`run_hot`)."""
    credential_check: Callable[[], None] | None = None
    """In a gateway process: forgets the cached API keys when any gateway revoked one since (before
    the fast path authenticates; the read barrier does it for the other requests)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._hot_route(scope) if self.hot_path is not None else None
        barrier = self.read_barrier
        kind = scope["type"]
        if barrier is not None and kind in ("http", "websocket") and scope["path"] not in UNBARRIERED_PATHS:
            if route is None:
                await barrier()
            elif self.credential_check is not None:
                self.credential_check()
        if route is not None:
            assert self.hot_path is not None
            if route is _DELETE_ORDER:
                scope["path_params"] = {"order_id": scope["path"][8:]}
            scope["app"] = self
            scope["route"] = route
            scope["endpoint"] = route.endpoint
            await self.hot_path(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    @staticmethod
    def _hot_route(scope: Scope) -> Route | None:
        """The fast-path route of this request, if it has one (the same match as `__call__`'s)."""
        if scope["type"] != "http":
            return None
        method = scope["method"]
        path: str = scope["path"]
        if method == "POST":
            return _HOT_POSTS.get(path)
        if method == "DELETE" and path.startswith("/orders/") and "/" not in path[8:] and len(path) > 8:
            return _DELETE_ORDER
        return None

    async def run_hot(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        route = scope["route"]
        COMMAND_SENT.set(False)
        response = await self._answer(route, request)
        barrier = self.read_barrier
        if barrier is not None and response.status_code in STALE_REFUSALS and not COMMAND_SENT.get():
            # refused on the replica's state alone (nothing was sent): it may not yet show an account,
            # market or order another gateway's answer created; check again once it shows all that
            # is durable (the body is kept by the request, so the route reads it again)
            await barrier()
            response = await self._answer(route, request)
        await response(scope, receive, send)

    async def _answer(self, route: Route, request: Request) -> Response:
        try:
            response: Response = await route.endpoint(request)
        except Exception as exc:
            response = await self._handle(request, exc)
        return response

    async def _handle(self, request: Request, exc: Exception) -> Response:
        for kind in type(exc).__mro__:
            handler = self.exception_handlers.get(kind)
            if handler is not None:
                result = handler(request, exc)
                if inspect.isawaitable(result):
                    result = await result
                assert isinstance(result, Response)
                return result
        raise exc  # pragma: no cover - the Exception handler always matches
