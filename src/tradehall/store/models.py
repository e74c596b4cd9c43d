"""The read models: tables the projector fills from engine events and the API reads.

Nothing here is a source of truth (the journal is); every table except users, api_keys and alerts (the
monitor's) can be rebuilt by replaying the journal into an empty database. Money, prices and
quantities are `Money` (NUMERIC on PostgreSQL, exact text on SQLite) converted from the events'
integers with the market spec.

Over 400 lines on purpose: every table of the read models in one declarative module, the one
place Alembic's autogenerate and the migration test compare against.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tradehall.store.types import Money, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """An API key, by the SHA-256 of its secret. `scopes` is a comma-separated list (`read,trade`);
    `account_id` (NULL: any of the user's accounts) binds the key to one account; `last_used_at` is
    written at most once a minute per key (`tradehall.api.auth`), so it is exact to that minute."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    label: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[str] = mapped_column(String(64), default="read,trade", server_default="read,trade")
    account_id: Mapped[str | None] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Account(Base):
    """One trading account; the money columns are in the account's `currency`, updated per batch."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(16))
    cost_basis: Mapped[str] = mapped_column(String(16))
    tier: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    trading_state: Mapped[str] = mapped_column(String(16))
    balance: Mapped[Decimal] = mapped_column(Money)
    available: Mapped[Decimal] = mapped_column(Money)
    equity: Mapped[Decimal] = mapped_column(Money)
    unrealized_pnl: Mapped[Decimal] = mapped_column(Money)
    realized_pnl: Mapped[Decimal] = mapped_column(Money)
    peak_equity: Mapped[Decimal] = mapped_column(Money)
    drawdown: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Balance(Base):
    __tablename__ = "balances"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, default=0, server_default="0")
    """A cluster shard's index (collateral is held per shard); 0 on one machine."""
    total: Mapped[Decimal] = mapped_column(Money)
    held: Mapped[Decimal] = mapped_column(Money)
    available: Mapped[Decimal] = mapped_column(Money)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Market(Base):
    """The spec's columns for queries, plus `spec_json` (msgspec JSON) to rebuild the exact spec."""

    __tablename__ = "markets"

    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    instrument: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    venue: Mapped[str] = mapped_column(String(16))
    base: Mapped[str] = mapped_column(String(16))
    quote: Mapped[str] = mapped_column(String(16))
    tick_size: Mapped[Decimal] = mapped_column(Money)
    lot_size: Mapped[Decimal] = mapped_column(Money)
    min_quantity: Mapped[Decimal | None] = mapped_column(Money)
    max_quantity: Mapped[Decimal | None] = mapped_column(Money)
    maker_fee: Mapped[Decimal] = mapped_column(Money)
    taker_fee: Mapped[Decimal] = mapped_column(Money)
    fee_model: Mapped[str] = mapped_column(String(16))
    max_leverage: Mapped[Decimal | None] = mapped_column(Money)
    initial_margin: Mapped[Decimal | None] = mapped_column(Money)
    maintenance_margin: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(8))
    close_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # settled or voided
    last_price: Mapped[Decimal | None] = mapped_column(Money)
    mark_price: Mapped[Decimal | None] = mapped_column(Money)
    spec_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Order(Base):
    """`side` is what the client asked for (buy/sell/long/short/yes/no); `engine_side` is buy/sell.

    `notional` (sum of price x quantity over the fills, in the quote currency) makes `average_price`
    exact without reading the fills back.
    """

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_account_created", "account_id", "created_at", "id"),
        Index("ix_orders_market_created", "market", "created_at", "id"),
        Index("ix_orders_account_status", "account_id", "status"),
        Index("ix_orders_account_client_order_id", "account_id", "client_order_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_order_id: Mapped[str | None] = mapped_column(String(128))
    account_id: Mapped[str] = mapped_column(String(64))
    market: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    engine_side: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money)
    stop_price: Mapped[Decimal | None] = mapped_column(Money)
    expire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    post_only: Mapped[bool] = mapped_column(Boolean)
    reduce_only: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20))
    filled_quantity: Mapped[Decimal] = mapped_column(Money)
    average_price: Mapped[Decimal | None] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)
    notional: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(String(32))
    trigger: Mapped[str | None] = mapped_column(String(16))
    trail_percent: Mapped[Decimal | None] = mapped_column(Money)
    trail_price: Mapped[Decimal | None] = mapped_column(Money)
    activation_price: Mapped[Decimal | None] = mapped_column(Money)
    hwm: Mapped[Decimal | None] = mapped_column(Money)
    order_class: Mapped[str | None] = mapped_column(String(8))
    parent_order_id: Mapped[str | None] = mapped_column(String(32), index=True)
    take_profit: Mapped[Decimal | None] = mapped_column(Money)
    stop_loss: Mapped[Decimal | None] = mapped_column(Money)
    stop_loss_limit: Mapped[Decimal | None] = mapped_column(Money)
    venue: Mapped[str | None] = mapped_column(String(16))  # "smart": a routed parent, `market` its instrument
    children: Mapped[str | None] = mapped_column(Text)  # a smart order's child order ids (JSON)
    decision_price: Mapped[Decimal | None] = mapped_column(Money)


