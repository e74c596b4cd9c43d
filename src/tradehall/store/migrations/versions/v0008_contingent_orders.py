"""Orders keep their contingent terms: a trailing stop's trail, activation price and watermark, and the
order class and parent of a bracket, OCO or OTO leg.

`orders.trail_percent` (a percentage, "1.5" = 1.5 %), `trail_price`, `activation_price` and `hwm` are
set for trailing stops only; `hwm` is the watermark last reported (at acceptance, amend, trigger or
cancel). `order_class` and `parent_order_id` name a contingent order's class and the order it hangs
from. All nullable: rows projected before this revision keep NULL (a plain `simple` order).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tradehall.store.types import Money

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MONEY_COLUMNS = ("trail_percent", "trail_price", "activation_price", "hwm")


def upgrade() -> None:
    for name in _MONEY_COLUMNS:
        op.add_column("orders", sa.Column(name, Money(), nullable=True))
    op.add_column("orders", sa.Column("order_class", sa.String(length=8), nullable=True))
    op.add_column("orders", sa.Column("parent_order_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("parent_order_id")
        batch.drop_column("order_class")
        for name in reversed(_MONEY_COLUMNS):
            batch.drop_column(name)
