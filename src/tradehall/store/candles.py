"""Candles in the read models: parts of a window merged into its stored row, exactly.

A `CandleUpdate` is what some prices add to one window (market, interval, start). Merging it into the
stored row keeps the open with the earliest `open_ts`, the close with the latest `close_ts`, the max
high and min low, and adds volume and trade counts. Max, min, earliest and latest do not care about
order or repetition; the sums do, so each part must be merged once: the projector merges the parts
of a batch in the batch's transaction (a rolled-back batch takes its candles with it, a batch the
database already holds is skipped whole), and `CandleWriter` merges each market-data part once.

Book-venue markets get their candles from the engine's trades (the projector); quote-venue markets
from their feed's trades or mids (`CandleWriter` behind `marketdata.CandleAggregator`). PostgreSQL
merges in one `INSERT ... ON CONFLICT DO UPDATE` on NUMERIC; SQLite keeps money as text (no SQL
max or sum), so the rows are read, merged with Decimals and written back in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tradehall.domain.candles import INTERVALS, Candle
from tradehall.store.db import Store
from tradehall.store.models import Candle as CandleRowModel
from tradehall.store.models import table_of
from tradehall.store.partitions import MonthlyPartitions, ensure_partitions_sync
from tradehall.store.types import utc_of_ns

log = structlog.get_logger(__name__)

NS_PER_S = 1_000_000_000
_KEY = ("market", "interval", "start")


@dataclass(frozen=True, slots=True)
class CandleUpdate:
    """A part of one window's candle; `open_ts` / `close_ts` are the ns times of its first and last price."""

    market: str
    interval: str
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    open_ts: int | None
    close_ts: int | None

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.market, self.interval, self.start)

    def merged(self, later: CandleUpdate) -> CandleUpdate:
        """This part with `later` (merged after it) added; the rule the SQL of PostgreSQL applies too.

        Ties go by merge order: an equal `open_ts` keeps this open, an equal `close_ts` takes the later
        close. A NULL time (a candle written whole) keeps this open and takes the later close.
        """
        earlier_open = later.open_ts is not None and self.open_ts is not None and later.open_ts < self.open_ts
        later_close = self.close_ts is None or later.close_ts is None or later.close_ts >= self.close_ts
        return CandleUpdate(
            self.market,
            self.interval,
            self.start,
            later.open if earlier_open else self.open,
            max(self.high, later.high),
            min(self.low, later.low),
            later.close if later_close else self.close,
            self.volume + later.volume,
            self.trades + later.trades,
            later.open_ts if earlier_open else self.open_ts,
            later.close_ts if later_close else self.close_ts,
        )


def combine(updates: Iterable[CandleUpdate]) -> list[CandleUpdate]:
    """One update per window, merged in the given order; sorted by (market, interval, start)."""
    merged: dict[tuple[str, str, datetime], CandleUpdate] = {}
    for update in updates:
        current = merged.get(update.key)
        merged[update.key] = update if current is None else current.merged(update)
    return [merged[key] for key in sorted(merged)]


class _Window:
    __slots__ = ("close", "close_ts", "high", "low", "open", "open_ts", "trades", "volume")

    def __init__(self, price: Decimal, quantity: Decimal, trades: int, ts: int) -> None:
        self.open = self.high = self.low = self.close = price
        self.open_ts = self.close_ts = ts
        self.volume = quantity
        self.trades = trades


