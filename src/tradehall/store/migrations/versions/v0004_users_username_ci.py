"""Usernames unique case-insensitively: a unique index on `lower(username)`.

`Alice` cannot register once `alice` exists, and logins find a user whatever the case. The index
also serves the case-insensitive lookup. An existing database holding two usernames that differ
only by case fails this upgrade: rename one first (`UPDATE users SET username = ...`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_users_username_lower"


def upgrade() -> None:
    op.create_index(INDEX, "users", [sa.text("lower(username)")], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="users")
