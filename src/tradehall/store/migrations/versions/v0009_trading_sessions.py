"""Live trading sessions: the session, the bars its strategies saw, their signals, the combined
decisions (with the order each placed) and the account's equity per cycle.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tradehall.store.types import Money, UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trading_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("markets", sa.Text(), nullable=False),
        sa.Column("strategies", sa.Text(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("anchor_ns", sa.BigInteger(), nullable=False),
        sa.Column("cycles", sa.BigInteger(), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.Column("start_equity", Money(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trading_sessions")),
    )
    op.create_index("ix_trading_sessions_owner", "trading_sessions", ["owner"], unique=False)
    op.create_index(
        "ix_trading_sessions_account_created", "trading_sessions", ["account_id", "created_at", "id"]
    )
    op.create_table(
        "session_bars",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("market", sa.String(length=64), nullable=False),
        sa.Column("start_ns", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("end_ns", sa.BigInteger(), nullable=False),
        sa.Column("cycle", sa.BigInteger(), nullable=False),
        sa.Column("open", Money(), nullable=False),
        sa.Column("high", Money(), nullable=False),
        sa.Column("low", Money(), nullable=False),
        sa.Column("close", Money(), nullable=False),
        sa.Column("volume", Money(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "market", "start_ns", name=op.f("pk_session_bars")),
    )
    op.create_table(
        "session_signals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("cycle", sa.BigInteger(), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("market", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("confidence", Money(), nullable=False),
        sa.Column("price", Money(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_signals")),
    )
    op.create_index("ix_session_signals_session_at", "session_signals", ["session_id", "at", "id"])
    op.create_table(
        "session_decisions",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("cycle", sa.BigInteger(), nullable=False),
        sa.Column("market", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("confidence", Money(), nullable=False),
        sa.Column("price", Money(), nullable=True),
        sa.Column("quantity", Money(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("vetoed_by", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=True),
        sa.Column("order_id", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("order", sa.Text(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "seq", name=op.f("pk_session_decisions")),
    )
    op.create_index("ix_session_decisions_session_at", "session_decisions", ["session_id", "at", "seq"])
    op.create_table(
        "session_equity",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("cycle", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at_ns", sa.BigInteger(), nullable=False),
        sa.Column("equity", Money(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "cycle", name=op.f("pk_session_equity")),
    )


def downgrade() -> None:
    op.drop_table("session_equity")
    op.drop_index("ix_session_decisions_session_at", table_name="session_decisions")
    op.drop_table("session_decisions")
    op.drop_index("ix_session_signals_session_at", table_name="session_signals")
    op.drop_table("session_signals")
    op.drop_table("session_bars")
    op.drop_index("ix_trading_sessions_account_created", table_name="trading_sessions")
    op.drop_index("ix_trading_sessions_owner", table_name="trading_sessions")
    op.drop_table("trading_sessions")
