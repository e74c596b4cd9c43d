from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from tradehall.store import current_revision, downgrade, head_revision, upgrade
from tradehall.store.db import create_store_engine
from tradehall.store.models import Base

TABLES = {
    "accounts",
    "alerts",
    "api_keys",
    "balances",
    "candles",
    "equity_history",
    "fills",
    "ledger",
    "markets",
    "order_executions",
    "orders",
    "positions",
    "projection_state",
    "session_bars",
    "session_decisions",
    "session_equity",
    "session_signals",
    "trading_sessions",
    "users",
}


def _tables(url: str) -> set[str]:
    engine = create_store_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_and_downgrade_removes_them(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    assert current_revision(url) is None
    upgrade(url)
    assert current_revision(url) == head_revision()
    assert head_revision() is not None and head_revision() >= "0003"  # 0003: DEFAULT partitions
    assert _tables(url) == TABLES
    downgrade(url, "base")
    assert current_revision(url) is None
    assert _tables(url) == set()
    upgrade(url)
    assert _tables(url) == TABLES


def test_migrations_match_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = create_store_engine(url)
    try:
        inspector = inspect(engine)
        for table in Base.metadata.sorted_tables:
            migrated = {column["name"] for column in inspector.get_columns(table.name)}
            assert migrated == set(table.columns.keys()), table.name
            indexes = {index["name"] for index in inspector.get_indexes(table.name)}
            declared = {index.name for index in table.indexes}
            assert declared <= indexes, table.name
    finally:
        engine.dispose()


def test_fill_indexes_serve_the_api_queries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = create_store_engine(url)
    try:
        indexes = {index["name"]: index["column_names"] for index in inspect(engine).get_indexes("fills")}
    finally:
        engine.dispose()
    assert indexes == {
        "ix_fills_account_executed": ["account_id", "executed_at", "id"],
        "ix_fills_market_executed": ["market", "executed_at", "id"],
        "ix_fills_order": ["order_id"],
    }
