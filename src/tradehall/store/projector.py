"""The projector: engine events -> read models, one transaction per batch, exactly once.

Each batch is written in ONE transaction together with `projection_state.last_seq`, which the
transaction re-reads under a row lock: a batch the database already holds (a commit whose
acknowledgement was lost) is never written again, and a gap in the sequence is refused, so none is
ever skipped. The projector never blocks the engine: it reads its own `AsyncIterator[JournalRecord]`
and does its work in two threads (prepare rows, write them). A lost connection is retried with
exponential backoff; on restart, `await projector.last_seq()` says where to resume reading the journal.

The engine's events carry integers only; the projector converts them with each market's spec (from
`MarketCreated`, reloaded from the `markets` table on resume) and the currencies' decimals, through
`tradehall.domain.fixedpoint`. It keeps a mirror of balances, positions, marks and open orders in
memory, so a batch needs no reads; the mirror is rebuilt from the database after a failure.
Accounts' peak equity and drawdown are sampled at batch ends (the engine's own figures are
authoritative for assessment rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, TypeVarTuple

import msgspec
import structlog
from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, text, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from tradehall.domain.enums import (
    AccountKind,
    CancelReason,
    Liquidity,
    MarketKind,
    MarketStatus,
    OrderStatus,
    Venue,
)
from tradehall.domain.events import (
    AccountOpened,
    AccountStatusChanged,
    AnyEvent,
    AssessmentUpdated,
    BalanceChanged,
    FundingPaid,
    MarketCreated,
    MarketSettled,
    MarketStatusChanged,
    MarketVoided,
    MarkPriceUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderTriggered,
    PositionChanged,
    PositionTakenOver,
    TradeExecuted,
)
from tradehall.domain.fixedpoint import amount_of, decimal_of, decimal_str, minor_of, units_of
from tradehall.domain.market import BINARY_PAYOUT, DEFAULT_CURRENCY_DECIMALS, MarketSpec
from tradehall.journal.records import JournalRecord
from tradehall.store.candles import CandleBuilder, CandleUpdate, candle_starts, merge_candles_sync
from tradehall.store.ledger import ID_SHIFT, SYSTEM_PREFIX, MarketMoney, RecordLedger
from tradehall.store.models import (
    Account,
    Balance,
    EquityPoint,
    Fill,
    LedgerEntry,
    Market,
    Order,
    Position,
    ProjectionState,
    table_of,
)
from tradehall.store.partitions import FillPartitions, MonthlyPartitions
from tradehall.store.types import Money, UTCDateTime, sqlite_datetime, utc_of_ns

log = structlog.get_logger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

DEFAULT_PROJECTOR = "read_models"
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


class ProjectionError(Exception):
    """The events cannot be projected (unknown market, a gap in the sequence): not retried."""


class SequenceGapError(ProjectionError):
    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"journal sequence gap: expected seq {expected}, got {got}")
        self.expected = expected
        self.got = got


def is_transient(error: BaseException) -> bool:
    """A lost or refused connection (retry later), as opposed to a bug or bad data (stop)."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_delay: float = 0.05
    max_delay: float = 5.0
    multiplier: float = 2.0

    def delays(self) -> Iterable[float]:
        delay = self.initial_delay
        while True:
            yield delay
            delay = min(self.max_delay, delay * self.multiplier)


@dataclass(slots=True)
class _MarketState:
    spec: MarketSpec
    tick_lot: Decimal
    quote_decimals: int
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
    realized_pnl: int = 0
    margin: int = 0
    updated_ns: int = 0


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


@dataclass(frozen=True, slots=True)
class ProjectorConfig:
    name: str = DEFAULT_PROJECTOR
    max_batch_records: int = 1000
    max_pending_records: int = 100_000
    equity_interval_seconds: float = 1.0
    """Minimum event time between two equity_history points of one account (0 = every batch)."""
    currency_decimals: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CURRENCY_DECIMALS))
    default_currency_decimals: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    candle_intervals: tuple[str, ...] = ("1m", "5m", "15m", "1h", "1d")
    """Candles of book-venue markets from their trades (empty: none)."""


