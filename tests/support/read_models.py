"""The read models as comparable data: what two projections of the same journal must agree on.

Left out: what the projector samples at batch ends (accounts' peak equity and drawdown, the
equity history), which depends on how the records were batched, not on what they say.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, select

from tradehall.store import create_store_engine

TABLES = ("accounts", "balances", "markets", "orders", "order_executions", "fills", "ledger", "positions")
SAMPLED = {"accounts": {"peak_equity", "drawdown"}}


def read_models(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the compared tables, sorted, without the sampled columns."""
    engine = create_store_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine, only=TABLES)
        dumped: dict[str, list[tuple[Any, ...]]] = {}
        with engine.connect() as connection:
            for name in TABLES:
                table = metadata.tables[name]
                columns = [column for column in table.columns if column.name not in SAMPLED.get(name, set())]
                rows = connection.execute(select(*columns)).all()
                dumped[name] = sorted((tuple(row) for row in rows), key=repr)
        return dumped
    finally:
        engine.dispose()


def projected_seq(url: str) -> int:
    engine = create_store_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine, only=("projection_state",))
        with engine.connect() as connection:
            seqs = connection.execute(select(metadata.tables["projection_state"].c.last_seq)).scalars().all()
        return max(seqs, default=0)
    finally:
        engine.dispose()
