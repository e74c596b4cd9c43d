"""Balances per cluster shard: `balances.shard` (0 on one machine) joins the primary key, so the
projections of several shards (each holding an account's collateral in that shard) share one table.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("balances") as batch:
        batch.add_column(sa.Column("shard", sa.Integer(), server_default="0", nullable=False))
        batch.drop_constraint("pk_balances", type_="primary")
        batch.create_primary_key("pk_balances", ["account_id", "currency", "shard"])


def downgrade() -> None:
    with op.batch_alter_table("balances") as batch:
        batch.drop_constraint("pk_balances", type_="primary")
        batch.create_primary_key("pk_balances", ["account_id", "currency"])
        batch.drop_column("shard")
