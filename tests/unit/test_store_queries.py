"""Queries and repositories on SQLite: keyset pages, filters, users, API keys, candles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.fixtures.journals import EngineMarket
from tradehall.domain.errors import Code, TradehallError
from tradehall.journal.records import JournalRecord
from tradehall.store import (
    CandleRow,
    Projector,
    ProjectorConfig,
    Store,
    queries,
    repositories,
    upgrade,
    upsert_candles,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    store = Store.from_url(url)
    yield store
    store.close()


async def _project(store: Store, records: list[JournalRecord]) -> None:
    async def source() -> AsyncIterator[JournalRecord]:
        for record in records:
            yield record

    projector = Projector(store.engine, ProjectorConfig(max_batch_records=100))
    await projector.run(source())
    projector.close()


async def test_fill_pages_walk_every_fill_once_newest_first(store: Store) -> None:
    market = EngineMarket(accounts=3, seed=5)
    await _project(store, market.setup() + market.steps(600))
    everything = await store.call(queries.list_fills, "acct-1", limit=1000)
    assert everything.next_cursor is None
    expected = [fill.id for fill in everything.items]
    assert len(expected) > 150
    walked: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.call(queries.list_fills, "acct-1", limit=37, cursor=cursor)
        walked.extend(fill.id for fill in page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert walked == expected
    assert pages == -(-len(expected) // 37)
    keys = [(fill.executed_at, fill.id) for fill in everything.items]
    assert keys == sorted(keys, reverse=True)
    assert {fill.account_id for fill in everything.items} == {"acct-1"}


async def test_default_page_is_100_and_market_filter_and_public_trades(store: Store) -> None:
    market = EngineMarket(accounts=2, seed=9)
    await _project(store, market.setup() + market.steps(400))
    page = await store.call(queries.list_fills, ["acct-0", "acct-1"], market="BTC-PERP")
    assert len(page.items) == 100
    assert page.next_cursor is not None
    assert (await store.call(queries.list_fills, "acct-0", market="ETH-PERP")).items == []
    trades = await store.call(queries.list_market_trades, "BTC-PERP", limit=1000)
    assert len(trades.items) == market.trades
    assert {fill.liquidity for fill in trades.items} == {"taker"}


async def test_order_status_filters(store: Store) -> None:
    market = EngineMarket(accounts=3, seed=2)
    await _project(store, market.setup() + market.steps(200))
    mine = {oid for oid, _ in market.statuses.items()}
    open_ids = {str(o) for o, s in market.statuses.items() if s.value == "open"}
    closed_ids = {str(o) for o, s in market.statuses.items() if s.value == "filled"}
    accounts = market.account_ids
    open_page = await store.call(queries.list_orders, accounts, status="open", limit=1000)
    closed_page = await store.call(queries.list_orders, accounts, status="closed", limit=1000)
    all_page = await store.call(queries.list_orders, accounts, status="all", limit=1000)
    assert {o.id for o in open_page.items} == open_ids
    assert {o.id for o in closed_page.items} == closed_ids
    assert len(all_page.items) == len(mine)
    one = all_page.items[0]
    found = await store.call(queries.find_order_by_client_id, one.account_id, f"c{one.id}")
    assert found is not None and found.id == one.id
    fills = await store.call(queries.list_order_fills, closed_page.items[-1].id)
    assert len(fills) == 1
    with pytest.raises(TradehallError) as caught:
        await store.call(queries.list_orders, accounts, status="done")  # type: ignore[arg-type]
    assert caught.value.code is Code.INVALID_REQUEST


async def test_a_cursor_of_another_list_is_refused(store: Store) -> None:
    market = EngineMarket(accounts=2, seed=2)
    await _project(store, market.setup() + market.steps(100))
    fills = await store.call(queries.list_fills, "acct-0", limit=2)
    assert fills.next_cursor is not None
    with pytest.raises(TradehallError) as caught:
        await store.call(queries.list_orders, "acct-0", status="all", cursor=fills.next_cursor)
    assert caught.value.code is Code.INVALID_REQUEST


async def test_candles_upsert_replaces_and_pages_by_start(store: Store) -> None:
    start = datetime(2026, 11, 25, tzinfo=UTC)
    rows = [
        CandleRow(
            "BTC-USD",
            "1m",
            start + timedelta(minutes=i),
            Decimal(100 + i),
            Decimal(101 + i),
            Decimal(99 + i),
            Decimal("100.5") + i,
            Decimal("1.25"),
            3,
        )
        for i in range(5)
    ]
    assert await store.call(upsert_candles, rows) == 5
    replaced = CandleRow(
        "BTC-USD",
        "1m",
        start + timedelta(minutes=4),
        Decimal(104),
        Decimal(110),
        Decimal(99),
        Decimal("109.99"),
        Decimal("7.5"),
        9,
    )
    assert await store.call(upsert_candles, [replaced]) == 1
    first = await store.call(queries.list_candles, "BTC-USD", "1m", limit=2)
    assert [c.start for c in first.items] == [start + timedelta(minutes=4), start + timedelta(minutes=3)]
    assert (first.items[0].close, first.items[0].volume, first.items[0].trades) == (
        Decimal("109.99"),
        Decimal("7.5"),
        9,
    )
    rest = await store.call(queries.list_candles, "BTC-USD", "1m", limit=10, cursor=first.next_cursor)
    assert [c.start.minute for c in rest.items] == [2, 1, 0]
    ranged = await store.call(
        queries.list_candles,
        "BTC-USD",
        "1m",
        start=start + timedelta(minutes=1),
        end=start + timedelta(minutes=3),
    )
    assert [c.start.minute for c in ranged.items] == [2, 1]
    with pytest.raises(TradehallError) as caught:
        await store.call(queries.list_candles, "BTC-USD", "2m")
    assert caught.value.code is Code.INVALID_REQUEST


async def test_users_and_api_keys(store: Store) -> None:
    user = await store.call(repositories.create_user, "alice", "argon2-hash", "admin")
    assert (user.username, user.role) == ("alice", "admin")
    with pytest.raises(TradehallError) as caught:
        await store.call(repositories.create_user, "alice", "other-hash")
    assert caught.value.code is Code.CONFLICT
    found = await store.call(repositories.find_user_by_username, "alice")
    assert found is not None and (found.id, found.password_hash) == (user.id, "argon2-hash")
    assert await store.call(repositories.find_user_by_username, "bob") is None
    key = await store.call(repositories.create_api_key, user.id, "sha256-of-key", "bot")
    by_hash = await store.call(repositories.find_api_key_by_hash, "sha256-of-key")
    assert by_hash is not None and (by_hash.id, by_hash.user_id, by_hash.label) == (key.id, user.id, "bot")
    assert [k.id for k in await store.call(repositories.list_api_keys, user.id)] == [key.id]
    assert await store.call(repositories.delete_api_key, key.id, user_id="someone-else") is False
    assert await store.call(repositories.delete_api_key, key.id, user_id=user.id) is True
    assert await store.call(repositories.find_api_key_by_hash, "sha256-of-key") is None
    assert await store.call(repositories.delete_api_key, key.id) is False
    with pytest.raises(TradehallError) as caught:
        await store.call(repositories.create_user, "carol", "h", "root")
    assert caught.value.code is Code.INVALID_REQUEST
