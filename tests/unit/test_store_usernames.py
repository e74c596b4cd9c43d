"""Usernames unique case-insensitively in the database itself (migration 0004), found whatever the case."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from tradehall.domain.errors import Code, TradehallError
from tradehall.store import Store, downgrade, upgrade
from tradehall.store import repositories as repo
from tradehall.store.db import create_store_engine


def test_a_username_differing_only_by_case_is_a_conflict_and_lookups_ignore_case(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    upgrade(url)
    store = Store.from_url(url)
    try:
        alice = store.call_sync(repo.create_user, "Alice", "hash-1")
        with pytest.raises(TradehallError) as info:
            store.call_sync(repo.create_user, "aLICE", "hash-2")
        assert info.value.code is Code.CONFLICT
        for spelling in ("alice", "ALICE", "Alice"):
            found = store.call_sync(repo.find_user_by_username, spelling)
            assert found is not None and found.id == alice.id, spelling
        assert store.call_sync(repo.find_user_by_username, "alic") is None
    finally:
        store.close()


def test_the_index_is_added_by_0004_and_removed_by_its_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"

    def index_sql() -> list[str]:
        engine = create_store_engine(url)
        try:
            with engine.connect() as connection:
                rows = connection.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'uq_users_username_lower'"
                )
                return [str(row[0]) for row in rows]
        finally:
            engine.dispose()

    upgrade(url, "0004")
    [sql] = index_sql()
    assert "UNIQUE" in sql.upper() and "lower(username)" in sql
    downgrade(url, "0003")
    assert index_sql() == []
    engine = create_store_engine(url)
    try:
        assert "users" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
