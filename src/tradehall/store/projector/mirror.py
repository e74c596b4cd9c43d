"""The projector's in-memory mirror of the read models (so a batch needs no reads), the rows a batch
hands to the writer, and the mirror's reload from the database in one snapshot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, Table, select

from tradehall.domain.enums import (
    CancelReason,
    MarketKind,
    OrderStatus,
)
from tradehall.domain.fixedpoint import decimal_of, minor_of, units_of
from tradehall.domain.market import BINARY_PAYOUT, MarketSpec
from tradehall.store.candles import CandleUpdate
from tradehall.store.ledger import MarketMoney
from tradehall.store.models import (
    Account,
    Balance,
    EquityPoint,
    Market,
    Order,
    OrderExecution,
    Position,
    ProjectionState,
    table_of,
)
from tradehall.store.projector.config import ProjectionError, ProjectorConfig
from tradehall.store.projector.execution import ExecutionTracker

_ZERO = Decimal(0)
_MEMO_LIMIT = 65_536
_ORDER_COLUMNS_MUTABLE = (
    "status",
    "filled_quantity",
    "average_price",
    "fees",
    "notional",
    "price",
    "quantity",
    "updated_at",
    "stop_price",
    "cancel_reason",
    "trail_percent",
    "trail_price",
    "hwm",
)
_OPEN_AFTER_TRIGGER = OrderStatus.OPEN.value
_EXPIRED = CancelReason.EXPIRED.value
_POSITION_COLUMNS_MUTABLE = (
    "side",
    "quantity",
    "cost",
    "average_entry_price",
    "mark_price",
    "unrealized_pnl",
    "realized_pnl",
    "margin",
    "updated_at",
)
_ACCOUNT_COLUMNS_MUTABLE = (
    "status",
    "trading_state",
    "balance",
    "available",
    "equity",
    "unrealized_pnl",
    "realized_pnl",
    "peak_equity",
    "drawdown",
    "updated_at",
)
_LIVE_ORDER_STATUSES = (
    OrderStatus.OPEN.value,
    OrderStatus.PARTIALLY_FILLED.value,
    OrderStatus.PENDING_TRIGGER.value,
)


@dataclass(slots=True)
class _MarketState:
    spec: MarketSpec
    tick_lot: Decimal
    quote_decimals: int
    minor_ratio: tuple[int, int]
    """Quote minor units per tick-lot, as (numerator, denominator): exact money from tick-lots."""
    payout_ticks: int | None
    status: str
    outcome: str | None = None
    last_price: int | None = None
    mark_price: int | None = None
    created_ns: int = 0
    updated_ns: int = 0
    settled_ns: int | None = None
    """When the market was settled or voided."""
    money: MarketMoney | None = None
    """What its fills move in minor units (the ledger's arithmetic), made on first use."""

    prices: dict[int, Decimal] = field(default_factory=dict)
    quantities: dict[int, Decimal] = field(default_factory=dict)

    @property
    def valuation_price(self) -> int | None:
        return self.mark_price if self.mark_price is not None else self.last_price

    def price(self, ticks: int) -> Decimal:
        """`decimal_of(ticks, tick_size)`, memoised: a busy market trades at few distinct prices."""
        value = self.prices.get(ticks)
        if value is None:
            if len(self.prices) >= _MEMO_LIMIT:
                self.prices.clear()
            value = self.prices[ticks] = decimal_of(ticks, self.spec.tick_size)
        return value

    def quantity(self, lots: int) -> Decimal:
        value = self.quantities.get(lots)
        if value is None:
            if len(self.quantities) >= _MEMO_LIMIT:
                self.quantities.clear()
            value = self.quantities[lots] = decimal_of(lots, self.spec.lot_size)
        return value


@dataclass(slots=True)
class _AccountState:
    id: str
    owner: str
    kind: str
    currency: str
    cost_basis: str
    tier: str | None
    status: str
    trading_state: str
    created_ns: int
    updated_ns: int
    peak_equity: Decimal | None = None
    last_point_ns: int | None = None


@dataclass(slots=True)
class _PositionState:
    quantity: int = 0
    cost: int = 0
    cost_rem: int = 0  # the exact entry value is cost + cost_rem / cost_den (engine events)
    cost_den: int = 1
    realized_pnl: int = 0
    margin: int = 0
    updated_ns: int = 0
    flat_price: int | None = None
    """A flat position's valuation price when it went flat: its row shows that, however the journal
    was cut into batches (revaluations skip flat positions, so a later price would depend on where
    the batch ended)."""


@dataclass(slots=True)
class _Mirror:
    markets: dict[str, _MarketState] = field(default_factory=dict)
    accounts: dict[str, _AccountState] = field(default_factory=dict)
    balances: dict[tuple[str, str], tuple[int, int, int]] = field(default_factory=dict)
    positions: dict[tuple[str, str], _PositionState] = field(default_factory=dict)
    accounts_by_market: dict[str, set[str]] = field(default_factory=dict)
    markets_by_account: dict[str, set[str]] = field(default_factory=dict)
    open_orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Rows of the orders that can still change (open, partially filled, pending trigger)."""
    assets_of: dict[str, set[str]] = field(default_factory=dict)
    """Account -> the currencies it has a non-zero balance in."""
    holders_of: dict[str, set[str]] = field(default_factory=dict)
    """Currency -> the accounts with a non-zero balance in it (whom a spot price revalues)."""
    _spot_index: dict[tuple[str, str], str] = field(default_factory=dict)
    _spot_index_size: int = -1
    execution: ExecutionTracker = field(default_factory=ExecutionTracker)
    """Execution analytics kept as the events come (`execution.py`)."""

    def set_balance(self, account_id: str, currency: str, total: int, held: int, ts: int) -> None:
        self.balances[(account_id, currency)] = (total, held, ts)
        if total:
            self.assets_of.setdefault(account_id, set()).add(currency)
            self.holders_of.setdefault(currency, set()).add(account_id)
        else:
            self.assets_of.get(account_id, set()).discard(currency)
            self.holders_of.get(currency, set()).discard(account_id)

    def spot_market_for(self, asset: str, currency: str) -> _MarketState | None:
        """The spot market that prices `asset` in `currency`, the first by symbol (as the engine's)."""
        if len(self.markets) != self._spot_index_size:
            index: dict[tuple[str, str], str] = {}
            for symbol in sorted(self.markets, reverse=True):
                spec = self.markets[symbol].spec
                if spec.kind == MarketKind.SPOT:
                    index[(spec.base, spec.quote)] = symbol
            self._spot_index = index
            self._spot_index_size = len(self.markets)
        found = self._spot_index.get((asset, currency))
        return None if found is None else self.markets[found]


@dataclass(frozen=True, slots=True)
class _Write:
    """Rows to insert (no keys) or to update by `keys`, setting `columns`."""

    table: Table
    rows: list[dict[str, Any]]
    keys: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Prepared:
    previous_seq: int | None
    last_seq: int
    last_ts: int
    records: int
    fills: int
    fill_times: list[datetime]
    writes: list[_Write]
    candles: list[CandleUpdate] = field(default_factory=list)
    """Book-venue markets' candle parts of the batch, merged in its transaction (so exactly once)."""


def _one_snapshot(connection: Connection) -> Connection:
    """`connection` with every following read in one snapshot, until it is closed: the mirror's
    tables and its seq must come from the same point even while another writer commits.

    PostgreSQL: a REPEATABLE READ transaction. SQLite: pysqlite starts no transaction for reads, so
    each SELECT would see the latest commit; an explicit BEGIN holds one WAL snapshot from the first
    read (the connection's close rolls it back).
    """
    if connection.dialect.name == "postgresql":
        return connection.execution_options(isolation_level="REPEATABLE READ")
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN")
    return connection


def _stored_last_seq(connection: Connection, name: str, *, lock: bool) -> int | None:
    table = table_of(ProjectionState)
    query = select(table.c.last_seq).where(table.c.name == name)
    if lock:
        query = query.with_for_update()
    value = connection.execute(query).scalar_one_or_none()
    return None if value is None else int(value)


def _ns_of(instant: datetime) -> int:
    return int(instant.timestamp()) * 1_000_000_000 + instant.microsecond * 1000


def _market_state(spec: MarketSpec, quote_decimals: int, status: str, ts: int) -> _MarketState:
    payout = units_of(BINARY_PAYOUT, spec.tick_size, "payout") if spec.kind == MarketKind.BINARY else None
    return _MarketState(
        spec=spec,
        tick_lot=spec.tick_size * spec.lot_size,
        quote_decimals=quote_decimals,
        minor_ratio=(spec.tick_size * spec.lot_size).scaleb(quote_decimals).as_integer_ratio(),
        payout_ticks=payout,
        status=status,
        created_ns=ts,
        updated_ns=ts,
    )


def load_mirror(
    engine: Engine, config: ProjectorConfig, fault: Callable[[str], None] | None = None
) -> tuple[_Mirror, int | None]:
    """The mirror as the database holds it, and the seq it reflects (None: nothing projected)."""
    mirror = _Mirror()
    decimals = config.currency_decimals
    default = config.default_currency_decimals
    with engine.connect() as connection:
        connection = _one_snapshot(connection)
        for row in connection.execute(select(table_of(Market))).mappings():
            spec = msgspec.json.decode(row["spec_json"], type=MarketSpec)
            state = _market_state(spec, decimals.get(spec.quote, default), row["status"], 0)
            state.outcome = row["outcome"]
            if row["settled_at"] is not None:
                state.settled_ns = _ns_of(row["settled_at"])
            if row["last_price"] is not None:
                state.last_price = units_of(row["last_price"], spec.tick_size, "last_price")
            if row["mark_price"] is not None:
                state.mark_price = units_of(row["mark_price"], spec.tick_size, "mark_price")
            state.created_ns = _ns_of(row["created_at"])
            state.updated_ns = _ns_of(row["updated_at"])
            mirror.markets[spec.symbol] = state
        if fault is not None:
            fault("load_mirror")
        for row in connection.execute(select(table_of(Account))).mappings():
            mirror.accounts[row["id"]] = _AccountState(
                id=row["id"],
                owner=row["owner"],
                kind=row["kind"],
                currency=row["currency"],
                cost_basis=row["cost_basis"],
                tier=row["tier"],
                status=row["status"],
                trading_state=row["trading_state"],
                created_ns=_ns_of(row["created_at"]),
                updated_ns=_ns_of(row["updated_at"]),
                peak_equity=row["peak_equity"],
            )
        last_points = select(EquityPoint.account_id, EquityPoint.at).order_by(EquityPoint.account_id)
        for account_id, at in connection.execute(last_points):
            account = mirror.accounts.get(account_id)
            if account is not None:
                ns = _ns_of(at)
                account.last_point_ns = max(account.last_point_ns or ns, ns)
        balances = table_of(Balance)
        own = select(balances).where(balances.c.shard == config.shard_index)
        for row in connection.execute(own).mappings():
            places = decimals.get(row["currency"], default)
            mirror.set_balance(
                row["account_id"],
                row["currency"],
                minor_of(row["total"], places),
                minor_of(row["held"], places),
                _ns_of(row["updated_at"]),
            )
        for row in connection.execute(select(table_of(Position))).mappings():
            market = mirror.markets.get(row["market"])
            if market is None:
                raise ProjectionError(f"position in unknown market {row['market']!r}")
            spec = market.spec
            mirror.positions[(row["account_id"], row["market"])] = _PositionState(
                quantity=units_of(row["quantity"], spec.lot_size, "quantity"),
                cost=units_of(row["cost"], market.tick_lot, "cost"),
                realized_pnl=minor_of(row["realized_pnl"], market.quote_decimals),
                margin=minor_of(row["margin"], market.quote_decimals),
                updated_ns=_ns_of(row["updated_at"]),
            )
            position = mirror.positions[(row["account_id"], row["market"])]
            if row["mark_price"] is not None and position.quantity == 0:
                position.flat_price = units_of(row["mark_price"], spec.tick_size, "mark_price")
            mirror.accounts_by_market.setdefault(row["market"], set()).add(row["account_id"])
            mirror.markets_by_account.setdefault(row["account_id"], set()).add(row["market"])
        orders = table_of(Order)
        columns = [
            orders.c.id,
            orders.c.market,
            orders.c.parent_order_id,
            orders.c.venue,
            orders.c.children,
            orders.c.quantity,
            *(orders.c[name] for name in _ORDER_COLUMNS_MUTABLE if name != "quantity"),
        ]
        open_orders = select(*columns).where(orders.c.status.in_(_LIVE_ORDER_STATUSES))
        for row in connection.execute(open_orders).mappings():
            mirror.open_orders[int(row["id"])] = dict(row)
        executions = table_of(OrderExecution)
        unended = select(executions).where(executions.c.ended_at.is_(None))
        for row in connection.execute(unended).mappings():
            mirror.execution.resume(dict(row))
        for order_id, order in mirror.open_orders.items():  # a smart order's open children feed it again
            parent = order.get("parent_order_id")
            if parent is not None and int(parent) in mirror.execution.following:
                mirror.execution.parent_of[order_id] = int(parent)
        stored = _stored_last_seq(connection, config.name, lock=False)
    return mirror, stored
