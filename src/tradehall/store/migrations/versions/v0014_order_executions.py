"""Execution analytics: `order_executions`, one row per order with its arrival mid, the market's VWAP
over its life, its slippages, fees, fill times and markouts, kept by the projector from the events.
Orders projected before this revision have no row.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tradehall.store.types import Money, UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MONEY = (
    "quantity",
    "filled_quantity",
    "notional",
    "fees",
)
_OPTIONAL_MONEY = (
    "average_price",
    "arrival_mid",
    "decision_price",
    "vwap",
)
_OPTIONAL_BPS = (
    "arrival_slippage_bps",
    "vwap_slippage_bps",
    "implementation_shortfall_bps",
    "markout_1s_bps",
    "markout_10s_bps",
    "markout_60s_bps",
)


def upgrade() -> None:
    op.create_table(
        "order_executions",
        sa.Column("order_id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("market", sa.String(64), nullable=False),
        sa.Column("venue", sa.String(32), nullable=False),
        sa.Column("session", sa.String(64), nullable=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        *(sa.Column(name, Money(), nullable=False) for name in _MONEY),
        *(sa.Column(name, Money(), nullable=True) for name in _OPTIONAL_MONEY),
        sa.Column("accepted_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("last_fill_at", UTCDateTime(), nullable=True),
        *(sa.Column(name, Money(), nullable=True) for name in _OPTIONAL_BPS),
    )
    op.create_index("ix_order_executions_account_accepted", "order_executions", ["account_id", "accepted_at"])
    op.create_index("ix_order_executions_market_accepted", "order_executions", ["market", "accepted_at"])


def downgrade() -> None:
    op.drop_table("order_executions")
