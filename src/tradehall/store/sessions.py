"""The live sessions' durable state: sessions, the bars their strategies saw, signals, decisions, equity.

These rows are written by the session runtime (`tradehall.strategies.sessions`), not projected from
engine events: they are what a restart resumes from. Functions take a sync `Session` first and do not
commit (`Store.call` wraps each call in one transaction), like `repositories` and `queries`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tradehall.store.models import (
    Fill,
    SessionBar,
    SessionDecision,
    SessionEquity,
    SessionSignal,
    TradingSession,
)
from tradehall.store.queries import Page, _page

ACTIVE_STATUSES = ("running", "paused")
"""Sessions a restart brings back (a paused one comes back paused)."""


# ---- sessions --------------------------------------------------------------------------------------


def insert_session(session: Session, row: TradingSession) -> TradingSession:
    session.add(row)
    session.flush()
    return row


def get_session(session: Session, session_id: str) -> TradingSession | None:
    return session.get(TradingSession, session_id)


def update_session(session: Session, session_id: str, /, **values: Any) -> TradingSession | None:
    """Sets `values` on the session and returns it as stored (None: no such session)."""
    session.execute(update(TradingSession).where(TradingSession.id == session_id).values(**values))
    return session.get(TradingSession, session_id, populate_existing=True)


def list_sessions(
    session: Session,
    *,
    owner: str | None = None,
    account_ids: Sequence[str] | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[TradingSession]:
    """Sessions newest first: an owner's, or those of some accounts (None: every session, for admins)."""
    query = select(TradingSession)
    if owner is not None:
        query = query.where(TradingSession.owner == owner)
    if account_ids is not None:
        query = query.where(TradingSession.account_id.in_(list(account_ids)))
    return _page(session, query, TradingSession.created_at, TradingSession.id, str, limit, cursor)


def active_sessions(session: Session) -> list[TradingSession]:
    """Running and paused sessions, oldest first: what the runtime resumes at start."""
    query = (
        select(TradingSession)
        .where(TradingSession.status.in_(ACTIVE_STATUSES))
        .order_by(TradingSession.created_at, TradingSession.id)
    )
    return list(session.scalars(query))


# ---- one cycle's output ------------------------------------------------------------------------------


def record_cycle(
    session: Session,
    session_id: str,
    cycle: int,
    *,
    bars: Iterable[SessionBar] = (),
    signals: Iterable[SessionSignal] = (),
    decisions: Iterable[SessionDecision] = (),
    equity: SessionEquity | None = None,
    next_decision: int | None = None,
    last_seq: int | None = None,
    updated_at: datetime,
) -> None:
    """A cycle's bars, signals and decisions with the session's counters, in one transaction: after a
    crash a cycle is either entirely stored or not at all (then it is run again on the same bars)."""
    for row in (*bars, *signals, *decisions):
        session.merge(row)
    if equity is not None:
        session.merge(equity)
    values: dict[str, Any] = {"cycles": cycle, "updated_at": updated_at}
    if next_decision is not None:
        values["decisions"] = next_decision
    if last_seq is not None:
        values["last_seq"] = last_seq
    session.execute(update(TradingSession).where(TradingSession.id == session_id).values(**values))


def settle_decision(
    session: Session,
    session_id: str,
    seq: int,
    *,
    status: str,
    order_id: str | None = None,
    error: str | None = None,
) -> None:
    """A decision's outcome once the engine answered: `placed` with its order, or `refused`."""
    session.execute(
        update(SessionDecision)
        .where(SessionDecision.session_id == session_id, SessionDecision.seq == seq)
        .values(status=status, order_id=order_id, error=error)
    )


def pending_decisions(session: Session, session_id: str) -> list[SessionDecision]:
    """Decisions written but not confirmed (a crash came between): sent again, idempotently."""
    query = (
        select(SessionDecision)
        .where(SessionDecision.session_id == session_id, SessionDecision.status == "pending")
        .order_by(SessionDecision.seq)
    )
    return list(session.scalars(query))


def session_bars(session: Session, session_id: str) -> list[SessionBar]:
    """Every bar the session's strategies saw, oldest first (cycle order, then market)."""
    query = (
        select(SessionBar)
        .where(SessionBar.session_id == session_id)
        .order_by(SessionBar.cycle, SessionBar.market)
    )
    return list(session.scalars(query))


def list_signals(
    session: Session, session_id: str, *, limit: int | None = None, cursor: str | None = None
) -> Page[SessionSignal]:
    query = select(SessionSignal).where(SessionSignal.session_id == session_id)
    return _page(session, query, SessionSignal.at, SessionSignal.id, int, limit, cursor)


def list_decisions(
    session: Session, session_id: str, *, limit: int | None = None, cursor: str | None = None
) -> Page[SessionDecision]:
    query = select(SessionDecision).where(SessionDecision.session_id == session_id)
    return _page(session, query, SessionDecision.at, SessionDecision.seq, int, limit, cursor)


def list_order_decisions(
    session: Session, session_id: str, *, limit: int | None = None, cursor: str | None = None
) -> Page[SessionDecision]:
    """The decisions that placed an order, newest first (`GET /sessions/{id}/orders`)."""
    query = select(SessionDecision).where(
        SessionDecision.session_id == session_id, SessionDecision.order_id.is_not(None)
    )
    return _page(session, query, SessionDecision.at, SessionDecision.seq, int, limit, cursor)


def decisions_with_orders(session: Session, session_id: str) -> list[SessionDecision]:
    """The decisions that made an order (placed or still pending), oldest first."""
    query = (
        select(SessionDecision)
        .where(SessionDecision.session_id == session_id, SessionDecision.client_order_id.is_not(None))
        .order_by(SessionDecision.seq)
    )
    return list(session.scalars(query))


def decision_order_ids(session: Session, session_id: str) -> list[str]:
    """The ids of the orders the session placed, oldest first."""
    query = (
        select(SessionDecision.order_id)
        .where(SessionDecision.session_id == session_id, SessionDecision.order_id.is_not(None))
        .order_by(SessionDecision.seq)
    )
    return [order_id for order_id in session.scalars(query) if order_id is not None]


def equity_series(session: Session, session_id: str) -> list[SessionEquity]:
    query = select(SessionEquity).where(SessionEquity.session_id == session_id).order_by(SessionEquity.cycle)
    return list(session.scalars(query))


def account_fills(session: Session, account_id: str, markets: Sequence[str], since: datetime) -> list[Fill]:
    """The account's fills in `markets` from `since` on, oldest first (a session's trades)."""
    query = (
        select(Fill)
        .where(Fill.account_id == account_id, Fill.market.in_(list(markets)), Fill.executed_at >= since)
        .order_by(Fill.executed_at, Fill.id)
    )
    return list(session.scalars(query))
