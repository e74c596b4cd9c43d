"""Errors as application/problem+json: ONE table from `domain.errors.Code` to HTTP status.

Every refusal, from the engine (a rejection event) or from the gateway (auth, validation, limits),
becomes an `ApiError` with a code; the handlers below are the only place that writes an error body.
Unexpected exceptions become `internal` 500 with no detail: no stack trace reaches a client.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tradehall.domain.errors import Code, TradehallError

log = structlog.get_logger(__name__)

STATUS_OF: dict[Code, int] = {
    Code.INVALID_REQUEST: 400,
    Code.UNAUTHORIZED: 401,
    Code.FORBIDDEN: 403,
    Code.NOT_FOUND: 404,
    Code.CONFLICT: 409,
    Code.INVALID_ORDER: 422,
    Code.INSUFFICIENT_BALANCE: 422,
    Code.RISK_LIMIT_EXCEEDED: 422,
    Code.DRAWDOWN_VIOLATION: 422,
    Code.DAILY_LOSS_LIMIT: 422,
    Code.POSITION_LIMIT_EXCEEDED: 422,
    Code.MARKET_CLOSED: 409,
    Code.ACCOUNT_NOT_ACTIVE: 409,
    Code.RATE_LIMITED: 429,
    Code.PAYLOAD_TOO_LARGE: 413,
    Code.UNSUPPORTED_MEDIA_TYPE: 415,
    Code.OVERLOADED: 503,
    Code.MARKET_DATA_UNAVAILABLE: 503,
    Code.INTERNAL: 500,
}

TITLE_OF: dict[Code, str] = {code: code.value.replace("_", " ").capitalize() for code in Code}

PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    """A refusal with a stable code; `headers` for e.g. Retry-After and WWW-Authenticate."""

    def __init__(
        self,
        code: Code,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors
        self.fields = fields  # extra members of the problem body (e.g. an order's `reject_reason`)

    @property
    def status(self) -> int:
        return STATUS_OF[self.code]


def unauthorized(detail: str = "missing or invalid credentials") -> ApiError:
    return ApiError(Code.UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(detail: str = "this resource belongs to another user") -> ApiError:
    return ApiError(Code.FORBIDDEN, detail)


def not_found(detail: str) -> ApiError:
    return ApiError(Code.NOT_FOUND, detail)


def from_domain(error: TradehallError) -> ApiError:
    return ApiError(error.code, error.detail)


def correlation_id_of(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", "") or "")


def problem_response(
    code: Code,
    detail: str,
    correlation_id: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    fields: dict[str, Any] | None = None,
) -> Response:
    status = STATUS_OF[code]
    body: dict[str, Any] = {
        "type": f"https://tradehall.dev/errors/{code.value}",
        "title": TITLE_OF[code],
        "status": status,
        "detail": detail,
        "code": code.value,
        "correlation_id": correlation_id,
    }
    if errors:
        body["errors"] = errors
    if fields:
        body.update({key: value for key, value in fields.items() if key not in body})
    all_headers = {"X-Request-ID": correlation_id} if correlation_id else {}
    all_headers.update(headers or {})
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=all_headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for error in exc.errors():
        details.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return details


_HTTP_CODES = {400: Code.INVALID_REQUEST, 401: Code.UNAUTHORIZED, 403: Code.FORBIDDEN, 404: Code.NOT_FOUND}


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return problem_response(
            exc.code,
            exc.detail,
            correlation_id_of(request),
            headers=exc.headers,
            errors=exc.errors,
            fields=exc.fields,
        )

    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TradehallError)
        return problem_response(exc.code, exc.detail, correlation_id_of(request))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = _validation_details(exc)
        body_error = any(d["loc"][:1] == ["body"] for d in details)
        json_broken = any(d["type"] == "json_invalid" for d in details)
        # A body that is JSON but of the wrong shape is 422 (field details); anything else 400.
        code = Code.INVALID_ORDER if body_error and not json_broken else Code.INVALID_REQUEST
        if (
            code is Code.INVALID_ORDER
            and request.url.path not in ("/orders",)
            and not (request.url.path.startswith("/orders/"))
        ):
            code = Code.INVALID_REQUEST
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"][1:] if first["loc"][:1] == ["body"] else first["loc"])
        detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        return problem_response(code, detail, correlation_id_of(request), errors=details)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code)
        if code is None:
            if exc.status_code == 405:
                return Response(
                    orjson.dumps(
                        {
                            "type": "about:blank",
                            "title": "Method not allowed",
                            "status": 405,
                            "detail": "method not allowed",
                            "code": Code.INVALID_REQUEST.value,
                            "correlation_id": correlation_id_of(request),
                        }
                    ),
                    status_code=405,
                    media_type=PROBLEM_JSON,
                    headers=dict(exc.headers or {}),
                )
            code = Code.INVALID_REQUEST if exc.status_code < 500 else Code.INTERNAL
        return problem_response(code, str(exc.detail), correlation_id_of(request))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", path=request.url.path, error=repr(exc), exc_info=exc)
        return problem_response(Code.INTERNAL, "internal error", correlation_id_of(request))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(TradehallError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
