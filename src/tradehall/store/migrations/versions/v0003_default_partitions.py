"""A DEFAULT partition on every partitioned table (PostgreSQL): the safety net for a row whose month
has no partition yet, which would otherwise fail its write. Writers still create their months first;
creating a month moves its rows out of DEFAULT (`tradehall.store.partitions.create_month_sync`).

Downgrade gives the rows held in DEFAULT partitions of their months, then drops DEFAULT.
SQLite has no partitions: nothing to do there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from alembic import op
from sqlalchemy import text

from tradehall.store.partitions import (
    PARTITION_KEYS,
    create_partitions_sync,
    default_partition_ddl,
    default_partition_name,
)

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in PARTITION_KEYS:
        op.execute(default_partition_ddl(table))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, key in PARTITION_KEYS.items():
        default = default_partition_name(table)
        months_sql = f"SELECT DISTINCT date_trunc('month', {key} AT TIME ZONE 'UTC') FROM {default}"
        months = {date(m.year, m.month, 1) for (m,) in bind.execute(text(months_sql))}
        create_partitions_sync(bind, months, table)  # moves those rows out of DEFAULT
        op.execute(f"DROP TABLE {default}")
