"""Alpaca's error shape: the HTTP status and a body `{"code": <8 digits>, "message": "..."}`.

Every refusal of the Alpaca surface goes through `alpaca_error_response`, from tradehall's own codes in
one table (`ALPACA_OF`), so a bot sees the status and code Alpaca would give: a refused order for want
of money is 403 `40310000` "insufficient balance for USD ..." (the message ccxt matches to
InsufficientFunds), a malformed order 422 `42210000`, an unknown order 404 `40410000`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import structlog
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from tradehall.api.errors import ApiError, correlation_id_of
from tradehall.domain.errors import Code, TradehallError

log = structlog.get_logger(__name__)

ALPACA_OF: dict[Code, tuple[int, int]] = {
    Code.INVALID_REQUEST: (400, 40010000),
    Code.UNAUTHORIZED: (401, 40110000),
    Code.FORBIDDEN: (403, 40310000),
    Code.NOT_FOUND: (404, 40410000),
    Code.CONFLICT: (422, 42210000),
    Code.INVALID_ORDER: (422, 42210000),
    Code.INSUFFICIENT_BALANCE: (403, 40310000),
    Code.RISK_LIMIT_EXCEEDED: (403, 40310000),
    Code.DRAWDOWN_VIOLATION: (403, 40310000),
    Code.DAILY_LOSS_LIMIT: (403, 40310000),
    Code.POSITION_LIMIT_EXCEEDED: (403, 40310000),
    Code.MARKET_CLOSED: (422, 42210000),
    Code.ACCOUNT_NOT_ACTIVE: (403, 40310000),
    Code.RATE_LIMITED: (429, 42910000),
    Code.PAYLOAD_TOO_LARGE: (413, 41310000),
    Code.UNSUPPORTED_MEDIA_TYPE: (415, 41510000),
    Code.OVERLOADED: (503, 50310000),
    Code.MARKET_DATA_UNAVAILABLE: (503, 50310000),
    Code.INTERNAL: (500, 50010000),
}
"""tradehall code -> (HTTP status, Alpaca code)."""

UNAUTHORIZED_MESSAGE = "request is not authorized"


def alpaca_error_response(
    code: Code, message: str, *, headers: dict[str, str] | None = None, correlation_id: str = ""
) -> Response:
    status, alpaca_code = ALPACA_OF[code]
    all_headers = {"X-Request-ID": correlation_id} if correlation_id else {}
    all_headers.update(headers or {})
    body = orjson.dumps({"code": alpaca_code, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=all_headers)


def message_of(error: ApiError) -> str:
    if error.code is Code.UNAUTHORIZED:
        return UNAUTHORIZED_MESSAGE
    return error.detail


def validation_message(errors: list[Any]) -> str:
    """Alpaca names the field: `invalid qty`, `invalid side` ..."""
    if not errors:
        return "invalid request"
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    where = ".".join(location)
    text = str(first.get("msg", "invalid"))
    return f"invalid {where}: {text}" if where else text


def response_for(request: Request, exc: Exception) -> Response:
    """The Alpaca answer to anything a route of the surface raised."""
    correlation_id = correlation_id_of(request)
    if isinstance(exc, ApiError):
        return alpaca_error_response(
            exc.code, message_of(exc), headers=exc.headers, correlation_id=correlation_id
        )
    if isinstance(exc, TradehallError):
        return alpaca_error_response(exc.code, exc.detail, correlation_id=correlation_id)
    if isinstance(exc, RequestValidationError | ValidationError):
        errors = list(exc.errors())
        broken = any(str(error.get("type", "")) == "json_invalid" for error in errors)
        code = Code.INVALID_REQUEST if broken else Code.INVALID_ORDER
        message = "request body format is invalid" if broken else validation_message(errors)
        return alpaca_error_response(code, message, correlation_id=correlation_id)
    log.error("alpaca_unhandled_error", path=request.url.path, error=repr(exc), exc_info=exc)
    return alpaca_error_response(Code.INTERNAL, "internal server error", correlation_id=correlation_id)


class AlpacaRoute(APIRoute):
    """A route whose refusals, request validation included, answer in Alpaca's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def alpaca_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return response_for(request, exc)

        return alpaca_handler
