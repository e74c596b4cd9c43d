"""The ledger (every balance change of a user's account, by cause) and when a market was settled.

`ledger` rows come from the projector (`tradehall.store.ledger`). A database that already holds
projected balances gets one `opening_balance` row per non-zero balance of a user's account, at the
balance's last change, so its ledger sums to the balance like one projected from the start (the
journal before the projected seq may be gone). Their ids, (projected seq << 20) + n, lie within the
already projected record's range, which the projector never uses again.

`markets.settled_at`: when a binary market was settled or voided; markets already settled or
cancelled get their last update time (which is when that happened: nothing changes them afterwards).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tradehall.store.types import Money, UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID_SHIFT = 20  # tradehall.store.ledger.ID_SHIFT, frozen here as this revision wrote it


def upgrade() -> None:
    op.add_column("markets", sa.Column("settled_at", UTCDateTime(), nullable=True))
    op.execute("UPDATE markets SET settled_at = updated_at WHERE status IN ('settled', 'cancelled')")
    ledger = op.create_table(
        "ledger",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("balance_after", Money(), nullable=False),
        sa.Column("market", sa.String(length=64), nullable=True),
        sa.Column("order_id", sa.String(length=32), nullable=True),
        sa.Column("trade_id", sa.BigInteger(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger")),
    )
    op.create_index("ix_ledger_account_at", "ledger", ["account_id", "at", "id"], unique=False)
    _seed_opening_balances(ledger)


def _seed_opening_balances(ledger: sa.Table) -> None:
    bind = op.get_bind()
    last_seq = bind.execute(sa.text("SELECT max(last_seq) FROM projection_state")).scalar()
    if last_seq is None:
        return
    balances = sa.table(
        "balances",
        sa.column("account_id", sa.String()),
        sa.column("currency", sa.String()),
        sa.column("total", Money()),
        sa.column("updated_at", UTCDateTime()),
    )
    query = (
        sa.select(balances)
        .where(~balances.c.account_id.like("system:%"))
        .order_by(balances.c.updated_at, balances.c.account_id, balances.c.currency)
    )
    rows: list[dict[str, object]] = []
    for row in bind.execute(query).mappings():
        if row["total"] == 0:
            continue
        rows.append(
            {
                "id": (int(last_seq) << ID_SHIFT) + len(rows),
                "account_id": row["account_id"],
                "currency": row["currency"],
                "type": "opening_balance",
                "amount": row["total"],
                "balance_after": row["total"],
                "market": None,
                "order_id": None,
                "trade_id": None,
                "at": row["updated_at"],
            }
        )
    if rows:
        op.bulk_insert(ledger, rows)


def downgrade() -> None:
    op.drop_index("ix_ledger_account_at", table_name="ledger")
    op.drop_table("ledger")
    with op.batch_alter_table("markets") as batch:
        batch.drop_column("settled_at")
