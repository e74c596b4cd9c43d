"""Markets name the instrument they list (`instrument`; one instrument may be listed on several venues,
as `<instrument>.<VENUE>` markets). Markets made before this revision list their own symbol.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("markets", sa.Column("instrument", sa.String(64), nullable=True))
    op.execute("UPDATE markets SET instrument = symbol")
    with op.batch_alter_table("markets") as batch:
        batch.alter_column("instrument", existing_type=sa.String(64), nullable=False)
    op.create_index("ix_markets_instrument", "markets", ["instrument"])


def downgrade() -> None:
    op.drop_index("ix_markets_instrument", table_name="markets")
    with op.batch_alter_table("markets") as batch:
        batch.drop_column("instrument")
