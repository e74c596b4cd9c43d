"""Parsing rules every provider shares: decimals from strings (floats through `str`), cents vs dollars,
seconds vs milliseconds, and the classification of a provider's HTTP answer (JSON, HTML page,
rate limit) into data or a typed `FeedError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import orjson

from tradehall.domain.errors import TradehallError
from tradehall.domain.fixedpoint import decimal_of, parse_decimal

CENT = Decimal("0.01")
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ErrorKind(StrEnum):
    """Label values of `tradehall_feed_errors_total{kind}`."""

    RATE_LIMITED = "rate_limited"
    HTTP_STATUS = "http_status"
    HTML = "html"
    MALFORMED = "malformed_json"
    API_ERROR = "api_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    PARSE = "parse"
    SEQUENCE_GAP = "sequence_gap"
    STALE = "stale"


class FeedError(Exception):
    """A failed request or an unusable message; never fatal to a feed, always counted."""

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.http_status = http_status
        self.retry_after = retry_after


def dec(value: object, what: str = "number") -> Decimal:
    """A Decimal from a provider's number: strings as written (".48" included), floats via `str`."""
    if type(value) is str:
        # Fast path for the common case; the general path handles ints, floats and odd inputs.
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise FeedError(ErrorKind.PARSE, f"{what} is not a number: {value!r}") from None
        if result.is_finite():
            return result
        raise FeedError(ErrorKind.PARSE, f"{what} is not finite: {value!r}")
    try:
        return parse_decimal(value, what)
    except TradehallError as exc:
        raise FeedError(ErrorKind.PARSE, exc.detail) from None


def opt_dec(value: object, what: str = "number") -> Decimal | None:
    """None for a missing value (None or "")."""
    if value is None or value == "":
        return None
    return dec(value, what)


def dollars_from_cents(cents: object, what: str = "price") -> Decimal:
    """A cent amount (Kalshi's legacy integer prices) in dollars."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        value = dec(cents, what)
        if value != value.to_integral_value():
            raise FeedError(ErrorKind.PARSE, f"{what} in cents must be whole: {cents!r}")
        cents = int(value)
    return decimal_of(cents, CENT)


def ns_from_seconds(value: object) -> int:
    return int(dec(value, "seconds") * NS_PER_S)


def ns_from_ms(value: object) -> int:
    """Milliseconds (int or a string of digits, as Polymarket sends) to nanoseconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value * NS_PER_MS
    return int(dec(value, "milliseconds") * NS_PER_MS)


def ns_from_iso(value: str) -> int:
    """ "2018-08-09T21:56:28.000Z" to nanoseconds."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FeedError(ErrorKind.PARSE, f"not an ISO timestamp: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def loads(body: bytes | str) -> Any:
    """JSON to Python; an HTML page or broken JSON becomes a `FeedError` of its own kind."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:200].decode("utf-8", "replace") if isinstance(body, bytes) else body[:200]
        if looks_like_html(text):
            raise FeedError(ErrorKind.HTML, "HTML page instead of JSON") from None
        raise FeedError(ErrorKind.MALFORMED, f"malformed JSON: {text[:80]!r}") from None


def looks_like_html(text: str) -> bool:
    head = text.lstrip()[:1]
    return head.startswith("<")


def retry_after_seconds(headers: Mapping[str, str], now_s: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date."""
    raw = headers.get("retry-after") or headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if now_s is None:
        now_s = datetime.now(moment.tzinfo).timestamp()
    return max(0.0, moment.timestamp() - now_s)


def check_http(status: int, headers: Mapping[str, str], body: bytes) -> Any:
    """Decode a 2xx JSON body or raise the `FeedError` that describes the failure."""
    if status == 429 or status == 418:
        raise FeedError(
            ErrorKind.RATE_LIMITED,
            f"HTTP {status}",
            http_status=status,
            retry_after=retry_after_seconds(headers),
        )
    if status >= 400:
        text = body[:200].decode("utf-8", "replace")
        raise FeedError(ErrorKind.HTTP_STATUS, f"HTTP {status}: {text[:80]!r}", http_status=status)
    return loads(body)


def mapping(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FeedError(ErrorKind.PARSE, f"{what} is not an object")
    return value


def sequence(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise FeedError(ErrorKind.PARSE, f"{what} is not an array")
    return value
