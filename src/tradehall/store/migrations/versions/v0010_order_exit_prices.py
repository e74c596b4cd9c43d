"""Contingent orders: the exit prices an entry or an oco was placed with, and an order's legs by index.

`orders.take_profit`, `stop_loss` and `stop_loss_limit` (NULL for orders placed without exits and for
rows projected before this revision); `ix_orders_parent_order_id`, since an order's `legs` are the
orders that name it as their parent.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tradehall.store.types import Money

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PRICES = ("take_profit", "stop_loss", "stop_loss_limit")


def upgrade() -> None:
    for name in _PRICES:
        op.add_column("orders", sa.Column(name, Money(), nullable=True))
    op.create_index("ix_orders_parent_order_id", "orders", ["parent_order_id"])


def downgrade() -> None:
    op.drop_index("ix_orders_parent_order_id", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        for name in reversed(_PRICES):
            batch.drop_column(name)
