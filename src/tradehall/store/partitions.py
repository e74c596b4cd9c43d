"""Monthly partitions on PostgreSQL (declarative range partitioning): `fills` on `executed_at`,
`candles` on `start`. Every function takes the parent table's name (default `fills`).

There is no DEFAULT partition on purpose: a fill for a month without a partition would land there,
and creating that month's partition later would then have to scan and move rows under a lock.
Instead the projector calls `MonthlyPartitions.ensure_for` before each batch; it creates the months
the batch needs plus the month after each (the "month ahead"), in its own short transaction, and
remembers what exists so the common case costs no query at all.
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
PARTITIONED_TABLES = ("fills", "candles")


def month_of(instant: datetime) -> date:
    utc = instant.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def next_month(month: date) -> date:
    return date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)


def _checked(table: str) -> str:
    # Table names go into DDL text: only the known partitioned tables.
    if table not in PARTITIONED_TABLES:
        raise ValueError(f"{table!r} is not a partitioned table")
    return table


def partition_name(month: date, table: str = "fills") -> str:
    return f"{_checked(table)}_p{month.year:04d}_{month.month:02d}"


def partition_ddl(month: date, table: str = "fills") -> str:
    upper = next_month(month)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(month, table)} PARTITION OF {table} "
        f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') TO ('{upper.isoformat()} 00:00:00+00')"
    )


def months_needed(instants: Iterable[datetime]) -> set[date]:
    """Every month of `instants` and the month after each."""
    months: set[date] = set()
    for instant in instants:
        month = month_of(instant)
        months.add(month)
        months.add(next_month(month))
    return months


def create_partitions_sync(connection: Connection, months: Iterable[date], table: str = "fills") -> None:
    """For migrations: create the partitions of `months` on a sync connection (PostgreSQL only)."""
    for month in sorted(set(months)):
        connection.execute(text(partition_ddl(month, table)))


def existing_partitions(connection: Connection, table: str = "fills") -> set[str]:
    result = connection.execute(_EXISTING_SQL, {"parent": _checked(table)})
    return {row[0] for row in result}


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
        """Make sure partitions exist for the months of `instants` and the month after; returns new ones."""
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
                    connection.execute(text(partition_ddl(month, self.table)))
                    connection.commit()
                except DBAPIError as error:
                    # Two creators racing on IF NOT EXISTS: the loser gets a duplicate error.
                    connection.rollback()
                    if error.connection_invalidated:
                        raise
                    if name not in existing_partitions(connection, self.table):
                        raise
                    connection.commit()
                else:
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