class OrderExecution(Base):
    """An order's execution figures (`store/projector/execution.py`), kept from the events as they come:
    `GET /orders/{id}/execution` reads one row, `GET /analytics/execution` groups them."""

    __tablename__ = "order_executions"
    __table_args__ = (
        Index("ix_order_executions_account_accepted", "account_id", "accepted_at"),
        Index("ix_order_executions_market_accepted", "market", "accepted_at"),
    )

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    market: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(32))
    session: Mapped[str | None] = mapped_column(String(64))
    day: Mapped[str] = mapped_column(String(10))
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    filled_quantity: Mapped[Decimal] = mapped_column(Money)
    notional: Mapped[Decimal] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)
    average_price: Mapped[Decimal | None] = mapped_column(Money)
    arrival_mid: Mapped[Decimal | None] = mapped_column(Money)
    decision_price: Mapped[Decimal | None] = mapped_column(Money)
    vwap: Mapped[Decimal | None] = mapped_column(Money)
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fill_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    arrival_slippage_bps: Mapped[Decimal | None] = mapped_column(Money)
    vwap_slippage_bps: Mapped[Decimal | None] = mapped_column(Money)
    implementation_shortfall_bps: Mapped[Decimal | None] = mapped_column(Money)
    markout_1s_bps: Mapped[Decimal | None] = mapped_column(Money)
    markout_10s_bps: Mapped[Decimal | None] = mapped_column(Money)
    markout_60s_bps: Mapped[Decimal | None] = mapped_column(Money)


