"""Smart orders: a parent order routed across the venues of an instrument is an `orders` row with
`venue = 'smart'` and `market` its instrument, `children` the JSON list of its child order ids (the
children name it as `parent_order_id`), and the optional `decision_price` it was placed with. NULL for
every other order and for rows projected before this revision.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tradehall.store.types import Money

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("venue", sa.String(16), nullable=True))
    op.add_column("orders", sa.Column("children", sa.Text(), nullable=True))
    op.add_column("orders", sa.Column("decision_price", Money(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("decision_price")
        batch.drop_column("children")
        batch.drop_column("venue")
