"""What every router shares: the documented error responses and the orjson response helper."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from tradehall.api.schemas import Problem

_PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_PROBLEM, "description": "invalid_request"},
    401: {**_PROBLEM, "description": "unauthorized"},
    403: {**_PROBLEM, "description": "forbidden"},
    404: {**_PROBLEM, "description": "not_found"},
    409: {**_PROBLEM, "description": "conflict, market_closed, account_not_active"},
    422: {**_PROBLEM, "description": "invalid_order, insufficient_balance and other refusals"},
    429: {**_PROBLEM, "description": "rate_limited"},
    500: {**_PROBLEM, "description": "internal"},
    503: {**_PROBLEM, "description": "market_data_unavailable"},
}


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


def page(items: list[Any], next_cursor: str | None = None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}
