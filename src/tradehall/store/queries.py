"""Read queries for the API, with keyset cursor pagination on (time, id), newest first.

A cursor is the (time, id) of the last item of a page, base64url-encoded: the next page is every
row strictly before it in (time desc, id desc) order. Rows inserted meanwhile are newer (they appear
on a fresh first page), so a walk through the pages never repeats or skips a row that existed when
it started. All functions take a sync `Session` first; call them through `Store.call`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from tradehall.domain.enums import OrderStatus
from tradehall.domain.errors import invalid_request
from tradehall.store.models import (
    Account,
    Balance,
    Candle,
    EquityPoint,
    Fill,
    LedgerEntry,
    Market,
    Order,
    OrderExecution,
    Position,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
OPEN_STATUSES = (
    OrderStatus.OPEN.value,
    OrderStatus.PARTIALLY_FILLED.value,
    OrderStatus.PENDING_TRIGGER.value,
)
CLOSED_STATUSES = (
    OrderStatus.FILLED.value,
    OrderStatus.CANCELLED.value,
    OrderStatus.REJECTED.value,
    OrderStatus.EXPIRED.value,
)
OrderFilter = Literal["open", "closed", "all"]
CANDLE_INTERVALS = ("1m", "5m", "15m", "1h", "1d")

T = TypeVar("T")
M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1:
        raise invalid_request(f"limit must be at least 1, got {limit}")
    return min(limit, MAX_LIMIT)


def encode_cursor(at: datetime, key: str | int) -> str:
    raw = json.dumps([at.isoformat(), key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str | int]:
    """The (time, key) of a cursor, or `invalid_request`: the one place every paginated list parses
    its cursor, so everything here must be bindable as it is (a bad value would otherwise surface as
    a driver error, a 500, when the query runs)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at_text, key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None or not isinstance(key, str | int) or isinstance(key, bool):
            raise ValueError("malformed cursor")
        # In UTC, as the store binds it: 9999-12-31T23:00-05:00 or 0001-01-01T00:00+01:00 overflow.
        at = at.astimezone(UTC)
        if isinstance(key, int) and not -(2**63) <= key < 2**63:  # the databases' BIGINT
            raise ValueError("malformed cursor")
        if isinstance(key, str) and "\x00" in key:  # PostgreSQL text cannot hold NUL
            raise ValueError("malformed cursor")
        if isinstance(key, str):
            key.encode()  # a lone surrogate ("\\ud800" in the JSON) is no UTF-8: UnicodeEncodeError
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise invalid_request("cursor is not valid; use the next_cursor of a previous page") from None
    return at, key


def _page(
    session: Session,
    query: Select[M],
    time_column: InstrumentedAttribute[datetime],
    key_column: InstrumentedAttribute[Any],
    key_of: type[str] | type[int],
    limit: int | None,
    cursor: str | None,
) -> Page[M]:
    size = clamp_limit(limit)
    if cursor is not None:
        at, key = decode_cursor(cursor)
        if not isinstance(key, key_of):
            raise invalid_request("cursor belongs to another list")
        query = query.where(tuple_(time_column, key_column) < tuple_(at, key))
    query = query.order_by(time_column.desc(), key_column.desc()).limit(size + 1)
    rows = list(session.scalars(query))
    if len(rows) <= size:
        return Page(rows, None)
    rows = rows[:size]
    last = rows[-1]
    return Page(rows, encode_cursor(getattr(last, time_column.key), getattr(last, key_column.key)))


