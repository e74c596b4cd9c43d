"""Candles: `open_ts` / `close_ts` for order-independent merging; monthly partitions on PostgreSQL.

PostgreSQL cannot turn a plain table into a partitioned one in place: the table is renamed, the
partitioned `candles` created with the months its rows need (and the current and next month), the
rows copied and the old table dropped, in the migration's transaction. SQLite only gains the columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

from tradehall.store.partitions import create_partitions_sync, month_of, months_needed, next_month
from tradehall.store.types import Money, UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VALUES = "market, interval, start, open, high, low, close, volume, trades"


def _create_candles(*, partitioned: bool, with_times: bool) -> None:
    columns: list[sa.Column[object]] = [
        sa.Column("market", sa.String(64)),
        sa.Column("interval", sa.String(8)),
        sa.Column("start", UTCDateTime()),
        sa.Column("open", Money(), nullable=False),
        sa.Column("high", Money(), nullable=False),
        sa.Column("low", Money(), nullable=False),
        sa.Column("close", Money(), nullable=False),
        sa.Column("volume", Money(), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False, server_default="0"),
    ]
    if with_times:
        columns += [sa.Column("open_ts", sa.BigInteger(), nullable=True)]
        columns += [sa.Column("close_ts", sa.BigInteger(), nullable=True)]
    key = sa.PrimaryKeyConstraint("market", "interval", "start", name="pk_candles")
    if partitioned:
        op.create_table("candles", *columns, key, postgresql_partition_by="RANGE (start)")
    else:
        op.create_table("candles", *columns, key)


def _months_of_rows(bind: sa.Connection, table: str) -> set[date]:
    first, last = bind.execute(sa.text(f"SELECT min(start), max(start) FROM {table}")).one()
    months: set[date] = set()
    if first is not None and last is not None:
        month, end = month_of(first), month_of(last)
        while month <= end:
            months.add(month)
            month = next_month(month)
    return months


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        with op.batch_alter_table("candles") as batch:
            batch.add_column(sa.Column("open_ts", sa.BigInteger(), nullable=True))
            batch.add_column(sa.Column("close_ts", sa.BigInteger(), nullable=True))
        return
    op.execute("ALTER TABLE candles RENAME TO candles_v1")
    op.execute("ALTER TABLE candles_v1 RENAME CONSTRAINT pk_candles TO pk_candles_v1")
    _create_candles(partitioned=True, with_times=True)
    months = _months_of_rows(bind, "candles_v1") | months_needed([datetime.now(UTC)])
    create_partitions_sync(bind, months, "candles")
    op.execute(f"INSERT INTO candles ({_VALUES}) SELECT {_VALUES} FROM candles_v1")
    op.drop_table("candles_v1")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        with op.batch_alter_table("candles") as batch:
            batch.drop_column("close_ts")
            batch.drop_column("open_ts")
        return
    op.execute("ALTER TABLE candles RENAME TO candles_v2")
    op.execute("ALTER TABLE candles_v2 RENAME CONSTRAINT pk_candles TO pk_candles_v2")
    _create_candles(partitioned=False, with_times=False)
    op.execute(f"INSERT INTO candles ({_VALUES}) SELECT {_VALUES} FROM candles_v2")
    op.drop_table("candles_v2")  # its partitions go with it
