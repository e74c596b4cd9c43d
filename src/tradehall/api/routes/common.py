"""What every router shares: the documented error responses, the orjson response helper and the paging
parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Query
from starlette.responses import Response

from tradehall.api.errors import ApiError
from tradehall.api.schemas import Problem
from tradehall.domain.errors import Code

_PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_PROBLEM, "description": "invalid_request"},
    401: {**_PROBLEM, "description": "unauthorized"},
    403: {**_PROBLEM, "description": "forbidden"},
    404: {**_PROBLEM, "description": "not_found"},
    409: {**_PROBLEM, "description": "conflict, market_closed, account_not_active"},
    422: {**_PROBLEM, "description": "invalid_order, insufficient_balance and other refusals"},
    413: {**_PROBLEM, "description": "payload_too_large"},
    415: {**_PROBLEM, "description": "unsupported_media_type"},
    429: {**_PROBLEM, "description": "rate_limited"},
    500: {**_PROBLEM, "description": "internal"},
    503: {**_PROBLEM, "description": "overloaded, market_data_unavailable"},
}


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


Limit = Annotated[int, Query(ge=1, le=1000)]
"""A page's size (the query parameter `limit`)."""
Cursor = Annotated[str | None, Query(max_length=512)]
"""Where a page starts: the `next_cursor` of the one before (the query parameter `cursor`)."""


def page(items: list[Any], next_cursor: str | None = None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


def order_number(value: str) -> int | None:
    """The order id `value` names, or None: ids are ASCII digits in canonical form, below 10**18.

    `str.isdigit` also accepts other scripts' digits (`١٢` is 12 to `int`) and digits `int` refuses
    (superscript `¹`), and `int` reads `+1`, `1_0` and ` 1 `: none of those is an id's spelling.
    """
    if not (0 < len(value) <= 18 and value.isascii() and value.isdigit()):
        return None
    if value[0] == "0" and len(value) > 1:
        return None
    return int(value)


LATEST_NS = 2**63 - 1
"""Engine times are int64 nanoseconds (the journal's encoding): about 2262-04-11."""


def time_ns(value: str | None, what: str, code: Code = Code.INVALID_REQUEST) -> int | None:
    """An RFC 3339 time with a zone as ns since the epoch; anything else is refused with `code`."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(code, f"{what} must be an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ApiError(code, f"{what} needs a time zone (e.g. Z)")
    ns = int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
    if not 0 <= ns <= LATEST_NS:
        raise ApiError(code, f"{what} must be between 1970 and 2262")
    return ns