def _ids(values: str | Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [values] if isinstance(values, str) else list(values)


# ---- fills and trades ---------------------------------------------------------------------------


def list_fills(
    session: Session,
    account_id: str | Sequence[str],
    *,
    market: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[Fill]:
    """An account's fills (or several accounts'), newest first: `GET /trades?account_id=&market=`."""
    accounts = _ids(account_id) or []
    conditions: list[ColumnElement[bool]] = [Fill.account_id.in_(accounts)]
    if market is not None:
        conditions.append(Fill.market == market)
    return _page(session, select(Fill).where(*conditions), Fill.executed_at, Fill.id, int, limit, cursor)


def list_market_trades(
    session: Session, market: str, *, limit: int | None = None, cursor: str | None = None
) -> Page[Fill]:
    """A market's public trades: the taker side of each match (one row per trade)."""
    query = select(Fill).where(Fill.market == market, Fill.liquidity == "taker")
    return _page(session, query, Fill.executed_at, Fill.id, int, limit, cursor)


def list_order_fills(session: Session, order_id: str) -> list[Fill]:
    """An order's fills, oldest first (the `fills` of the order object)."""
    query = select(Fill).where(Fill.order_id == order_id).order_by(Fill.executed_at, Fill.id)
    return list(session.scalars(query))


def list_ledger(
    session: Session, account_id: str, *, limit: int | None = None, cursor: str | None = None
) -> Page[LedgerEntry]:
    """An account's balance changes, newest first: `GET /accounts/{id}/ledger`."""
    query = select(LedgerEntry).where(LedgerEntry.account_id == account_id)
    return _page(session, query, LedgerEntry.at, LedgerEntry.id, int, limit, cursor)


def trades_since(session: Session, market: str, since: datetime) -> list[tuple[int, datetime, Decimal]]:
    """(trade id, time, quantity) of each of a market's trades at or after `since`, oldest first:
    one per trade (a trade has a row per side with an order, one when the other is the venue's)."""
    query = (
        select(Fill.trade_id, Fill.executed_at, Fill.quantity)
        .where(Fill.market == market, Fill.executed_at >= since)
        .order_by(Fill.trade_id)
    )
    trades: list[tuple[int, datetime, Decimal]] = []
    for trade_id, executed_at, quantity in session.execute(query):
        if not trades or trades[-1][0] != trade_id:
            trades.append((trade_id, executed_at, quantity))
    return trades


# ---- orders -------------------------------------------------------------------------------------


def list_orders(
    session: Session,
    account_id: str | Sequence[str] | None = None,
    *,
    market: str | None = None,
    status: OrderFilter = "open",
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[Order]:
    """Orders by creation time, newest first; `status` open (incl. partially filled and pending
    trigger), closed, or all."""
    conditions: list[ColumnElement[bool]] = []
    accounts = _ids(account_id)
    if accounts is not None:
        conditions.append(Order.account_id.in_(accounts))
    if market is not None:
        conditions.append(Order.market == market)
    if status == "open":
        conditions.append(Order.status.in_(OPEN_STATUSES))
    elif status == "closed":
        conditions.append(Order.status.in_(CLOSED_STATUSES))
    elif status != "all":
        raise invalid_request(f"status must be open, closed or all, got {status!r}")
    return _page(session, select(Order).where(*conditions), Order.created_at, Order.id, str, limit, cursor)


def get_order(session: Session, order_id: str) -> Order | None:
    return session.get(Order, order_id)


def get_order_execution(session: Session, order_id: str) -> OrderExecution | None:
    return session.get(OrderExecution, order_id)


def list_order_executions(
    session: Session,
    accounts: list[str],
    market: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[OrderExecution]:
    """The execution rows of `accounts` (of one market, accepted in [start, end)), by the account and
    acceptance-time indexes."""
    query = select(OrderExecution).where(OrderExecution.account_id.in_(accounts))
    if market is not None:
        query = query.where(OrderExecution.market == market)
    if start is not None:
        query = query.where(OrderExecution.accepted_at >= start)
    if end is not None:
        query = query.where(OrderExecution.accepted_at < end)
    return list(session.scalars(query.order_by(OrderExecution.accepted_at, OrderExecution.order_id)))


def list_order_legs(session: Session, order_id: str) -> list[Order]:
    """The exits placed for an order (a bracket's or oto's entry, an oco's take-profit), oldest first."""
    query = select(Order).where(Order.parent_order_id == order_id)
    return list(session.scalars(query.order_by(Order.created_at, Order.id)))


def find_order_by_client_id(session: Session, account_id: str, client_order_id: str) -> Order | None:
    query = select(Order).where(Order.account_id == account_id, Order.client_order_id == client_order_id)
    return session.scalars(query.order_by(Order.created_at).limit(1)).first()


# ---- accounts, balances, positions, equity --------------------------------------------------------


def get_account(session: Session, account_id: str) -> Account | None:
    return session.get(Account, account_id)


def list_accounts(session: Session, owner: str) -> list[Account]:
    return list(session.scalars(select(Account).where(Account.owner == owner).order_by(Account.created_at)))


def list_balances(session: Session, account_id: str) -> list[Balance]:
    query = select(Balance).where(Balance.account_id == account_id).order_by(Balance.currency)
    return list(session.scalars(query))


def list_positions(session: Session, account_id: str, *, include_flat: bool = False) -> list[Position]:
    """Open positions (side != flat) unless `include_flat`, by market."""
    query = select(Position).where(Position.account_id == account_id)
    if not include_flat:
        query = query.where(Position.side != "flat")
    return list(session.scalars(query.order_by(Position.market)))


def list_equity(
    session: Session,
    account_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[EquityPoint]:
    """Equity history, newest first, optionally within [start, end)."""
    query = select(EquityPoint).where(EquityPoint.account_id == account_id)
    if start is not None:
        query = query.where(EquityPoint.at >= start)
    if end is not None:
        query = query.where(EquityPoint.at < end)
    return _page(session, query, EquityPoint.at, EquityPoint.seq, int, limit, cursor)


# ---- markets and candles --------------------------------------------------------------------------


def list_markets(session: Session) -> list[Market]:
    return list(session.scalars(select(Market).order_by(Market.symbol)))


def get_market(session: Session, symbol: str) -> Market | None:
    return session.get(Market, symbol)


def list_candles(
    session: Session,
    market: str,
    interval: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    oldest_first: bool = False,
) -> Page[Candle]:
    """Candles within [start, end), newest first; the cursor key is the interval (start is unique).

    `oldest_first` (what a chart draws, `GET /markets/{symbol}/candles`): with `start`, the first
    `limit` candles from it and a cursor to the next ones; without, the latest `limit` before `end`
    (no cursor: page back by passing the first item's time as `end`).
    """
    if interval not in CANDLE_INTERVALS:
        raise invalid_request(f"interval must be one of {', '.join(CANDLE_INTERVALS)}, got {interval!r}")
    query = select(Candle).where(Candle.market == market, Candle.interval == interval)
    if start is not None:
        query = query.where(Candle.start >= start)
    if end is not None:
        query = query.where(Candle.start < end)
    if not oldest_first:
        if cursor is not None and decode_cursor(cursor)[1] != interval:
            raise invalid_request("cursor belongs to another list")
        return _page(session, query, Candle.start, Candle.interval, str, limit, cursor)
    size = clamp_limit(limit)
    forward_key = f">{interval}"  # an ascending cursor is not a descending one
    if cursor is None and start is None:
        latest = list(session.scalars(query.order_by(Candle.start.desc()).limit(size)))
        return Page(latest[::-1], None)
    if cursor is not None:
        after, key = decode_cursor(cursor)
        if key != forward_key:
            raise invalid_request("cursor belongs to another list")
        query = query.where(Candle.start > after)
    rows = list(session.scalars(query.order_by(Candle.start).limit(size + 1)))
    if len(rows) <= size:
        return Page(rows, None)
    rows = rows[:size]
    return Page(rows, encode_cursor(rows[-1].start, forward_key))
