"""API keys get an expiry, scopes, an optional bound account and the time of their last use.

`scopes` is a comma-separated list; keys made before this revision get `read,trade`, which is what
they could do. `expires_at`, `account_id` and `last_used_at` are NULL for them: no expiry, any of
the user's accounts, not used since (last use was not recorded before).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tradehall.store.types import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("expires_at", UTCDateTime(), nullable=True))
    op.add_column(
        "api_keys",
        sa.Column("scopes", sa.String(length=64), nullable=False, server_default="read,trade"),
    )
    op.add_column("api_keys", sa.Column("account_id", sa.String(length=64), nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("account_id")
        batch.drop_column("scopes")
        batch.drop_column("expires_at")
