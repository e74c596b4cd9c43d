"""Orders keep why they ended and which price their stop watches; fills say whether the engine made
them to close a position.

`orders.cancel_reason` (NULL while open or when filled), `orders.trigger` (stops only) and
`fills.origin` (`liquidation`, `assessment_close`, NULL for ordinary fills). All nullable: rows
projected before this revision keep NULL, which the API shows as null.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("cancel_reason", sa.String(length=32), nullable=True))
    op.add_column("orders", sa.Column("trigger", sa.String(length=16), nullable=True))
    op.add_column("fills", sa.Column("origin", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.drop_column("origin")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("trigger")
        batch.drop_column("cancel_reason")
