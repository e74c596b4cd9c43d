"""The store on the real PostgreSQL: migrations, monthly partitions (on demand for any month, the DEFAULT
partition and moving its rows out), pagination under inserts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.conftest import require_service
from tests.fixtures.journals import EngineMarket, differences
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
    head_revision,
    queries,
    repositories,
    upgrade,
    upsert_candles,
)
from tradehall.store.partitions import (
    FillPartitions,
    MonthlyPartitions,
    ensure_partitions_sync,
    month_of,
    next_month,
    partition_name,
)

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
    assert current_revision(pg_url) == head_revision()
    assert _scalar(pg_url, "SELECT relkind FROM pg_class WHERE relname = 'fills'") == "p"
    key = _scalar(pg_url, "SELECT pg_get_partkeydef(to_regclass('fills'))")
    assert key == "RANGE (executed_at)"
    pk = _scalar(pg_url, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'pk_fills'")
    assert pk == "PRIMARY KEY (id, executed_at)"
    today = datetime.now(UTC).date().replace(day=1)
    ahead = date(today.year + 1, 1, 1) if today.month == 12 else date(today.year, today.month + 1, 1)
    assert _partitions(pg_url) == {partition_name(today), partition_name(ahead), "fills_default"}
    assert _scalar(
        pg_url, "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'fills_default'"
    ) == ("DEFAULT")
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
    assert current_revision(pg_url) == head_revision()


def _ns(instant: datetime) -> int:
    return int(instant.timestamp()) * 1_000_000_000


def _relative_month_end(months_ahead: int) -> datetime:
    """Two seconds before the end of the month `months_ahead` from now (UTC)."""
    month = datetime.now(UTC).date().replace(day=1)
    for _ in range(months_ahead + 1):
        month = next_month(month)
    return datetime(month.year, month.month, 1, tzinfo=UTC) - timedelta(seconds=2)


@pytest.mark.parametrize(
    "boundary_minus_2s",
    [
        datetime(1999, 12, 31, 23, 59, 58, tzinfo=UTC),
        datetime(2090, 3, 31, 23, 59, 58, tzinfo=UTC),
        _relative_month_end(14),
    ],
    ids=["1999", "2090", "now+14 months"],
)
async def test_fills_of_a_month_without_a_partition_create_it_and_the_next_one(
    pg_url: str, boundary_minus_2s: datetime
) -> None:
    # One record per 10 ms from two seconds before a month's end: the run crosses into the next month.
    market = EngineMarket(accounts=4, start_ns=_ns(boundary_minus_2s), step_ns=10_000_000)
    records = market.setup() + market.steps(400)
    engine = create_store_engine(pg_url)
    projector = Projector(engine, ProjectorConfig(max_batch_records=50))
    await projector.run(_feed(records))
    projector.close()
    first = month_of(boundary_minus_2s)
    second = next_month(first)
    names = [partition_name(month) for month in (first, second, next_month(second))]
    assert set(names) <= _partitions(pg_url)
    in_first = _scalar(pg_url, f"SELECT count(*) FROM {names[0]}")
    in_second = _scalar(pg_url, f"SELECT count(*) FROM {names[1]}")
    boundary = _ns(datetime(second.year, second.month, 1, tzinfo=UTC))
    expected_first = sum(
        1
        for r in records
        for ev in r.events
        if type(ev).__name__ == "OrderFilled" and ev.ts < boundary  # type: ignore[union-attr]
    )
    assert (in_first, in_second) == (expected_first, market.fills - expected_first)
    assert 0 < expected_first < market.fills
    assert _scalar(pg_url, "SELECT count(*) FROM fills_default") == 0
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
    market = EngineMarket(accounts=3, seed=21)
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
    # Today's hour, one three years back, and imported history from 1999 and 2090: every month the
    # write touches gets its partition in the write's transaction, none of them lands in DEFAULT.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    starts = [
        now,
        now - timedelta(days=3 * 365),
        datetime(1999, 1, 31, 23, tzinfo=UTC),
        datetime(2090, 12, 31, 23, tzinfo=UTC),
    ]
    for start in starts:
        row = CandleRow(
            "BTC-USD", "1h", start, Decimal("1.5"), Decimal("2"), Decimal("1"), Decimal("1.75"), Decimal("10")
        )
        await store.call(upsert_candles, [row])
        replacement = CandleRow(
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
        await store.call(upsert_candles, [replacement])
    candles = (await store.call(queries.list_candles, "BTC-USD", "1h")).items
    assert [(c.start, c.high, c.close, c.volume, c.trades) for c in candles] == [
        (start, Decimal("3"), Decimal("2.25"), Decimal("12.5"), 4) for start in sorted(starts, reverse=True)
    ]
    for start in starts:
        name = partition_name(month_of(start), "candles")
        assert _scalar(pg_url, f"SELECT count(*) FROM {name}") == 1, name
    assert _scalar(pg_url, "SELECT count(*) FROM candles_default") == 0
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


_FILL_COLUMNS = (
    "id, executed_at, trade_id, order_id, account_id, market, side, price, quantity, fee, liquidity, "
    "realized_pnl"
)


def _insert_fill_into_parent(url: str, fill_id: int, at: datetime) -> None:
    """A row written straight into `fills` (a writer outside the store, or one whose cache is stale)."""
    engine = create_store_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    f"INSERT INTO fills ({_FILL_COLUMNS}) VALUES "
                    "(:id, :at, 7, '7', 'acct-x', 'BTC-USD', 'buy', 64000.5, 0.25, 0.03, 'taker', 0)"
                ),
                {"id": fill_id, "at": at},
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "instant",
    [datetime(1999, 3, 10, 12, tzinfo=UTC), datetime(2090, 7, 4, tzinfo=UTC), _relative_month_end(20)],
    ids=["1999", "2090", "now+20 months"],
)
def test_a_row_without_its_partition_lands_in_default_and_moves_out_when_its_month_is_created(
    pg_url: str, instant: datetime
) -> None:
    other = instant + timedelta(days=100)  # another month without a partition
    _insert_fill_into_parent(pg_url, 1, instant)
    _insert_fill_into_parent(pg_url, 2, instant + timedelta(seconds=1))
    _insert_fill_into_parent(pg_url, 3, other)
    assert _scalar(pg_url, "SELECT count(*) FROM fills_default") == 3
    engine = create_store_engine(pg_url)
    try:
        # PostgreSQL refuses a range partition while DEFAULT holds rows of it: they are moved first.
        month = month_of(instant)
        assert FillPartitions(engine).ensure_for([instant]) == [month, next_month(month)]
        assert _scalar(pg_url, f"SELECT count(*) FROM {partition_name(month)}") == 2
        assert _scalar(pg_url, "SELECT count(*) FROM fills_default") == 1
        with engine.begin() as connection:
            assert ensure_partitions_sync(connection, "fills", [other]) == [month_of(other)]
            assert ensure_partitions_sync(connection, "fills", [other, instant]) == []
        assert _scalar(pg_url, f"SELECT count(*) FROM {partition_name(month_of(other))}") == 1
        assert _scalar(pg_url, "SELECT count(*) FROM fills_default") == 0
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, executed_at, price, quantity FROM fills ORDER BY id"))
            assert [tuple(row) for row in rows] == [
                (1, instant, Decimal("64000.5"), Decimal("0.25")),
                (2, instant + timedelta(seconds=1), Decimal("64000.5"), Decimal("0.25")),
                (3, other, Decimal("64000.5"), Decimal("0.25")),
            ]
        # the lock_timeout of the caller's transaction is left as it was
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '7s'"))
            ensure_partitions_sync(connection, "fills", [instant + timedelta(days=400)])
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "7s"
    finally:
        engine.dispose()


async def test_a_projector_whose_partition_cache_is_stale_writes_into_default_instead_of_failing(
    pg_url: str,
) -> None:
    market = EngineMarket(accounts=3, start_ns=_ns(datetime(2090, 5, 10, tzinfo=UTC)), step_ns=10_000_000)
    first = market.setup() + market.steps(60)
    fills_before = market.fills
    later = market.steps(120)
    engine = create_store_engine(pg_url)
    projector = Projector(engine, ProjectorConfig(max_batch_records=25))
    try:
        await projector.run(_feed(first))
        with engine.begin() as connection:  # someone drops the month; the projector still has it cached
            connection.execute(text("DROP TABLE fills_p2090_05"))
        await projector.run(_feed(later))
        assert _scalar(pg_url, "SELECT count(*) FROM fills_default") == market.fills - fills_before > 0
        assert FillPartitions(engine).ensure_for([datetime(2090, 5, 10, tzinfo=UTC)]) == [date(2090, 5, 1)]
        assert _scalar(pg_url, "SELECT count(*) FROM fills_p2090_05") == market.fills - fills_before
        assert _scalar(pg_url, "SELECT count(*) FROM fills_default") == 0
    finally:
        projector.close()
        engine.dispose()


def test_two_creators_of_one_month_wait_for_each_other_instead_of_failing(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from tradehall.store import partitions

    monkeypatch.setattr(partitions, "LOCK_TIMEOUT_MS", 60_000)
    engine = create_store_engine(pg_url)
    holder = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={pg_url.rsplit('/', 1)[1]}")
    results: list[list[date]] = []
    errors: list[BaseException] = []
    instant = datetime(2091, 2, 3, tzinfo=UTC)

    def create() -> None:
        try:
            results.append(MonthlyPartitions(engine, "fills").ensure_for([instant]))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=create) for _ in range(2)]
    try:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE ONLY fills IN ACCESS SHARE MODE")  # both creators queue behind it
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        waiting = 0
        while waiting < 2 and time.monotonic() < deadline:
            row = holder.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = 'fills'::regclass AND NOT granted"
            ).fetchone()
            waiting = 0 if row is None else int(row[0])
            time.sleep(0.01)
        assert waiting == 2, "both creators should be waiting for the lock on fills"
    finally:
        holder.rollback()
        holder.close()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    created = [month for result in results for month in result]
    assert sorted(created) == [date(2091, 2, 1), date(2091, 3, 1)]
    engine.dispose()


def test_downgrading_the_default_partitions_keeps_their_rows_in_monthly_partitions(pg_url: str) -> None:
    _insert_fill_into_parent(pg_url, 11, datetime(1999, 8, 8, tzinfo=UTC))
    assert _scalar(pg_url, "SELECT count(*) FROM fills_default") == 1
    downgrade(pg_url, "0002")
    assert "fills_default" not in _partitions(pg_url)
    assert _scalar(pg_url, "SELECT count(*) FROM fills_p1999_08") == 1
    assert _scalar(pg_url, "SELECT to_regclass('candles_default') IS NULL") is True
    upgrade(pg_url)
    assert "fills_default" in _partitions(pg_url)
    assert _scalar(pg_url, "SELECT count(*) FROM fills") == 1
