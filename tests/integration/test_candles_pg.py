"""Candles on the real PostgreSQL: monthly partitions (migration 0002, on demand and a month ahead),
exact OHLCV from the projector across a month boundary, exactly once across retries, lost
acknowledgements and restarts, the quote-venue writer, and the SQL merge equal to the Python one."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from tests.conftest import require_service
from tests.fixtures.journals import SPEC as SYNTHETIC_SPEC
from tests.fixtures.journals import EngineMarket
from tests.unit.test_candles_store import (
    INTERVALS,
    TRADES,
    Row,
    all_stored,
    expected,
    feed,
    feed_trades,
    journal_of_trades,
    ns,
    reference,
    stored,
    utc,
)
from tradehall.marketdata.candles import CandleAggregator
from tradehall.store import (
    Projector,
    ProjectorConfig,
    RetryPolicy,
    Store,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from tradehall.store.candles import CandleUpdate, CandleWriter, combine, merge_candles
from tradehall.store.db import create_store_engine
from tradehall.store.partitions import partition_name
from tradehall.store.repositories import CandleRow, upsert_candles

pytestmark = pytest.mark.services
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
D = Decimal
FAST = RetryPolicy(initial_delay=0.001, max_delay=0.01)


@pytest.fixture
def pg_url(postgresql_available: None) -> Iterator[str]:
    """A database of its own (th_test_<uuid>) at head, dropped after the test."""
    require_service("postgresql")
    name = f"th_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_store_engine(pg_url)
    yield engine
    engine.dispose()


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def candle_partitions(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass('candles')"
            )
        )
        return {row[0] for row in rows}


def projector(engine: Engine, batch: int, fault: Callable[[str], None] | None = None) -> Projector:
    return Projector(engine, ProjectorConfig(retry=FAST, max_batch_records=batch), fault=fault)


def this_and_next_month() -> tuple[date, date]:
    today = datetime.now(UTC).date().replace(day=1)
    ahead = (today + timedelta(days=32)).replace(day=1)
    return today, ahead


def test_migration_partitions_candles_by_month_and_keeps_existing_rows(pg_url: str, engine: Engine) -> None:
    assert current_revision(pg_url) == head_revision()
    assert scalar(engine, "SELECT relkind FROM pg_class WHERE relname = 'candles'") == "p"
    assert scalar(engine, "SELECT pg_get_partkeydef(to_regclass('candles'))") == "RANGE (start)"
    pk = scalar(engine, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'pk_candles'")
    assert pk == 'PRIMARY KEY (market, "interval", start)'
    today, ahead = this_and_next_month()
    assert candle_partitions(engine) == {
        partition_name(today, "candles"),
        partition_name(ahead, "candles"),
        "candles_default",
    }
    # rows written under 0001 (an old month among them) survive the conversion, in their partitions
    downgrade(pg_url, "0001")
    assert scalar(engine, "SELECT relkind FROM pg_class WHERE relname = 'candles'") == "r"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO candles (market, interval, start, open, high, low, close, volume, trades) "
                "VALUES "
                "('BTC-USD', '1d', '2025-03-04 00:00:00+00', 1.5, 2, 1, 1.75, 10.25, 4), "
                "('BTC-USD', '1d', '2025-05-31 00:00:00+00', 2.5, 3, 2, 2.75, 1, 1)"
            )
        )
    upgrade(pg_url, "0002")
    assert current_revision(pg_url) == "0002"
    assert {"candles_p2025_03", "candles_p2025_04", "candles_p2025_05"} <= candle_partitions(engine)
    assert scalar(engine, "SELECT count(*) FROM candles_p2025_03") == 1
    assert scalar(engine, "SELECT count(*) FROM candles_p2025_05") == 1
    assert stored(engine, "BTC-USD", "1d") == [
        (utc(2025, 3, 4), D("1.5"), D(2), D(1), D("1.75"), D("10.25"), 4),
        (utc(2025, 5, 31), D("2.5"), D(3), D(2), D("2.75"), D(1), 1),
    ]
    downgrade(pg_url, "base")
    assert scalar(engine, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'candles%'") == 0
    upgrade(pg_url)
    assert scalar(engine, "SELECT count(*) FROM candles") == 0


@pytest.mark.parametrize("batch", [1, 3, 1000])
async def test_projector_candles_across_a_month_boundary_are_exact_and_partitioned(
    engine: Engine, batch: int
) -> None:
    p = projector(engine, batch)
    await p.run(feed(journal_of_trades()))
    p.close()
    for interval in INTERVALS:
        assert stored(engine, "BTC-USD", interval) == expected(interval), interval
    assert all_stored(engine, "ETH-PAPER") == {interval: [] for interval in INTERVALS}
    assert {"candles_p2026_11", "candles_p2026_12", "candles_p2027_01"} <= candle_partitions(engine)
    november = scalar(engine, "SELECT count(*) FROM candles_p2026_11 WHERE market = 'BTC-USD'")
    december = scalar(engine, "SELECT count(*) FROM candles_p2026_12 WHERE market = 'BTC-USD'")
    # 23:58, 23:59 (1m); 23:55 (5m); 23:45 (15m); 23:00 (1h); Nov 30 (1d) -> November
    assert (november, december) == (6, sum(len(expected(i)) for i in INTERVALS) - 6)


async def test_retried_and_unacknowledged_batches_count_once_on_postgresql(engine: Engine) -> None:
    failures = iter([False, True, False, False, True])

    def faults(point: str) -> None:
        if next(failures, False):
            message = "server closed the connection" if point == "before_commit" else "reply lost"
            raise OperationalError("COMMIT", {}, Exception(message))

    p = projector(engine, 2, fault=faults)
    await p.run(feed(journal_of_trades()))
    p.close()
    assert p.retries == 2
    for interval in INTERVALS:
        assert stored(engine, "BTC-USD", interval) == expected(interval), interval


async def test_a_crash_and_a_full_replay_count_each_trade_once_on_postgresql(engine: Engine) -> None:
    records = journal_of_trades()
    commits = 0

    def crash(point: str) -> None:
        nonlocal commits
        if point == "before_commit":
            commits += 1
            if commits == 3:
                raise RuntimeError("killed")

    first = projector(engine, 2, fault=crash)
    with pytest.raises(RuntimeError, match="killed"):
        await first.run(feed(records))
    first.close()
    second = projector(engine, 3)
    await second.run(feed(records))
    await second.run(feed(records))
    second.close()
    for interval in INTERVALS:
        assert stored(engine, "BTC-USD", interval) == expected(interval), interval


async def test_synthetic_market_candles_match_the_definition_on_postgresql(engine: Engine) -> None:
    market = EngineMarket(accounts=4, seed=8, start_ns=ns(2031, 5, 31, 23, 40), step_ns=5_000_000_000)
    records = market.setup() + market.steps(400)
    p = projector(engine, 41)
    await p.run(feed(records))
    p.close()
    assert all_stored(engine, SYNTHETIC_SPEC.symbol) == reference(records, SYNTHETIC_SPEC)
    assert {"candles_p2031_05", "candles_p2031_06", "candles_p2031_07"} <= candle_partitions(engine)


async def test_quote_venue_writer_creates_partitions_on_demand_and_adds_up_across_a_restart(
    engine: Engine,
) -> None:
    store = Store(engine)
    try:
        shifted = [(ts + (ns(2031, 11, 30) - ns(2026, 11, 30)), price, qty) for ts, price, qty in TRADES]
        before = CandleAggregator()
        first = CandleWriter(store, before)
        feed_trades(before, "ETH-PAPER", shifted[:3])
        await first.flush()
        feed_trades(before, "ETH-PAPER", shifted[3:5])
        await first.stop()  # a restart in the middle of the day, the hour and the 5-minute window
        after = CandleAggregator()
        second = CandleWriter(store, after)
        feed_trades(after, "ETH-PAPER", shifted[5:])
        await second.stop()
    finally:
        store.close()
    offset = utc(2031, 11, 30) - utc(2026, 11, 30)
    for interval in INTERVALS:
        want = [(row[0] + offset, *row[1:]) for row in expected(interval)]
        assert stored(engine, "ETH-PAPER", interval) == want, interval
    assert {"candles_p2031_11", "candles_p2031_12", "candles_p2032_01"} <= candle_partitions(engine)


async def test_the_sql_merge_equals_the_python_merge(engine: Engine) -> None:
    rng = random.Random(42)
    starts = [utc(2090, 12, 1, 0, minute) for minute in range(3)]
    parts = []
    for _ in range(120):
        start = rng.choice(starts)
        base = int(start.timestamp()) * 1_000_000_000
        t_open = base + rng.randrange(60_000_000_000)
        t_close = min(base + 59_999_999_999, t_open + rng.randrange(5_000_000_000))
        prices = sorted(D(rng.randrange(9_000, 11_000)) / 100 for _ in range(3))
        parts.append(
            CandleUpdate(
                "X", "1m", start, prices[1], prices[2], prices[0], prices[1], D(rng.randrange(1, 999)) / 1000,
                1, t_open, rng.choice([t_close, t_open]),
            )
        )  # fmt: skip
    store = Store(engine)  # `merge_candles` creates the month's partition in its transaction
    try:
        position = 0
        while position < len(parts):
            size = rng.randrange(1, 15)
            await store.call(merge_candles, parts[position : position + size])
            position += size
    finally:
        store.close()
    want: list[Row] = [(u.start, u.open, u.high, u.low, u.close, u.volume, u.trades) for u in combine(parts)]
    assert stored(engine, "X", "1m") == want
    assert sum(row[6] for row in want) == 120
    assert scalar(engine, "SELECT count(*) FROM candles_p2090_12") == 3
    assert scalar(engine, "SELECT count(*) FROM candles_default") == 0


async def test_a_candle_in_default_moves_to_its_month_when_an_import_creates_the_month(
    engine: Engine,
) -> None:
    with engine.begin() as connection:  # written past the store: no partition for March 1999 yet
        connection.execute(
            text(
                "INSERT INTO candles (market, interval, start, open, high, low, close, volume, trades) "
                "VALUES ('BTC-USD', '1d', '1999-03-04 00:00:00+00', 1.5, 2, 1, 1.75, 10.25, 4)"
            )
        )
    assert scalar(engine, "SELECT count(*) FROM candles_default") == 1
    store = Store(engine)
    try:
        imported = CandleRow("BTC-USD", "1d", utc(1999, 3, 5), D(2), D(3), D(1), D(2), D(5), 2)
        assert await store.call(upsert_candles, [imported]) == 1
    finally:
        store.close()
    assert scalar(engine, "SELECT count(*) FROM candles_default") == 0
    assert scalar(engine, "SELECT count(*) FROM candles_p1999_03") == 2
    assert stored(engine, "BTC-USD", "1d") == [
        (utc(1999, 3, 4), D("1.5"), D(2), D(1), D("1.75"), D("10.25"), 4),
        (utc(1999, 3, 5), D(2), D(3), D(1), D(2), D(5), 2),
    ]
