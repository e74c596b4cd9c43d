"""The store on the real PostgreSQL: migrations, monthly fill partitions, pagination under inserts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.conftest import require_service
from tradehall.domain.errors import Code, TradehallError
from tradehall.journal.records import JournalRecord
from tradehall.store import (
    CandleRow,
    Projector,
    ProjectorConfig,
    Store,
    create_store_engine,
    current_revision,
    downgrade,
    queries,
    repositories,
    upgrade,
    upsert_candles,
)
from tradehall.store.partitions import FillPartitions, partition_name
from tradehall.store.synthetic import SyntheticMarket, differences

pytestmark = pytest.mark.services
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own for this test session (th_test_<uuid>), dropped at the end."""
    require_service("postgresql")
    name = f"th_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(postgresql_available: None, pg_database: str) -> str:
    """A fresh schema per test: down to base, then up to head."""
    downgrade(pg_database, "base")
    upgrade(pg_database)
    return pg_database


def _scalar(url: str, sql: str, **params: object) -> object:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def _partitions(url: str) -> set[str]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = to_regclass('fills')"
                )
            )
            return {row[0] for row in rows}
    finally:
        engine.dispose()


def _fill_keys_newest_first(session: Session, account_id: str) -> list[tuple[datetime, int]]:
    query = text("SELECT executed_at, id FROM fills WHERE account_id = :a ORDER BY executed_at DESC, id DESC")
    return [(row[0], row[1]) for row in session.execute(query, {"a": account_id})]


async def _feed(records: list[JournalRecord]) -> AsyncIterator[JournalRecord]:
    for record in records:
        yield record


