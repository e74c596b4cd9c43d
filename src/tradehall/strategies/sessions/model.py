"""What a session is and says, as the API shows it: the session, its signals and its decisions.

One conversion per object, from the stored row to the contract's JSON (`GET /sessions/{id}`,
`/signals`, `/decisions`, the WebSocket `sessions` and `signals` channels), so the two transports
cannot drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tradehall.domain.fixedpoint import decimal_str
from tradehall.store.models import SessionDecision, SessionSignal, TradingSession
from tradehall.strategies.sessions.settings import (
    SessionSettings,
    StrategyEntry,
    parse_settings,
    parse_strategies,
)


class SessionStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAILED = "failed"


FINAL_STATUSES = frozenset({SessionStatus.STOPPED, SessionStatus.FAILED})


class DecisionStatus(StrEnum):
    PENDING = "pending"
    """Written, its order not yet confirmed by the engine (a restart sends it again, idempotently)."""
    PLACED = "placed"
    REFUSED = "refused"
    VETOED = "vetoed"
    HOLD = "hold"


def rfc3339(moment: datetime) -> str:
    """The API's timestamp form: UTC, microseconds when there are any, `Z`."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _text(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as stored: what the runtime builds it from and the API shows."""

    id: str
    owner: str
    account_id: str
    status: SessionStatus
    status_reason: str | None
    markets: tuple[str, ...]
    strategies: tuple[StrategyEntry, ...]
    settings: SessionSettings
    anchor_ns: int
    cycles: int
    decisions: int
    last_seq: int
    start_equity: Decimal | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: TradingSession) -> SessionInfo:
        return cls(
            id=row.id,
            owner=row.owner,
            account_id=row.account_id,
            status=SessionStatus(row.status),
            status_reason=row.status_reason,
            markets=tuple(json.loads(row.markets)),
            strategies=tuple(parse_strategies(json.loads(row.strategies))),
            settings=parse_settings(json.loads(row.settings)),
            anchor_ns=row.anchor_ns,
            cycles=row.cycles,
            decisions=row.decisions,
            last_seq=row.last_seq or 0,
            start_equity=row.start_equity,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "status": self.status.value,
            "status_reason": self.status_reason,
            "markets": list(self.markets),
            "strategies": [entry.as_dict() for entry in self.strategies],
            "settings": self.settings.as_dict(),
            "cycles": self.cycles,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }


def new_session_row(
    session_id: str,
    owner: str,
    account_id: str,
    markets: list[str],
    strategies: list[StrategyEntry],
    settings: SessionSettings,
    *,
    anchor_ns: int,
    last_seq: int,
    start_equity: Decimal | None,
    at: datetime,
) -> TradingSession:
    return TradingSession(
        id=session_id,
        owner=owner,
        account_id=account_id,
        status=SessionStatus.RUNNING.value,
        status_reason=None,
        markets=json.dumps(markets),
        strategies=json.dumps([entry.as_dict() for entry in strategies]),
        settings=json.dumps({k: v for k, v in settings.as_dict().items() if v is not None}),
        anchor_ns=anchor_ns,
        cycles=0,
        decisions=0,
        last_seq=last_seq,
        start_equity=start_equity,
        created_at=at,
        updated_at=at,
    )


def signal_dict(row: SessionSignal) -> dict[str, Any]:
    """An item of `GET /sessions/{id}/signals`: strategy, market, action, confidence, price, reason, at."""
    return {
        "strategy": row.strategy,
        "market": row.market,
        "action": row.action,
        "confidence": decimal_str(row.confidence),
        "price": _text(row.price),
        "reason": row.reason,
        "metadata": json.loads(row.meta) if row.meta else {},
        "cycle": row.cycle,
        "at": rfc3339(row.at),
    }


def decision_dict(row: SessionDecision) -> dict[str, Any]:
    """An item of `GET /sessions/{id}/decisions`: the combined decision, `vetoed_by?`, `order_id?`."""
    return {
        "seq": row.seq,
        "cycle": row.cycle,
        "market": row.market,
        "action": row.action,
        "confidence": decimal_str(row.confidence),
        "price": _text(row.price),
        "quantity": _text(row.quantity),
        "reason": row.reason,
        "vetoed_by": row.vetoed_by,
        "status": row.status,
        "client_order_id": row.client_order_id,
        "order_id": row.order_id,
        "error": row.error,
        "at": rfc3339(row.at),
    }
