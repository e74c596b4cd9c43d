"""Trading sessions remember the journal seq they have worked through (`last_seq`), so a restart reads
the journal's records after it and no cycle's prices are lost to a crash. Sessions made before this
revision start from 0: on their next start they read the journal from its beginning (their bars'
times decide what still counts).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "trading_sessions", sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    with op.batch_alter_table("trading_sessions") as batch:
        batch.drop_column("last_seq")