class CandleBuilder:
    """Folds trades (or prices) into one `CandleUpdate` per window; `drain()` hands them over.

    Trades must arrive in time order within a window, as the journal gives them (an equal time keeps
    the first as open and the last as close).
    """

    def __init__(self, intervals: Sequence[str] = tuple(INTERVALS)) -> None:
        unknown = [name for name in intervals if name not in INTERVALS]
        if unknown:
            raise ValueError(f"unknown candle intervals: {unknown}")
        self.widths = [(name, INTERVALS[name] * NS_PER_S) for name in intervals]
        self._windows: dict[tuple[str, str, int], _Window] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def add_trade(self, market: str, price: Decimal, quantity: Decimal, ts: int) -> None:
        self._add(market, price, quantity, 1, ts)

    def add_price(self, market: str, price: Decimal, ts: int) -> None:
        """A quote mid or mark: moves OHLC, adds no volume and no trade."""
        self._add(market, price, Decimal(0), 0, ts)

    def _add(self, market: str, price: Decimal, quantity: Decimal, trades: int, ts: int) -> None:
        windows = self._windows
        for name, width in self.widths:
            key = (market, name, ts - ts % width)
            window = windows.get(key)
            if window is None:
                windows[key] = _Window(price, quantity, trades, ts)
                continue
            if price > window.high:
                window.high = price
            elif price < window.low:
                window.low = price
            if ts < window.open_ts:
                window.open, window.open_ts = price, ts
            if ts >= window.close_ts:
                window.close, window.close_ts = price, ts
            window.volume += quantity
            window.trades += trades

    def drain(self) -> list[CandleUpdate]:
        """The windows touched since the last drain, sorted by (market, interval, start)."""
        windows, self._windows = self._windows, {}
        return [
            CandleUpdate(
                market,
                name,
                utc_of_ns(start),
                w.open,
                w.high,
                w.low,
                w.close,
                w.volume,
                w.trades,
                w.open_ts,
                w.close_ts,
            )
            for (market, name, start), w in sorted(windows.items())
        ]


# ---- writing ----------------------------------------------------------------------------------------


def candle_starts(updates: Iterable[CandleUpdate]) -> list[datetime]:
    """The distinct window starts (for their monthly partitions on PostgreSQL)."""
    return sorted({update.start for update in updates})


def _merge_postgresql(connection: Connection, updates: Sequence[CandleUpdate]) -> None:
    table = table_of(CandleRowModel)
    statement = postgresql.insert(table)
    new, old = statement.excluded, table.c
    earlier_open = new.open_ts < old.open_ts  # NULL on either side: false, the stored open stays
    later_close = old.close_ts.is_(None) | new.close_ts.is_(None) | (new.close_ts >= old.close_ts)
    statement = statement.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={
            "open": case((earlier_open, new.open), else_=old.open),
            "open_ts": case((earlier_open, new.open_ts), else_=old.open_ts),
            "high": func.greatest(old.high, new.high),
            "low": func.least(old.low, new.low),
            "close": case((later_close, new.close), else_=old.close),
            "close_ts": case((later_close, new.close_ts), else_=old.close_ts),
            "volume": old.volume + new.volume,
            "trades": old.trades + new.trades,
        },
    )
    connection.execute(statement, [asdict(update) for update in updates])


def _stored(connection: Connection, updates: Sequence[CandleUpdate]) -> dict[tuple[str, str, datetime], Any]:
    table = table_of(CandleRowModel)
    starts_by_series: dict[tuple[str, str], list[datetime]] = {}
    for update in updates:
        starts_by_series.setdefault((update.market, update.interval), []).append(update.start)
    found: dict[tuple[str, str, datetime], Any] = {}
    for (market, interval), starts in starts_by_series.items():
        query = select(table).where(
            table.c.market == market, table.c.interval == interval, table.c.start.in_(starts)
        )
        for row in connection.execute(query).mappings():
            found[(row["market"], row["interval"], row["start"])] = row
    return found


def _merge_sqlite(connection: Connection, updates: Sequence[CandleUpdate]) -> None:
    stored = _stored(connection, updates)
    rows = []
    for update in updates:
        row = stored.get(update.key)
        if row is not None:
            names = CandleUpdate.__slots__
            update = CandleUpdate(**{name: row[name] for name in names}).merged(update)
        rows.append(asdict(update))
    statement = sqlite.insert(table_of(CandleRowModel))
    replace = {name: statement.excluded[name] for name in rows[0] if name not in _KEY}
    connection.execute(statement.on_conflict_do_update(index_elements=list(_KEY), set_=replace), rows)


def merge_candles_sync(
    connection: Connection, updates: Iterable[CandleUpdate], *, partitions_ready: bool = False
) -> int:
    """Merge `updates` into the stored candles in the connection's transaction; returns the rows written.

    On PostgreSQL the months' partitions are created first in the same transaction, unless the caller
    says it made them already (`partitions_ready`: the projector, through its cached `MonthlyPartitions`).
    """
    combined = combine(updates)
    if not combined:
        return 0
    dialect = connection.dialect.name
    if dialect == "postgresql":
        if not partitions_ready:
            ensure_partitions_sync(connection, "candles", candle_starts(combined))
        _merge_postgresql(connection, combined)
    elif dialect == "sqlite":
        _merge_sqlite(connection, combined)
    else:
        raise ValueError(f"merging candles does not support {dialect}")
    return len(combined)


