"""The initial read-model schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from tradehall.store.partitions import create_partitions_sync, months_needed
from tradehall.store.types import Money, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _money(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, Money(), nullable=nullable)


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36)),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_api_keys_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(64)),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("cost_basis", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trading_state", sa.String(16), nullable=False),
        _money("balance"),
        _money("available"),
        _money("equity"),
        _money("unrealized_pnl"),
        _money("realized_pnl"),
        _money("peak_equity"),
        _money("drawdown"),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
    )
    op.create_index("ix_accounts_owner", "accounts", ["owner"])
    op.create_table(
        "balances",
        sa.Column("account_id", sa.String(64)),
        sa.Column("currency", sa.String(16)),
        _money("total"),
        _money("held"),
        _money("available"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("account_id", "currency", name="pk_balances"),
    )
    op.create_table(
        "markets",
        sa.Column("symbol", sa.String(64)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("venue", sa.String(16), nullable=False),
        sa.Column("base", sa.String(16), nullable=False),
        sa.Column("quote", sa.String(16), nullable=False),
        _money("tick_size"),
        _money("lot_size"),
        _money("min_quantity", nullable=True),
        _money("max_quantity", nullable=True),
        _money("maker_fee"),
        _money("taker_fee"),
        sa.Column("fee_model", sa.String(16), nullable=False),
        _money("max_leverage", nullable=True),
        _money("initial_margin", nullable=True),
        _money("maintenance_margin", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=True),
        _time("close_time", nullable=True),
        _money("last_price", nullable=True),
        _money("mark_price", nullable=True),
        sa.Column("spec_json", sa.Text(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("symbol", name="pk_markets"),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.String(32)),
        sa.Column("client_order_id", sa.String(128), nullable=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("market", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("engine_side", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("time_in_force", sa.String(8), nullable=False),
        _money("quantity"),
        _money("price", nullable=True),
        _money("stop_price", nullable=True),
        _time("expire_at", nullable=True),
        sa.Column("post_only", sa.Boolean(), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _money("filled_quantity"),
        _money("average_price", nullable=True),
        _money("fees"),
        _money("notional"),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
    )
    op.create_index("ix_orders_account_created", "orders", ["account_id", "created_at", "id"])
    op.create_index("ix_orders_market_created", "orders", ["market", "created_at", "id"])
    op.create_index("ix_orders_account_status", "orders", ["account_id", "status"])
    op.create_index("ix_orders_account_client_order_id", "orders", ["account_id", "client_order_id"])
    op.create_table(
        "fills",
        sa.Column("id", sa.BigInteger(), autoincrement=False),
        _time("executed_at"),
        sa.Column("trade_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("market", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        _money("price"),
        _money("quantity"),
        _money("fee"),
        sa.Column("liquidity", sa.String(8), nullable=False),
        _money("realized_pnl"),
        sa.PrimaryKeyConstraint("id", "executed_at", name="pk_fills"),
        postgresql_partition_by="RANGE (executed_at)",
    )
    op.create_index("ix_fills_account_executed", "fills", ["account_id", "executed_at", "id"])
    op.create_index("ix_fills_market_executed", "fills", ["market", "executed_at", "id"])
    op.create_index("ix_fills_order", "fills", ["order_id"])
    op.create_table(
        "positions",
        sa.Column("account_id", sa.String(64)),
        sa.Column("market", sa.String(64)),
        sa.Column("side", sa.String(8), nullable=False),
        _money("quantity"),
        _money("cost"),
        _money("average_entry_price", nullable=True),
        _money("mark_price", nullable=True),
        _money("unrealized_pnl"),
        _money("realized_pnl"),
        _money("margin"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("account_id", "market", name="pk_positions"),
    )
    op.create_index("ix_positions_market", "positions", ["market"])
    op.create_table(
        "equity_history",
        sa.Column("account_id", sa.String(64)),
        sa.Column("seq", sa.BigInteger(), autoincrement=False),
        _time("at"),
        _money("equity"),
        sa.PrimaryKeyConstraint("account_id", "seq", name="pk_equity_history"),
    )
    op.create_index("ix_equity_history_account_at", "equity_history", ["account_id", "at", "seq"])
    op.create_table(
        "candles",
        sa.Column("market", sa.String(64)),
        sa.Column("interval", sa.String(8)),
        _time("start"),
        _money("open"),
        _money("high"),
        _money("low"),
        _money("close"),
        _money("volume"),
        sa.Column("trades", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("market", "interval", "start", name="pk_candles"),
    )
    op.create_table(
        "projection_state",
        sa.Column("name", sa.String(64)),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("name", name="pk_projection_state"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        create_partitions_sync(bind, months_needed([datetime.now(UTC)]))


def downgrade() -> None:
    for table in (
        "projection_state",
        "candles",
        "equity_history",
        "positions",
        "fills",
        "orders",
        "markets",
        "balances",
        "accounts",
        "api_keys",
        "users",
    ):
        op.drop_table(table)
