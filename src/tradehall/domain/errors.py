"""One result-code enum for every refused command; the API maps it to HTTP in one table."""

from __future__ import annotations

from enum import StrEnum

from tradehall.domain.enums import CancelReason


class Code(StrEnum):
    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID_ORDER = "invalid_order"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    RISK_LIMIT_EXCEEDED = "risk_limit_exceeded"
    DRAWDOWN_VIOLATION = "drawdown_violation"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    POSITION_LIMIT_EXCEEDED = "position_limit_exceeded"
    MARKET_CLOSED = "market_closed"
    ACCOUNT_NOT_ACTIVE = "account_not_active"
    RATE_LIMITED = "rate_limited"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    OVERLOADED = "overloaded"
    MARKET_DATA_UNAVAILABLE = "market_data_unavailable"
    INTERNAL = "internal"


class TradehallError(Exception):
    """A refusal with a stable code; raised inside the engine and turned into a rejection event."""

    def __init__(self, code: Code, detail: str, reason: CancelReason | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.reason = reason  # an order refusal's `reject_reason`, when one of the list names it


def invalid_order(detail: str, reason: CancelReason | None = None) -> TradehallError:
    return TradehallError(Code.INVALID_ORDER, detail, reason)


def invalid_request(detail: str) -> TradehallError:
    return TradehallError(Code.INVALID_REQUEST, detail)


def not_found(detail: str) -> TradehallError:
    return TradehallError(Code.NOT_FOUND, detail)