def merge_candles(session: Session, updates: Iterable[CandleUpdate]) -> int:
    """`merge_candles_sync` for `Store.call` (the session's transaction)."""
    return merge_candles_sync(session.connection(), updates)


# ---- from market data -------------------------------------------------------------------------------


def update_of_part(part: Candle) -> CandleUpdate:
    """A market-data candle part as an update (`open_ts` / `close_ts` carried over)."""
    return CandleUpdate(
        part.market,
        part.interval,
        utc_of_ns(part.start_ts),
        part.open,
        part.high,
        part.low,
        part.close,
        part.volume,
        part.trades,
        part.open_ts,
        part.close_ts,
    )


class PartSource(Protocol):
    """What `CandleWriter` needs of `tradehall.marketdata.CandleAggregator` (the store does not import it)."""

    part_sink: Callable[[Candle], None] | None

    def flush_parts(self) -> int: ...


class CandleWriter:
    """Stores the candles of quote-venue markets: the aggregator's parts, batched, merged through the store.

    `CandleWriter(store, runtime.candles)` makes itself the aggregator's part sink; `run()` flushes
    every `interval` seconds (the open windows' parts too, so a chart's live candle is at most that
    old), `stop()` flushes what is left. `accept(market)` keeps book-venue markets out (their candles
    come from the projector). A failed write keeps the parts and retries them with the next flush.
    """

    def __init__(
        self,
        store: Store,
        aggregator: PartSource | None = None,
        *,
        interval: float = 1.0,
        accept: Callable[[str], bool] | None = None,
        max_pending: int = 100_000,
    ) -> None:
        self.store = store
        self.aggregator = aggregator
        self.interval = interval
        self.accept = accept
        self.max_pending = max_pending
        self.written = 0
        self.failures = 0
        self.dropped = 0
        self._pending: dict[tuple[str, str, datetime], CandleUpdate] = {}
        self._partitions = MonthlyPartitions(store.engine, "candles")
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        if aggregator is not None:
            aggregator.part_sink = self.on_part

    @property
    def pending(self) -> int:
        return len(self._pending)

    def on_part(self, part: Candle) -> None:
        """The aggregator's part sink (synchronous, on the event loop): only buffers."""
        if self.accept is not None and not self.accept(part.market):
            return
        self.add(update_of_part(part))

    def add(self, update: CandleUpdate) -> None:
        current = self._pending.get(update.key)
        if current is None and len(self._pending) >= self.max_pending:
            self.dropped += 1  # the database has been away for long: keep memory bounded
            return
        self._pending[update.key] = update if current is None else current.merged(update)

    async def flush(self) -> int:
        """Ask the aggregator for its open windows' parts and merge everything pending; returns rows."""
        async with self._lock:
            if self.aggregator is not None:
                self.aggregator.flush_parts()
            if not self._pending:
                return 0
            batch, self._pending = self._pending, {}
            updates = list(batch.values())
            try:
                if self._partitions.enabled:
                    await asyncio.to_thread(self._partitions.ensure_for, candle_starts(updates))
                written = await self.store.call(merge_candles, updates)
            except Exception:
                self._partitions.forget()
                # Newer parts arrived meanwhile: the failed ones are older, so they merge in first.
                for update in self._pending.values():
                    batch[update.key] = batch[update.key].merged(update) if update.key in batch else update
                self._pending = batch
                self.failures += 1
                raise
            self.written += written
            return written

    async def run(self) -> None:
        """Flush every `interval` seconds until `stop()`; a failed flush is logged and retried."""
        self._stop.clear()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)
            try:
                await self.flush()
            except Exception as error:  # the database is away: keep the parts, try again later
                log.warning("candle_write_failed", error=type(error).__name__, pending=self.pending)

    async def stop(self) -> None:
        """End `run()` (which flushes once more); flushing here too covers a writer that never ran."""
        self._stop.set()
        await self.flush()


__all__ = [
    "CandleBuilder",
    "CandleUpdate",
    "CandleWriter",
    "PartSource",
    "candle_starts",
    "combine",
    "merge_candles",
    "merge_candles_sync",
    "update_of_part",
]