def test_migrations_up_and_down_on_postgresql(pg_url: str) -> None:
    assert current_revision(pg_url) == "0002"
    assert _scalar(pg_url, "SELECT relkind FROM pg_class WHERE relname = 'fills'") == "p"
    key = _scalar(pg_url, "SELECT pg_get_partkeydef(to_regclass('fills'))")
    assert key == "RANGE (executed_at)"
    pk = _scalar(pg_url, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'pk_fills'")
    assert pk == "PRIMARY KEY (id, executed_at)"
    today = datetime.now(UTC).date().replace(day=1)
    ahead = date(today.year + 1, 1, 1) if today.month == 12 else date(today.year, today.month + 1, 1)
    assert _partitions(pg_url) == {partition_name(today), partition_name(ahead)}
    indexes = _scalar(pg_url, "SELECT count(*) FROM pg_indexes WHERE tablename = :t", t=partition_name(today))
    assert indexes == 4  # the primary key and the three query indexes, inherited by the partition
    downgrade(pg_url, "base")
    assert current_revision(pg_url) is None
    tables = _scalar(
        pg_url,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'",
    )
    assert tables == 0
    upgrade(pg_url)
    assert current_revision(pg_url) == "0002"


async def test_fills_of_a_month_without_a_partition_create_it_and_the_next_one(pg_url: str) -> None:
    # 2031-03-31T23:59:58Z, one record per 10 ms: the run crosses into April.
    market = SyntheticMarket(accounts=4, start_ns=1_932_767_998_000_000_000, step_ns=10_000_000)
    records = market.setup() + market.steps(400)
    engine = create_store_engine(pg_url)
    projector = Projector(engine, ProjectorConfig(max_batch_records=50))
    await projector.run(_feed(records))
    projector.close()
    assert {"fills_p2031_03", "fills_p2031_04", "fills_p2031_05"} <= _partitions(pg_url)
    march = _scalar(pg_url, "SELECT count(*) FROM fills_p2031_03")
    april = _scalar(pg_url, "SELECT count(*) FROM fills_p2031_04")
    boundary = 1_932_768_000_000_000_000
    expected_march = sum(
        1
        for r in records
        for ev in r.events
        if type(ev).__name__ == "OrderFilled" and ev.ts < boundary  # type: ignore[union-attr]
    )
    assert (march, april) == (expected_march, market.fills - expected_march)
    assert 0 < expected_march < market.fills
    assert differences(engine, market) == []
    engine.dispose()


def test_partitions_are_created_a_month_ahead_once_and_cached(pg_url: str) -> None:
    engine = create_store_engine(pg_url)
    partitions = FillPartitions(engine)
    assert partitions.ensure_ahead(datetime(2030, 12, 15, tzinfo=UTC)) == [
        date(2030, 12, 1),
        date(2031, 1, 1),
    ]
    assert partitions.ensure_ahead(datetime(2030, 12, 31, tzinfo=UTC)) == []
    other = FillPartitions(engine)
    assert other.ensure_for([datetime(2031, 1, 2, tzinfo=UTC)]) == [date(2031, 2, 1)]
    assert {"fills_p2030_12", "fills_p2031_01", "fills_p2031_02"} <= _partitions(pg_url)
    engine.dispose()


async def test_pages_have_no_gaps_or_duplicates_while_fills_are_inserted(pg_url: str) -> None:
    market = SyntheticMarket(accounts=3, seed=21)
    first = market.setup() + market.steps(1500)
    later = market.steps(3000)
    store = Store.from_url(pg_url)
    projector = Projector(store.engine, ProjectorConfig(max_batch_records=20))
    await projector.run(_feed(first))
    existing = await store.call(_fill_keys_newest_first, "acct-1")
    seq_before = await projector.last_seq()
    inserting = asyncio.create_task(projector.run(_feed(later)))
    walked: list[tuple[datetime, int]] = []
    cursor: str | None = None
    while True:
        page = await store.call(queries.list_fills, "acct-1", limit=25, cursor=cursor)
        walked.extend((fill.executed_at, fill.id) for fill in page.items)
        await asyncio.sleep(0.005)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    seq_during = await projector.last_seq()
    await inserting
    assert seq_during > seq_before, "nothing was inserted while the pages were read"
    # Every fill that existed when the walk began comes exactly once, in (time, id) order; fills
    # committed after the first page was read may only appear ahead of all of them.
    assert len(set(walked)) == len(walked)
    assert walked == sorted(walked, reverse=True)
    newer = walked[: len(walked) - len(existing)]
    assert walked[len(newer) :] == existing
    assert all(key > existing[0] for key in newer)
    assert differences(store.engine, market) == []
    projector.close()
    store.close()


async def test_repositories_on_postgresql(pg_url: str) -> None:
    store = Store.from_url(pg_url)
    user = await store.call(repositories.create_user, "alice", "hash")
    with pytest.raises(TradehallError) as caught:
        await store.call(repositories.create_user, "alice", "hash2")
    assert caught.value.code is Code.CONFLICT
    with pytest.raises(TradehallError) as caught:
        await store.call(repositories.create_api_key, "no-such-user", "h1")
    assert caught.value.code is Code.CONFLICT
    key = await store.call(repositories.create_api_key, user.id, "h1", None)
    assert (await store.call(repositories.find_api_key_by_hash, "h1")) is not None
    assert await store.call(repositories.delete_api_key, key.id) is True
    start = datetime(2026, 11, 25, tzinfo=UTC)
    row = CandleRow(
        "BTC-USD", "1h", start, Decimal("1.5"), Decimal("2"), Decimal("1"), Decimal("1.75"), Decimal("10")
    )
    await store.call(upsert_candles, [row])
    await store.call(
        upsert_candles,
        [
            CandleRow(
                "BTC-USD",
                "1h",
                start,
                Decimal("1.5"),
                Decimal("3"),
                Decimal("1"),
                Decimal("2.25"),
                Decimal("12.5"),
                4,
            )
        ],
    )
    candles = (await store.call(queries.list_candles, "BTC-USD", "1h")).items
    assert [(c.high, c.close, c.volume, c.trades) for c in candles] == [
        (Decimal("3"), Decimal("2.25"), Decimal("12.5"), 4)
    ]
    store.close()


def test_partition_creation_gives_up_on_a_long_lock_instead_of_queueing(pg_url: str) -> None:
    from sqlalchemy.exc import OperationalError

    from tradehall.store.projector import is_transient

    engine = create_store_engine(pg_url)
    holder = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={pg_url.rsplit('/', 1)[1]}")
    try:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE fills IN ACCESS SHARE MODE")  # a reader in a long transaction
        partitions = FillPartitions(engine)
        started = datetime.now(UTC)
        with pytest.raises(OperationalError) as caught:
            partitions.ensure_for([datetime(2032, 6, 1, tzinfo=UTC)])
        waited = (datetime.now(UTC) - started).total_seconds()
        assert 1.5 < waited < 10
        assert "lock timeout" in str(caught.value)
        assert is_transient(caught.value)
    finally:
        holder.rollback()
        holder.close()
    assert FillPartitions(engine).ensure_for([datetime(2032, 6, 1, tzinfo=UTC)]) == [
        date(2032, 6, 1),
        date(2032, 7, 1),
    ]
    engine.dispose()