class Fill(Base):
    """One side of one trade. `id` = trade_id * 2 + (1 for the taker, 0 for the maker).

    On PostgreSQL the table is partitioned by month on `executed_at`, hence the composite key.
    """

    __tablename__ = "fills"
    __table_args__ = (
        Index("ix_fills_account_executed", "account_id", "executed_at", "id"),
        Index("ix_fills_market_executed", "market", "executed_at", "id"),
        Index("ix_fills_order", "order_id"),
        {"postgresql_partition_by": "RANGE (executed_at)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    executed_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    trade_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[str] = mapped_column(String(64))
    market: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    price: Mapped[Decimal] = mapped_column(Money)
    quantity: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money)
    liquidity: Mapped[str] = mapped_column(String(8))
    realized_pnl: Mapped[Decimal] = mapped_column(Money)
    origin: Mapped[str | None] = mapped_column(String(20))  # liquidation | assessment_close | NULL


class LedgerEntry(Base):
    """One change of one balance of a user's account (`tradehall.store.ledger` says how the projector
    splits the engine's per-command balance changes by cause).

    `id` = journal seq x 2**20 + the entry's index in the record, so replaying a record gives the same
    ids and (at, id) orders entries like the journal. `amount` is signed; `balance_after` is the
    running total of the currency after it. Amounts are in the currency's minor-unit precision.
    """

    __tablename__ = "ledger"
    __table_args__ = (Index("ix_ledger_account_at", "account_id", "at", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money)
    balance_after: Mapped[Decimal] = mapped_column(Money)
    market: Mapped[str | None] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(32))
    trade_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Position(Base):
    """`quantity` is signed (negative = short, or NO on a binary market); `side` says the same in words.

    `average_entry_price` is the NO price (1 - YES) for a NO position, as the API shows it.
    """

    __tablename__ = "positions"
    __table_args__ = (Index("ix_positions_market", "market"),)

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    market: Mapped[str] = mapped_column(String(64), primary_key=True)
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    cost: Mapped[Decimal] = mapped_column(Money)
    average_entry_price: Mapped[Decimal | None] = mapped_column(Money)
    mark_price: Mapped[Decimal | None] = mapped_column(Money)
    unrealized_pnl: Mapped[Decimal] = mapped_column(Money)
    realized_pnl: Mapped[Decimal] = mapped_column(Money)
    margin: Mapped[Decimal] = mapped_column(Money)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EquityPoint(Base):
    """An account's equity after the journal record `seq` (sampled, see the projector)."""

    __tablename__ = "equity_history"
    __table_args__ = (Index("ix_equity_history_account_at", "account_id", "at", "seq"),)

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    equity: Mapped[Decimal] = mapped_column(Money)


class Candle(Base):
    """OHLCV of one window; `open_ts` / `close_ts` (ns) are the times of the prices that set open and
    close, so parts of a window merge in any order (`tradehall.store.candles`). NULL for candles
    written whole (`upsert_candles`, e.g. a provider's history). PostgreSQL: partitioned by month."""

    __tablename__ = "candles"
    __table_args__ = ({"postgresql_partition_by": "RANGE (start)"},)

    market: Mapped[str] = mapped_column(String(64), primary_key=True)
    interval: Mapped[str] = mapped_column(String(8), primary_key=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    open: Mapped[Decimal] = mapped_column(Money)
    high: Mapped[Decimal] = mapped_column(Money)
    low: Mapped[Decimal] = mapped_column(Money)
    close: Mapped[Decimal] = mapped_column(Money)
    volume: Mapped[Decimal] = mapped_column(Money)
    trades: Mapped[int] = mapped_column(Integer, default=0)
    open_ts: Mapped[int | None] = mapped_column(BigInteger)
    close_ts: Mapped[int | None] = mapped_column(BigInteger)


class TradingSession(Base):
    """A live trading session (`tradehall.strategies.sessions`): not a projection of engine events but
    the session runtime's own durable state, so a restart resumes it. `markets`, `strategies` and
    `settings` are JSON; `anchor_ns` is the engine time its first cycle started at (cycles run at
    anchor + k x interval); `cycles` counts completed cycles and `decisions` the decision numbers
    handed out (client order ids derive from them)."""

    __tablename__ = "trading_sessions"
    __table_args__ = (Index("ix_trading_sessions_account_created", "account_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text)
    markets: Mapped[str] = mapped_column(Text)
    strategies: Mapped[str] = mapped_column(Text)
    settings: Mapped[str] = mapped_column(Text)
    anchor_ns: Mapped[int] = mapped_column(BigInteger)
    cycles: Mapped[int] = mapped_column(BigInteger, default=0)
    decisions: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    """The journal seq the session has worked through as stored: a restart reads the journal after it."""
    start_equity: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SessionBar(Base):
    """One cycle's bar of one market as the session's strategies saw it (prices as decimal strings):
    after a restart the strategies are warmed up again on these, so their indicators continue."""

    __tablename__ = "session_bars"

    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    market: Mapped[str] = mapped_column(String(64), primary_key=True)
    start_ns: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    end_ns: Mapped[int] = mapped_column(BigInteger)
    cycle: Mapped[int] = mapped_column(BigInteger)
    open: Mapped[Decimal] = mapped_column(Money)
    high: Mapped[Decimal] = mapped_column(Money)
    low: Mapped[Decimal] = mapped_column(Money)
    close: Mapped[Decimal] = mapped_column(Money)
    volume: Mapped[Decimal] = mapped_column(Money)


class SessionSignal(Base):
    """A signal one of a session's strategies emitted (`hold` too, with its reason)."""

    __tablename__ = "session_signals"
    __table_args__ = (Index("ix_session_signals_session_at", "session_id", "at", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(32))
    cycle: Mapped[int] = mapped_column(BigInteger)
    strategy: Mapped[str] = mapped_column(String(64))
    market: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money)
    reason: Mapped[str] = mapped_column(Text)
    meta: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class SessionDecision(Base):
    """The combined decision of one cycle for one market. `seq` is the session's decision number:
    the order's client order id is derived from (session, seq), so a decision replayed after a crash
    meets the engine's idempotency instead of placing a second order. `status`: `pending` (written,
    order not yet confirmed), `placed`, `refused` (the engine said no, `error` its code), `vetoed`,
    `hold` (no trade)."""

    __tablename__ = "session_decisions"
    __table_args__ = (Index("ix_session_decisions_session_at", "session_id", "at", "seq"),)

    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    cycle: Mapped[int] = mapped_column(BigInteger)
    market: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money)
    quantity: Mapped[Decimal | None] = mapped_column(Money)
    reason: Mapped[str] = mapped_column(Text)
    vetoed_by: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    client_order_id: Mapped[str | None] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    order: Mapped[str | None] = mapped_column(Text)
    """The order request as JSON (what a replay sends again, identically)."""
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class SessionEquity(Base):
    """The session account's equity at the end of each cycle (the performance report's series)."""

    __tablename__ = "session_equity"

    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    cycle: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at_ns: Mapped[int] = mapped_column(BigInteger)
    equity: Mapped[Decimal] = mapped_column(Money)


class AlertRecord(Base):
    """One firing of an alert rule (`tradehall.api.monitor`): written by the monitor, not projected,
    so, like users and api_keys, not rebuilt by a replay. `resolved_at` is NULL while it fires."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_started_at_id", "started_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    value: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProjectionState(Base):
    __tablename__ = "projection_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, typed as a Table (the projector writes with Core, not the ORM)."""
    return cast(Table, model.__table__)
