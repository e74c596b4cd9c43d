"""Monthly partitions on PostgreSQL (declarative range partitioning): `fills` on `executed_at`,
`candles` on `start`. Every function takes the parent table's name (default `fills`).

Every writer creates the months it is about to write before it writes them: the projector and the
quote-venue `CandleWriter` through `MonthlyPartitions.ensure_for` (its own short transaction, the
month after each one too, cached so the common batch costs no query), imports and other session
writers through `ensure_partitions_sync` inside their own transaction. Any year works (1999, 2090).

Each table also has a DEFAULT partition (`fills_default`, migration 0003) as the safety net: a row
whose month has no partition (a stale cache, a writer outside the store) lands there instead of
failing the write. PostgreSQL refuses to create a range partition while DEFAULT holds rows of that
range, so `create_month_sync` takes those rows out of DEFAULT, creates the month and puts them into
it, all in one transaction under the parent's lock; the DEFAULT partition stays empty in practice, so
the scan PostgreSQL makes of it whenever a partition is created stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

import structlog
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = structlog.get_logger(__name__)

LOCK_TIMEOUT_MS = 2000

_EXISTING_SQL = text(
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = to_regclass(:parent)"
)
_COLUMNS_SQL = text(
    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:parent) AND attnum > 0 "
    "AND NOT attisdropped ORDER BY attnum"
)
PARTITION_KEYS = {"fills": "executed_at", "candles": "start"}
"""Each partitioned table and the column it is partitioned on."""
PARTITIONED_TABLES = tuple(PARTITION_KEYS)


def month_of(instant: datetime) -> date:
    utc = instant.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def next_month(month: date) -> date:
    return date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)


def _checked(table: str) -> str:
    # Table names go into DDL text: only the known partitioned tables.
    if table not in PARTITION_KEYS:
        raise ValueError(f"{table!r} is not a partitioned table")
    return table


def partition_name(month: date, table: str = "fills") -> str:
    return f"{_checked(table)}_p{month.year:04d}_{month.month:02d}"


def default_partition_name(table: str = "fills") -> str:
    return f"{_checked(table)}_default"


def _bounds(month: date) -> tuple[str, str]:
    """The month's range as timestamptz literals (December 9999 ends at year 10000, which PostgreSQL
    takes and `date` cannot hold)."""
    upper = (
        f"{month.year + 1:04d}-01-01" if month.month == 12 else f"{month.year:04d}-{month.month + 1:02d}-01"
    )
    return f"{month.isoformat()} 00:00:00+00", f"{upper} 00:00:00+00"


def partition_ddl(month: date, table: str = "fills") -> str:
    lower, upper = _bounds(month)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(month, table)} PARTITION OF {table} "
        f"FOR VALUES FROM ('{lower}') TO ('{upper}')"
    )


def default_partition_ddl(table: str = "fills") -> str:
    name = default_partition_name(table)
    return f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} DEFAULT"


def months_of(instants: Iterable[datetime]) -> set[date]:
    return {month_of(instant) for instant in instants}


def months_needed(instants: Iterable[datetime]) -> set[date]:
    """Every month of `instants` and the month after each (none after December 9999)."""
    months: set[date] = set()
    for month in months_of(instants):
        months.add(month)
        if month.year < 9999 or month.month < 12:
            months.add(next_month(month))
    return months


def existing_partitions(connection: Connection, table: str = "fills") -> set[str]:
    result = connection.execute(_EXISTING_SQL, {"parent": _checked(table)})
    return {row[0] for row in result}


def _exists(connection: Connection, name: str) -> bool:
    return connection.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}).scalar() is True


def create_month_sync(connection: Connection, month: date, table: str = "fills") -> bool:
    """Create `month`'s partition of `table` in the connection's transaction (the caller commits);
    False if it exists already. PostgreSQL only.

    The parent is locked first (the lock the DDL takes anyway), so a concurrent creator waits and
    then finds the partition instead of failing on a duplicate. Rows of the month already in the
    DEFAULT partition are moved into the new partition in the same transaction: PostgreSQL would
    refuse the partition otherwise.
    """
    name = partition_name(month, table)
    if _exists(connection, name):
        return False
    connection.execute(text(f"LOCK TABLE ONLY {table} IN ACCESS EXCLUSIVE MODE"))
    if _exists(connection, name):
        return False
    default = default_partition_name(table)
    key = PARTITION_KEYS[table]
    lower, upper = _bounds(month)
    in_month = f"{key} >= '{lower}' AND {key} < '{upper}'"
    moving = _exists(connection, default) and bool(
        connection.execute(text(f"SELECT EXISTS (SELECT 1 FROM {default} WHERE {in_month})")).scalar()
    )
    if not moving:
        connection.execute(text(partition_ddl(month, table)))
        return True
    columns = ", ".join(f'"{row[0]}"' for row in connection.execute(_COLUMNS_SQL, {"parent": table}))
    connection.execute(text("DROP TABLE IF EXISTS pg_temp.tradehall_moving_rows"))
    connection.execute(
        text(f"CREATE TEMP TABLE tradehall_moving_rows AS SELECT {columns} FROM {default} WHERE {in_month}")
    )
    moved = connection.execute(text(f"DELETE FROM {default} WHERE {in_month}")).rowcount
    connection.execute(text(partition_ddl(month, table)))
    moved_rows = f"SELECT {columns} FROM pg_temp.tradehall_moving_rows"
    connection.execute(text(f"INSERT INTO {table} ({columns}) {moved_rows}"))
    connection.execute(text("DROP TABLE pg_temp.tradehall_moving_rows"))
    log.info("partition_rows_moved_out_of_default", table=table, partition=name, rows=moved)
    return True


def create_partitions_sync(
    connection: Connection, months: Iterable[date], table: str = "fills"
) -> list[date]:
    """For migrations: create the partitions of `months` on a sync connection (PostgreSQL only)."""
    return [month for month in sorted(set(months)) if create_month_sync(connection, month, table)]


def ensure_partitions_sync(connection: Connection, table: str, instants: Iterable[datetime]) -> list[date]:
    """Before a write in the connection's transaction: create the partitions of the months of
    `instants` that do not exist yet (a no-op on SQLite); returns the months created.

    For writers that own a transaction (imports, `upsert_candles`, `merge_candles`); a created
    partition's lock is then held until that transaction ends. Waits at most `LOCK_TIMEOUT_MS` for
    the parent's lock (then the transaction fails with a lock timeout), and restores the caller's
    `lock_timeout` afterwards.
    """
    if connection.dialect.name != "postgresql":
        return []
    existing = existing_partitions(connection, table)
    missing = sorted(m for m in months_of(instants) if partition_name(m, table) not in existing)
    if not missing:
        return []
    previous = connection.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    connection.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": f"{LOCK_TIMEOUT_MS}ms"})
    created = create_partitions_sync(connection, missing, table)
    connection.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": previous})
    for month in created:
        log.info(f"{table}_partition_created", partition=partition_name(month, table))
    return created


class MonthlyPartitions:
    """Creates a table's partitions on demand and a month ahead; a no-op on SQLite. Not thread-safe:
    one owner (the projector's writer thread, a candle writer) per instance."""

    def __init__(self, engine: Engine, table: str = "fills") -> None:
        self._engine = engine
        self.table = _checked(table)
        self._enabled = engine.dialect.name == "postgresql"
        self._known: set[str] | None = None

    @property
    def enabled(self) -> bool:
        return self._enabled

    def forget(self) -> None:
        """Drop the cache (after a lost connection, or if someone dropped a partition)."""
        self._known = None

    def ensure_for(self, instants: Iterable[datetime]) -> list[date]:
        """Make sure partitions exist for the months of `instants` and the month after; returns new ones.

        Each month is created in its own short transaction, before the write that needs it.
        """
        if not self._enabled:
            return []
        months = months_needed(instants)
        if self._known is not None and all(partition_name(m, self.table) in self._known for m in months):
            return []
        created: list[date] = []
        with self._engine.connect() as connection:
            if self._known is None:
                self._known = existing_partitions(connection, self.table)
                connection.commit()
            for month in sorted(months):
                name = partition_name(month, self.table)
                if name in self._known:
                    continue
                try:
                    # The DDL locks the parent table exclusively for a moment: never queue behind a long
                    # reader (and make every later reader queue behind us); retry later instead.
                    connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'"))
                    new = create_month_sync(connection, month, self.table)
                    connection.commit()
                except DBAPIError:
                    connection.rollback()
                    raise
                if new:
                    created.append(month)
                    log.info(f"{self.table}_partition_created", partition=name)
                self._known.add(name)
        return created

    def ensure_ahead(self, now: datetime) -> list[date]:
        """The current month and the next one (called when the projector starts)."""
        return self.ensure_for([now])


class FillPartitions(MonthlyPartitions):
    """The partitions of `fills`."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, "fills")