class Projector:
    """Projects journal records into the read models; see the module docstring.

    Each batch goes through two stages on two threads: *prepare* turns the events into rows with
    the in-memory mirror (pure Python), *write* runs one transaction. `run` overlaps the prepare of
    the next batch with the write of the current one. A write that fails transiently is retried
    with the same prepared rows: they describe the batch relative to the state after the previous
    batch, which is exactly what the database holds when the write is retried.
    """

    def __init__(
        self,
        engine: Engine,
        config: ProjectorConfig | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fault: Callable[[str], None] | None = None,
    ) -> None:
        """`fault(point)` is a test hook: "before_commit" inside the batch transaction, "after_commit"
        once it is committed (an error there is a commit whose acknowledgement was lost); to order the
        threads deterministically, "before_prepare" (preparer thread, before it looks at the mirror),
        "load_mirror" (inside the mirror's reload, after its first read) and "write_failed" (event loop,
        when a batch's write has failed for good)."""
        self._engine = engine
        self.config = config or ProjectorConfig()
        self._clock = clock
        self._fault = fault
        self._partitions = FillPartitions(engine)
        self._candle_partitions = MonthlyPartitions(engine, "candles")
        name = self.config.name
        self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"projector-{name}-prepare")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"projector-{name}-write")
        self._mirror: _Mirror | None = None
        self._prepared_seq: int | None = None
        self._projected_seq: int | None = None
        self._engine_seq = 0
        self.retries = 0
        self.connected = True

    # ---- the async face -------------------------------------------------------------------------

    async def last_seq(self) -> int:
        """The last journal seq durably projected: resume reading the journal after it."""
        seq = await self._retrying(self._writer, self._read_last_seq_sync)
        self._projected_seq = seq
        self._engine_seq = max(self._engine_seq, seq)
        return seq

    def observe_engine_seq(self, seq: int) -> None:
        """The runner reports the engine's latest seq, so `lag` counts what has not arrived yet too."""
        self._engine_seq = max(self._engine_seq, seq)

    @property
    def projected_seq(self) -> int | None:
        return self._projected_seq

    @property
    def lag(self) -> int:
        """Records the engine has sequenced that the read models do not show yet (for /ready)."""
        return max(0, self._engine_seq - (self._projected_seq or 0))

    async def apply(self, records: Sequence[JournalRecord]) -> int:
        """Project one batch (retrying transient failures); returns the stored last seq."""
        if not records:
            return await self.last_seq()
        self._engine_seq = max(self._engine_seq, records[-1].seq)
        prepared = await self._prepare(records)
        if prepared is None:
            return await self.last_seq()
        return await self._settle(asyncio.ensure_future(self._write(prepared)), prepared)

    async def run(self, source: AsyncIterator[JournalRecord]) -> None:
        """Project everything `source` yields, in batches of what has arrived, until it ends.

        A reader task moves records into a bounded queue so that batches form while a transaction
        runs; when the queue is full only `source` waits, never the engine (the runner feeds the
        projector from the journal, which holds everything).

        Batch N+1 is prepared while batch N is written, so the mirror is only dropped or reloaded
        once batch N's write has settled and no prepare runs (`_settle`): a failed write is this
        run's error, never a gap seen by a prepare that reloaded the mirror behind the write's back.
        `run` never returns or raises while a write of its own is still in the writer thread.
        """
        await self._retrying(self._writer, self._partitions.ensure_ahead, self._clock())
        await self._retrying(self._writer, self._candle_partitions.ensure_ahead, self._clock())
        pending: asyncio.Queue[JournalRecord | None] = asyncio.Queue(self.config.max_pending_records)
        reader = asyncio.create_task(self._read(source, pending))
        writing: asyncio.Task[int] | None = None
        written: _Prepared | None = None
        try:
            finished = False
            while not finished:
                first = await pending.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < self.config.max_batch_records:
                    try:
                        item = pending.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    if item is None:
                        finished = True
                        break
                    batch.append(item)
                prepared = await self._prepare(batch)
                if writing is not None and written is not None:
                    task, writing = writing, None
                    await self._settle(task, written)
                    if self._mirror is None:
                        # The database holds more than the mirror assumed (another writer): this
                        # batch was prepared on a stale mirror; prepare it again from the database.
                        prepared = await self._prepare(batch)
                if prepared is not None:
                    writing, written = asyncio.create_task(self._write(prepared)), prepared
            if writing is not None and written is not None:
                task, writing = writing, None
                await self._settle(task, written)
            await reader
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            if writing is not None:
                # Leaving early (a prepare failed, or we are cancelled) with a write in flight: stop its
                # retries, and wait until the attempt in the writer thread has committed or rolled
                # back (a thread cannot be stopped), so nothing of this run commits after it returns.
                self._mirror = None
                writing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writing
                await self._writer_idle()

    def close(self) -> None:
        self._preparer.shutdown(wait=True)
        self._writer.shutdown(wait=True)

    async def _read(
        self, source: AsyncIterator[JournalRecord], pending: asyncio.Queue[JournalRecord | None]
    ) -> None:
        try:
            async for record in source:
                self._engine_seq = max(self._engine_seq, record.seq)
                await pending.put(record)
        finally:
            await pending.put(None)

    async def _prepare(self, records: Sequence[JournalRecord]) -> _Prepared | None:
        try:
            return await self._retrying(self._preparer, self._prepare_sync, records)
        except Exception:
            self._mirror = None
            raise

    async def _write(self, prepared: _Prepared) -> int:
        """Write one batch; leaves the mirror alone (a prepare may be using it): see `_settle`."""
        try:
            seq = await self._retrying(self._writer, self._write_sync, prepared)
        except Exception:
            if self._fault is not None:
                self._fault("write_failed")
            raise
        self._projected_seq = seq
        return seq

    async def _settle(self, writing: asyncio.Future[int], prepared: _Prepared) -> int:
        """The outcome of `prepared`'s write, awaited when no prepare is running: the mirror, which
        already includes the batch, is dropped (reloaded by the next prepare, from one snapshot) if
        the write failed or the database holds another seq than the batch's last (another writer)."""
        try:
            seq = await writing
        except BaseException:
            self._mirror = None
            raise
        if seq != prepared.last_seq:
            self._mirror = None
        return seq

    async def _writer_idle(self) -> None:
        """Returns once the writer thread has finished what it was running."""
        await asyncio.get_running_loop().run_in_executor(self._writer, _nothing)

    async def _retrying(self, executor: ThreadPoolExecutor, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """`fn(*args)` in `executor`, retried with backoff while the database is unreachable."""
        delays = iter(self.config.retry.delays())
        loop = asyncio.get_running_loop()
        while True:
            try:
                result = await loop.run_in_executor(executor, fn, *args)
            except Exception as error:
                self._partitions.forget()
                self._candle_partitions.forget()
                if not is_transient(error):
                    raise
                self.connected = False
                self.retries += 1
                delay = next(delays)
                log.warning(
                    "projector_retry",
                    projector=self.config.name,
                    delay_s=delay,
                    error=type(error).__name__,
                    detail=str(error).splitlines()[0][:200],
                )
                await asyncio.sleep(delay)
                continue
            if not self.connected:
                log.info("projector_reconnected", projector=self.config.name, retries=self.retries)
                self.connected = True
            return result

    # ---- the worker threads -------------------------------------------------------------------

    def _read_last_seq_sync(self) -> int:
        with self._engine.connect() as connection:
            stored = _stored_last_seq(connection, self.config.name, lock=False)
            return 0 if stored is None else stored

    def _prepare_sync(self, records: Sequence[JournalRecord]) -> _Prepared | None:
        """Rows for the records not projected yet, from the mirror (which this advances)."""
        if self._fault is not None:
            self._fault("before_prepare")
        if self._mirror is None:
            self._mirror, self._prepared_seq = self._load_mirror()
        mirror = self._mirror
        last = self._prepared_seq
        todo = [record for record in records if last is None or record.seq > last]
        if not todo:
            return None
        # A fresh projection starts wherever its source starts; after that, no gap is allowed.
        expected = todo[0].seq if last is None else last + 1
        for record in todo:
            if record.seq != expected:
                raise SequenceGapError(expected, record.seq)
            expected = record.seq + 1
        batch = _Batch(mirror, self.config)
        for record in todo:
            batch.apply(record)
        prepared = _Prepared(
            previous_seq=last,
            last_seq=todo[-1].seq,
            last_ts=todo[-1].ts,
            records=len(todo),
            fills=batch.fill_count,
            fill_times=batch.fill_times(),
            writes=batch.plan(),
            candles=batch.candles.drain(),
        )
        self._prepared_seq = prepared.last_seq
        return prepared

    def _write_sync(self, prepared: _Prepared) -> int:
        started = time.perf_counter()
        if prepared.fill_times:
            self._partitions.ensure_for(prepared.fill_times)
        if prepared.candles:
            self._candle_partitions.ensure_for(candle_starts(prepared.candles))
        with self._engine.begin() as connection:
            stored = _stored_last_seq(connection, self.config.name, lock=True)
            if stored is not None and stored >= prepared.last_seq:
                return stored  # committed before, but the acknowledgement was lost: never twice
            if stored != prepared.previous_seq:
                raise ProjectionError(
                    f"projection {self.config.name!r} is at seq {stored} in the database, "
                    f"expected {prepared.previous_seq}: is another projector writing it?"
                )
            for write in prepared.writes:
                if write.keys:
                    _update_many(connection, write.table, write.keys, write.rows, write.columns)
                else:
                    _insert_many(connection, write.table, write.rows)
            merge_candles_sync(connection, prepared.candles, partitions_ready=True)
            now = utc_of_ns(prepared.last_ts)
            table = table_of(ProjectionState)
            if stored is None:
                connection.execute(
                    insert(table).values(name=self.config.name, last_seq=prepared.last_seq, updated_at=now)
                )
            else:
                connection.execute(
                    update(table)
                    .where(table.c.name == self.config.name)
                    .values(last_seq=prepared.last_seq, updated_at=now)
                )
            if self._fault is not None:
                self._fault("before_commit")
        if self._fault is not None:
            self._fault("after_commit")
        log.debug(
            "projector_batch",
            projector=self.config.name,
            records=prepared.records,
            last_seq=prepared.last_seq,
            fills=prepared.fills,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return prepared.last_seq

    def _load_mirror(self) -> tuple[_Mirror, int | None]:
        """The mirror as the database holds it, and the seq it reflects (None: nothing projected)."""
        mirror = _Mirror()
        decimals = self.config.currency_decimals
        default = self.config.default_currency_decimals
        with self._engine.connect() as connection:
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
            if self._fault is not None:
                self._fault("load_mirror")
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
            for row in connection.execute(select(table_of(Balance))).mappings():
                places = decimals.get(row["currency"], default)
                mirror.balances[(row["account_id"], row["currency"])] = (
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
                mirror.accounts_by_market.setdefault(row["market"], set()).add(row["account_id"])
                mirror.markets_by_account.setdefault(row["account_id"], set()).add(row["market"])
            orders = table_of(Order)
            columns = [orders.c.id, orders.c.market, *(orders.c[name] for name in _ORDER_COLUMNS_MUTABLE)]
            open_orders = select(*columns).where(orders.c.status.in_(_LIVE_ORDER_STATUSES))
            for row in connection.execute(open_orders).mappings():
                mirror.open_orders[int(row["id"])] = dict(row)
            stored = _stored_last_seq(connection, self.config.name, lock=False)
        return mirror, stored


def _nothing() -> None:
    return None


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
        payout_ticks=payout,
        status=status,
        created_ns=ts,
        updated_ns=ts,
    )


class _Batch:
    """The changes of one batch: applied to the mirror as they come, written to SQL at the end."""

    def __init__(self, mirror: _Mirror, config: ProjectorConfig) -> None:
        self.mirror = mirror
        self.config = config
        self.fill_count = 0
        self.new_markets: set[str] = set()
        self.dirty_markets: set[str] = set()
        self.new_accounts: set[str] = set()
        self.dirty_accounts: set[str] = set()
        self.new_balances: set[tuple[str, str]] = set()
        self.dirty_balances: set[tuple[str, str]] = set()
        self.new_positions: set[tuple[str, str]] = set()
        self.dirty_positions: set[tuple[str, str]] = set()
        self.revalued_markets: dict[str, tuple[int, int]] = {}
        self.touched_accounts: dict[str, tuple[int, int]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.new_orders: set[int] = set()
        self.fills: list[dict[str, Any]] = []
        self.ledger: list[dict[str, Any]] = []
        self._record_ledger = RecordLedger()
        self._ledger_index = 0
        self._command = ""
        self.candles = CandleBuilder(config.candle_intervals)
        self._seq = 0
        self._ts = 0
        self._last_ns = 0
        self._last_utc = utc_of_ns(0)

    # ---- applying events --------------------------------------------------------------------

    def apply(self, record: JournalRecord) -> None:
        self._seq = record.seq
        self._ts = record.ts
        self._record_ledger = RecordLedger()
        self._ledger_index = 0
        self._command = type(record.command).__name__
        for ev in record.events:
            handler = _HANDLERS.get(type(ev))
            if handler is not None:
                handler(self, ev)

    def _market(self, symbol: str) -> _MarketState:
        market = self.mirror.markets.get(symbol)
        if market is None:
            raise ProjectionError(f"event for unknown market {symbol!r} at seq {self._seq}")
        return market

    def _touch(self, account_id: str) -> None:
        self.touched_accounts[account_id] = (self._seq, self._ts)

    def on_market_created(self, ev: MarketCreated) -> None:
        spec = ev.spec
        places = self.config.currency_decimals.get(spec.quote, self.config.default_currency_decimals)
        self.mirror.markets[spec.symbol] = _market_state(spec, places, spec.status.value, ev.ts)
        self.new_markets.add(spec.symbol)

    def on_market_status(self, ev: MarketStatusChanged) -> None:
        market = self._market(ev.market)
        market.status = ev.status.value
        market.updated_ns = ev.ts
        self.dirty_markets.add(ev.market)

    def _close_positions(self, symbol: str, ts: int) -> None:
        for account_id in self.mirror.accounts_by_market.get(symbol, ()):
            position = self.mirror.positions[(account_id, symbol)]
            position.quantity = 0
            position.cost = 0
            position.updated_ns = ts
            self.dirty_positions.add((account_id, symbol))
            self._touch(account_id)

    def on_market_settled(self, ev: MarketSettled) -> None:
        market = self._market(ev.market)
        market.status = MarketStatus.SETTLED.value
        market.outcome = ev.outcome.value
        market.updated_ns = ev.ts
        market.settled_ns = ev.ts
        self._record_ledger.settled(market.spec.quote, ev)
        self.dirty_markets.add(ev.market)
        self._close_positions(ev.market, ev.ts)

    def on_market_voided(self, ev: MarketVoided) -> None:
        market = self._market(ev.market)
        market.status = MarketStatus.CANCELLED.value
        market.updated_ns = ev.ts
        market.settled_ns = ev.ts
        self._record_ledger.voided(market.spec.quote, ev)
        self.dirty_markets.add(ev.market)
        self._close_positions(ev.market, ev.ts)

    def on_mark(self, ev: MarkPriceUpdated) -> None:
        market = self._market(ev.market)
        market.mark_price = ev.price
        market.updated_ns = ev.ts
        self.dirty_markets.add(ev.market)
        self.revalued_markets[ev.market] = (self._seq, self._ts)

    def on_trade(self, ev: TradeExecuted) -> None:
        market = self._market(ev.market)
        market.last_price = ev.price
        market.updated_ns = ev.ts
        self.dirty_markets.add(ev.market)
        if market.mark_price is None:
            self.revalued_markets[ev.market] = (self._seq, self._ts)
        if market.spec.venue is Venue.BOOK:  # a quote venue's candles come from its feed
            self.candles.add_trade(ev.market, market.price(ev.price), market.quantity(ev.quantity), ev.ts)

    def on_account_opened(self, ev: AccountOpened) -> None:
        self.mirror.accounts[ev.account_id] = _AccountState(
            id=ev.account_id,
            owner=ev.owner,
            kind=ev.kind.value,
            currency=ev.currency,
            cost_basis=ev.cost_basis.value,
            tier=ev.tier,
            status="active",
            trading_state="active",
            created_ns=ev.ts,
            updated_ns=ev.ts,
        )
        self.new_accounts.add(ev.account_id)
        self._touch(ev.account_id)

    def on_assessment(self, ev: AssessmentUpdated) -> None:
        account = self.mirror.accounts.get(ev.account_id)
        if account is None:
            raise ProjectionError(f"assessment of unknown account {ev.account_id!r} at seq {self._seq}")
        places = self.config.currency_decimals.get(account.currency, self.config.default_currency_decimals)
        account.peak_equity = amount_of(ev.peak_equity, places)
        account.updated_ns = ev.ts
        self.dirty_accounts.add(ev.account_id)

    def on_account_status(self, ev: AccountStatusChanged) -> None:
        account = self.mirror.accounts.get(ev.account_id)
        if account is None:
            raise ProjectionError(f"status of unknown account {ev.account_id!r} at seq {self._seq}")
        account.status = ev.status.value
        account.trading_state = ev.trading_state.value
        account.updated_ns = ev.ts
        self.dirty_accounts.add(ev.account_id)

    def on_balance(self, ev: BalanceChanged) -> None:
        key = (ev.account_id, ev.currency)
        previous = self.mirror.balances.get(key)
        if previous is None:
            self.new_balances.add(key)
        if ev.delta and not ev.account_id.startswith(SYSTEM_PREFIX):
            self._ledger_lines(ev, 0 if previous is None else previous[0])
        self.mirror.balances[key] = (ev.total, ev.held, self._ts)
        self.dirty_balances.add(key)
        self._touch(ev.account_id)

    def _ledger_lines(self, ev: BalanceChanged, total: int) -> None:
        """The ledger entries of one balance change, with the running balance after each."""
        places = self.config.currency_decimals.get(ev.currency, self.config.default_currency_decimals)
        at = self._utc(self._ts)
        for cause in self._record_ledger.entries(ev, self._seq, total, self._command):
            total += cause.amount
            self.ledger.append(
                {
                    "id": (self._seq << ID_SHIFT) | self._ledger_index,
                    "account_id": cause.account_id,
                    "currency": cause.currency,
                    "type": cause.type,
                    "amount": amount_of(cause.amount, places),
                    "balance_after": amount_of(total, places),
                    "market": cause.market,
                    "order_id": cause.order_id,
                    "trade_id": cause.trade_id,
                    "at": at,
                }
            )
            self._ledger_index += 1

    def _money(self, market: _MarketState) -> MarketMoney:
        money = market.money
        if money is None:
            spec = market.spec
            base = self.config.currency_decimals.get(spec.base, self.config.default_currency_decimals)
            money = market.money = MarketMoney.of(spec, market.quote_decimals, base)
        return money

    def _held(self, account_id: str, symbol: str) -> int:
        position = self.mirror.positions.get((account_id, symbol))
        return 0 if position is None else position.quantity

    def on_funding(self, ev: FundingPaid) -> None:
        self._record_ledger.funding(self._market(ev.market).spec.quote, ev)

    def on_taken_over(self, ev: PositionTakenOver) -> None:
        money = self._money(self._market(ev.market))
        self._record_ledger.takeover(money, ev, self._held(ev.account_id, ev.market))

    def on_position(self, ev: PositionChanged) -> None:
        self._market(ev.market)
        key = (ev.account_id, ev.market)
        position = self.mirror.positions.get(key)
        if position is None:
            position = self.mirror.positions[key] = _PositionState()
            self.new_positions.add(key)
            self.mirror.accounts_by_market.setdefault(ev.market, set()).add(ev.account_id)
            self.mirror.markets_by_account.setdefault(ev.account_id, set()).add(ev.market)
        position.quantity = ev.quantity
        position.cost = ev.cost
        position.realized_pnl = ev.realized_pnl
        position.margin = ev.margin
        position.updated_ns = self._ts
        self.dirty_positions.add(key)
        self._touch(ev.account_id)

    def on_order_accepted(self, ev: OrderAccepted) -> None:
        market = self._market(ev.market)
        at = self._utc(ev.ts)
        self.orders[ev.order_id] = {
            "id": str(ev.order_id),
            "client_order_id": ev.client_order_id,
            "account_id": ev.account_id,
            "market": ev.market,
            "side": ev.requested_side.value,
            "engine_side": ev.side.value,
            "type": ev.type.value,
            "time_in_force": ev.time_in_force.value,
            "quantity": market.quantity(ev.quantity),
            "price": None if ev.price is None else market.price(ev.price),
            "stop_price": None if ev.stop_price is None else market.price(ev.stop_price),
            "expire_at": None if ev.expire_at is None else utc_of_ns(ev.expire_at),
            "post_only": ev.post_only,
            "reduce_only": ev.reduce_only,
            "status": ev.status.value,
            "filled_quantity": _ZERO,
            "average_price": None,
            "fees": amount_of(0, market.quote_decimals),  # "0.00" like the engine's, not "0"
            "notional": _ZERO,
            "created_at": at,
            "updated_at": at,
            "cancel_reason": None,
            "trigger": None if ev.trigger is None else ev.trigger.value,
        }
        self.mirror.open_orders[ev.order_id] = self.orders[ev.order_id]
        self.new_orders.add(ev.order_id)

    def _order(self, order_id: int) -> dict[str, Any] | None:
        order = self.orders.get(order_id)
        if order is None:
            order = self.mirror.open_orders.get(order_id)
            if order is None:
                log.warning("projector_unknown_order", order_id=order_id, seq=self._seq)
                return None
            self.orders[order_id] = order
        return order

    def on_order_filled(self, ev: OrderFilled) -> None:
        market = self._market(ev.market)
        price = market.price(ev.price)
        fee = amount_of(ev.fee, market.quote_decimals)
        at = self._utc(ev.ts)
        taker = ev.liquidity is Liquidity.TAKER
        self.fills.append(
            {
                "id": ev.trade_id * 2 + (1 if taker else 0),
                "executed_at": at,
                "trade_id": ev.trade_id,
                "order_id": str(ev.order_id),
                "account_id": ev.account_id,
                "market": ev.market,
                "side": ev.side.value,
                "price": price,
                "quantity": market.quantity(ev.quantity),
                "fee": fee,
                "liquidity": ev.liquidity.value,
                "realized_pnl": amount_of(ev.realized_pnl, market.quote_decimals),
                "origin": None if ev.origin is None else ev.origin.value,
            }
        )
        self.fill_count += 1
        self._touch(ev.account_id)
        self._record_ledger.fill(self._money(market), ev, self._held(ev.account_id, ev.market))
        order = self._order(ev.order_id)
        if order is None:
            return
        filled = market.quantity(ev.filled_quantity)
        notional = order["notional"] + decimal_of(ev.price * ev.quantity, market.tick_lot)
        order["notional"] = notional
        order["fees"] = order["fees"] + fee
        order["filled_quantity"] = filled
        order["average_price"] = (notional / filled) if filled else None
        order["status"] = ev.status.value
        order["updated_at"] = at

    def _utc(self, ns: int) -> datetime:
        """`utc_of_ns`, remembering the last one: the events of a record share their time."""
        if ns != self._last_ns:
            self._last_ns = ns
            self._last_utc = utc_of_ns(ns)
        return self._last_utc

    def on_order_cancelled(self, ev: OrderCancelled) -> None:
        self._close_order(
            ev.order_id, ev.market, ev.filled_quantity, OrderStatus.CANCELLED.value, ev.ts, ev.reason.value
        )

    def on_order_expired(self, ev: OrderExpired) -> None:
        self._close_order(
            ev.order_id, ev.market, ev.filled_quantity, OrderStatus.EXPIRED.value, ev.ts, _EXPIRED
        )

    def _close_order(
        self, order_id: int, symbol: str, filled: int, status: str, ts: int, reason: str
    ) -> None:
        spec = self._market(symbol).spec
        order = self._order(order_id)
        if order is None:
            return
        order["filled_quantity"] = decimal_of(filled, spec.lot_size)
        order["status"] = status
        order["updated_at"] = utc_of_ns(ts)
        order["cancel_reason"] = reason

    def on_order_amended(self, ev: OrderAmended) -> None:
        spec = self._market(ev.market).spec
        order = self._order(ev.order_id)
        if order is None:
            return
        if ev.price is not None:
            order["price"] = decimal_of(ev.price, spec.tick_size)
        if ev.stop_price is not None:
            order["stop_price"] = decimal_of(ev.stop_price, spec.tick_size)
        order["quantity"] = decimal_of(ev.quantity, spec.lot_size)
        order["updated_at"] = utc_of_ns(ev.ts)

    def on_order_triggered(self, ev: OrderTriggered) -> None:
        order = self._order(ev.order_id)
        if order is None:
            return
        if order["status"] == OrderStatus.PENDING_TRIGGER.value:
            order["status"] = _OPEN_AFTER_TRIGGER
        order["updated_at"] = utc_of_ns(ev.ts)

    # ---- writing ----------------------------------------------------------------------------

    def fill_times(self) -> list[datetime]:
        """The distinct execution times of the batch's fills (for their monthly partitions)."""
        return sorted({fill["executed_at"] for fill in self.fills})

    def plan(self) -> list[_Write]:
        """The batch's rows, in write order; order rows are copied (the mirror keeps changing them)."""
        mirror = self.mirror
        writes: list[_Write] = []

        def add(
            table: Table,
            rows: list[dict[str, Any]],
            keys: tuple[str, ...] = (),
            columns: tuple[str, ...] = (),
        ) -> None:
            if rows:
                writes.append(_Write(table, rows, keys, columns))

        add(table_of(Market), [self._market_row(symbol) for symbol in sorted(self.new_markets)])
        add(
            table_of(Market),
            [self._market_row(symbol) for symbol in sorted(self.dirty_markets - self.new_markets)],
            ("symbol",),
            ("status", "outcome", "settled_at", "last_price", "mark_price", "updated_at"),
        )
        for symbol, (seq, ts) in self.revalued_markets.items():
            for account_id in mirror.accounts_by_market.get(symbol, ()):
                if mirror.positions[(account_id, symbol)].quantity == 0:
                    continue  # a flat position has no P&L to revalue
                self.dirty_positions.add((account_id, symbol))
                if self.touched_accounts.get(account_id, (0, 0)) < (seq, ts):
                    self.touched_accounts[account_id] = (seq, ts)
        add(table_of(Balance), [self._balance_row(key) for key in sorted(self.new_balances)])
        add(
            table_of(Balance),
            [self._balance_row(key) for key in sorted(self.dirty_balances - self.new_balances)],
            ("account_id", "currency"),
            ("total", "held", "available", "updated_at"),
        )
        add(table_of(Position), [self._position_row(key) for key in sorted(self.new_positions)])
        add(
            table_of(Position),
            [self._position_row(key) for key in sorted(self.dirty_positions - self.new_positions)],
            ("account_id", "market"),
            _POSITION_COLUMNS_MUTABLE,
        )
        add(table_of(Order), [dict(self.orders[i]) for i in sorted(self.new_orders)])
        add(
            table_of(Order),
            [dict(row) for order_id, row in self.orders.items() if order_id not in self.new_orders],
            ("id",),
            _ORDER_COLUMNS_MUTABLE,
        )
        for order_id, row in self.orders.items():
            if row["status"] not in _LIVE_ORDER_STATUSES:
                mirror.open_orders.pop(order_id, None)
        add(table_of(Fill), self.fills)
        add(table_of(LedgerEntry), self.ledger)
        new_accounts, old_accounts, points = self._account_rows()
        add(table_of(Account), new_accounts)
        add(table_of(Account), old_accounts, ("id",), _ACCOUNT_COLUMNS_MUTABLE)
        add(table_of(EquityPoint), points)
        return writes

    def _account_rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        mirror = self.mirror
        interval_ns = int(self.config.equity_interval_seconds * 1_000_000_000)
        new_rows: list[dict[str, Any]] = []
        old_rows: list[dict[str, Any]] = []
        points: list[dict[str, Any]] = []
        for account_id in sorted(set(self.touched_accounts) | self.dirty_accounts | self.new_accounts):
            account = mirror.accounts.get(account_id)
            if account is None:
                continue
            seq, ts = self.touched_accounts.get(account_id, (self._seq, self._ts))
            row = self._account_row(account, ts)
            (new_rows if account_id in self.new_accounts else old_rows).append(row)
            if account_id in self.touched_accounts and (
                account.last_point_ns is None or ts - account.last_point_ns >= interval_ns
            ):
                account.last_point_ns = ts
                points.append(
                    {"account_id": account_id, "seq": seq, "at": utc_of_ns(ts), "equity": row["equity"]}
                )
        return new_rows, old_rows, points

    def _account_row(self, account: _AccountState, ts: int) -> dict[str, Any]:
        mirror = self.mirror
        places = self.config.currency_decimals.get(account.currency, self.config.default_currency_decimals)
        total, held, _ = mirror.balances.get((account.id, account.currency), (0, 0, 0))
        balance = amount_of(total, places)
        value = _ZERO
        unrealized = _ZERO
        realized = _ZERO
        for symbol in mirror.markets_by_account.get(account.id, ()):
            market = mirror.markets[symbol]
            if market.spec.quote != account.currency:
                continue
            position = mirror.positions[(account.id, symbol)]
            realized += amount_of(position.realized_pnl, market.quote_decimals)
            if position.quantity == 0:
                continue
            price = market.valuation_price
            if price is not None:
                unrealized += decimal_of(position.quantity * price - position.cost, market.tick_lot)
            value += decimal_of(_position_value(market, position, price), market.tick_lot)
        equity = balance + value
        if account.kind == AccountKind.ASSESSMENT.value:
            # The engine's AssessmentUpdated carries the peak its rules use: never second-guess it.
            peak = equity if account.peak_equity is None else account.peak_equity
        else:
            peak = equity if account.peak_equity is None else max(account.peak_equity, equity)
            account.peak_equity = peak
        account.updated_ns = max(account.updated_ns, ts)
        return {
            "id": account.id,
            "owner": account.owner,
            "kind": account.kind,
            "currency": account.currency,
            "cost_basis": account.cost_basis,
            "tier": account.tier,
            "status": account.status,
            "trading_state": account.trading_state,
            "balance": balance,
            "available": amount_of(total - held, places),
            "equity": equity,
            "unrealized_pnl": unrealized,
            "realized_pnl": realized,
            "peak_equity": peak,
            "drawdown": max(_ZERO, peak - equity),
            "created_at": utc_of_ns(account.created_ns),
            "updated_at": utc_of_ns(account.updated_ns),
        }

    def _market_row(self, symbol: str) -> dict[str, Any]:
        market = self.mirror.markets[symbol]
        spec = market.spec
        return {
            "symbol": spec.symbol,
            "kind": spec.kind.value,
            "venue": spec.venue.value,
            "base": spec.base,
            "quote": spec.quote,
            "tick_size": spec.tick_size,
            "lot_size": spec.lot_size,
            "min_quantity": spec.min_quantity,
            "max_quantity": spec.max_quantity,
            "maker_fee": spec.maker_fee,
            "taker_fee": spec.taker_fee,
            "fee_model": spec.fee_model.value,
            "max_leverage": spec.max_leverage,
            "initial_margin": spec.initial_margin,
            "maintenance_margin": spec.maintenance_margin,
            "status": market.status,
            "outcome": market.outcome,
            "settled_at": None if market.settled_ns is None else utc_of_ns(market.settled_ns),
            "close_time": None if spec.close_time is None else utc_of_ns(spec.close_time),
            "last_price": None
            if market.last_price is None
            else decimal_of(market.last_price, spec.tick_size),
            "mark_price": None
            if market.mark_price is None
            else decimal_of(market.mark_price, spec.tick_size),
            "spec_json": msgspec.json.encode(spec).decode(),
            "created_at": utc_of_ns(market.created_ns),
            "updated_at": utc_of_ns(market.updated_ns),
        }

    def _balance_row(self, key: tuple[str, str]) -> dict[str, Any]:
        total, held, ts = self.mirror.balances[key]
        places = self.config.currency_decimals.get(key[1], self.config.default_currency_decimals)
        return {
            "account_id": key[0],
            "currency": key[1],
            "total": amount_of(total, places),
            "held": amount_of(held, places),
            "available": amount_of(total - held, places),
            "updated_at": utc_of_ns(ts),
        }

    def _position_row(self, key: tuple[str, str]) -> dict[str, Any]:
        position = self.mirror.positions[key]
        market = self.mirror.markets[key[1]]
        spec = market.spec
        quantity = position.quantity
        price = market.valuation_price
        average: Decimal | None = None
        if quantity:
            average = decimal_of(position.cost, market.tick_lot) / decimal_of(quantity, spec.lot_size)
            if market.payout_ticks is not None and quantity < 0:
                average = BINARY_PAYOUT - average
        unrealized = _ZERO
        mark = None if price is None else decimal_of(price, spec.tick_size)
        if quantity and price is not None:
            unrealized = decimal_of(quantity * price - position.cost, market.tick_lot)
            if market.payout_ticks is not None and quantity < 0:
                mark = BINARY_PAYOUT - decimal_of(price, spec.tick_size)  # NO terms, like its entry
        updated = position.updated_ns
        if key[1] in self.revalued_markets:
            updated = max(updated, self.revalued_markets[key[1]][1])
        return {
            "account_id": key[0],
            "market": key[1],
            "side": _position_side(spec.kind, quantity),
            "quantity": decimal_of(quantity, spec.lot_size),
            "cost": decimal_of(position.cost, market.tick_lot),
            "average_entry_price": average,
            "mark_price": mark,
            "unrealized_pnl": unrealized,
            "realized_pnl": amount_of(position.realized_pnl, market.quote_decimals),
            "margin": amount_of(position.margin, market.quote_decimals),
            "updated_at": utc_of_ns(updated),
        }


def _position_side(kind: MarketKind, quantity: int) -> str:
    if quantity == 0:
        return "flat"
    if kind == MarketKind.BINARY:
        return "yes" if quantity > 0 else "no"
    return "long" if quantity > 0 else "short"


def _position_value(market: _MarketState, position: _PositionState, price: int | None) -> int:
    """What the position adds to equity, in tick-lots of the quote currency.

    Perp: only its unrealised P&L (the margin is still in the cash balance). Spot: the holding at the
    price. Binary: YES contracts at the price, NO contracts at payout - price. Without any price yet
    (no mark, no trade) a position counts at its cost, with no P&L.
    """
    quantity = position.quantity
    if market.spec.kind == MarketKind.PERP:
        return 0 if price is None else quantity * price - position.cost
    value = position.cost if price is None else quantity * price
    if market.payout_ticks is not None and quantity < 0:
        return -quantity * market.payout_ticks + value
    return value


def _insert_many(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY on PostgreSQL (psycopg sends one INSERT per row otherwise), a plain executemany of
    pre-converted tuples on SQLite (SQLAlchemy's per-row parameter processing costs more than the
    insert itself); both in the batch's transaction."""
    if not rows:
        return
    names = [column.name for column in table.columns if column.name in rows[0]]
    column_list = ", ".join(f'"{name}"' for name in names)
    if connection.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in names)
        sql = f'INSERT INTO "{table.name}" ({column_list}) VALUES ({marks})'
        connection.exec_driver_sql(sql, _sqlite_rows(table, names, rows))
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({column_list}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[name] for name in names])


def _update_many(
    connection: Connection,
    table: Table,
    keys: Sequence[str],
    rows: Sequence[dict[str, Any]],
    columns: Iterable[str],
) -> None:
    if not rows:
        return
    columns = tuple(columns)
    if connection.dialect.name == "postgresql":
        _update_many_unnest(connection, table, keys, rows, columns)
        return
    if connection.dialect.name == "sqlite":
        assignments = ", ".join(f'"{column}" = ?' for column in columns)
        matches = " AND ".join(f'"{key}" = ?' for key in keys)
        sql = f'UPDATE "{table.name}" SET {assignments} WHERE {matches}'
        connection.exec_driver_sql(sql, _sqlite_rows(table, (*columns, *keys), rows))
        return
    statement = (
        update(table)
        .where(*(table.c[key] == bindparam(f"k_{key}") for key in keys))
        .values({column: bindparam(f"v_{column}") for column in columns})
    )
    params = [
        {**{f"k_{key}": row[key] for key in keys}, **{f"v_{column}": row[column] for column in columns}}
        for row in rows
    ]
    connection.execute(statement, params)


def _sqlite_rows(table: Table, names: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as SQLite parameters, converted the way `Money` and `UTCDateTime` bind them (exact
    decimal text, fixed-width naive UTC text), column by column; the times of a batch repeat a lot."""
    times: dict[datetime, str] = {}

    def time_text(value: datetime | None) -> str | None:
        if value is None:
            return None
        text_value = times.get(value)
        if text_value is None:
            text_value = times[value] = sqlite_datetime(value)
        return text_value

    def money_text(value: Decimal | None) -> str | None:
        return None if value is None else decimal_str(value)

    def same(value: Any) -> Any:
        return value

    converters: list[Callable[[Any], Any]] = []
    for name in names:
        kind = table.c[name].type
        converters.append(
            money_text if isinstance(kind, Money) else time_text if isinstance(kind, UTCDateTime) else same
        )
    pairs = list(zip(names, converters, strict=True))
    return [tuple(convert(row[name]) for name, convert in pairs) for row in rows]


def _update_many_unnest(
    connection: Connection,
    table: Table,
    keys: Sequence[str],
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
) -> None:
    """One UPDATE ... FROM unnest(arrays) statement instead of a round trip per row (PostgreSQL).

    Values bypass the column types' bind processing, so they must already be what PostgreSQL takes:
    Decimals, aware datetimes, strings, booleans (they are: the rows come from the projector).
    """
    names = (*keys, *columns)
    arrays = ", ".join(
        f"CAST(:a{i} AS {table.c[name].type.compile(dialect=connection.dialect)}[])"
        for i, name in enumerate(names)
    )
    assignments = ", ".join(f'"{name}" = v."{name}"' for name in columns)
    matches = " AND ".join(f't."{key}" = v."{key}"' for key in keys)
    column_list = ", ".join(f'"{name}"' for name in names)
    sql = f'UPDATE "{table.name}" AS t SET {assignments} FROM unnest({arrays}) AS v({column_list})'
    sql += f" WHERE {matches}"
    params = {f"a{i}": [row[name] for row in rows] for i, name in enumerate(names)}
    connection.execute(text(sql), params)


_HANDLERS: dict[type[AnyEvent], Callable[[_Batch, Any], None]] = {
    MarketCreated: _Batch.on_market_created,
    MarketStatusChanged: _Batch.on_market_status,
    MarketSettled: _Batch.on_market_settled,
    MarketVoided: _Batch.on_market_voided,
    MarkPriceUpdated: _Batch.on_mark,
    TradeExecuted: _Batch.on_trade,
    AccountOpened: _Batch.on_account_opened,
    AccountStatusChanged: _Batch.on_account_status,
    AssessmentUpdated: _Batch.on_assessment,
    BalanceChanged: _Batch.on_balance,
    PositionChanged: _Batch.on_position,
    OrderAccepted: _Batch.on_order_accepted,
    OrderFilled: _Batch.on_order_filled,
    OrderCancelled: _Batch.on_order_cancelled,
    OrderExpired: _Batch.on_order_expired,
    OrderAmended: _Batch.on_order_amended,
    OrderTriggered: _Batch.on_order_triggered,
    FundingPaid: _Batch.on_funding,
    PositionTakenOver: _Batch.on_taken_over,
}
"""Events without a read model of their own have no handler: BookChanged (the engine serves books),
OrderRejected and CommandRejected (refusals are not orders), QuoteUpdated, LeverageChanged,
PositionLiquidated, AssessmentFailed/Passed (their effects arrive as OrderAccepted,
OrderFilled, PositionChanged, BalanceChanged and AccountStatusChanged events). FundingPaid and
PositionTakenOver only say why balances changed (the ledger's causes)."""
