"""The projector on the real PostgreSQL: exactly once across SIGKILL, rollback, lost connections."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from sqlalchemy import text

from tests.conftest import require_service
from tests.fixtures.journals import EngineMarket, differences
from tradehall.journal.records import JournalRecord
from tradehall.store import Projector, ProjectorConfig, RetryPolicy, create_store_engine, downgrade, upgrade

pytestmark = pytest.mark.services
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.2)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own for this test session (th_test_<uuid>), dropped at the end."""
    require_service("postgresql")
    name = f"th_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(postgresql_available: None, pg_database: str) -> str:
    downgrade(pg_database, "base")
    upgrade(pg_database)
    return pg_database


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _terminate_backends(url: str) -> int:
    """pg_terminate_backend for every connection to the test database; returns how many."""
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (_database(url),),
        ).fetchall()
    return len(rows)


def _allow_connections(url: str, allowed: bool) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{_database(url)}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')


def _in_transaction(url: str) -> bool:
    """Whether a client of the test database sits inside an open transaction right now."""
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state LIKE 'idle in transaction%%'",
            (_database(url),),
        ).fetchone()
    return bool(row and row[0])


def _last_seq(url: str) -> int:
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={_database(url)}") as connection:
        row = connection.execute(
            "SELECT last_seq FROM projection_state WHERE name = 'read_models'"
        ).fetchone()
    return 0 if row is None else int(row[0])


async def _feed(
    records: list[JournalRecord], pause_every: int = 0, pause: float = 0.0
) -> AsyncIterator[JournalRecord]:
    for index, record in enumerate(records):
        if pause_every and index % pause_every == 0:
            await asyncio.sleep(pause)
        yield record


CHILD = """
import asyncio, sys, logging, time, structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from tradehall.store import Projector, ProjectorConfig, create_store_engine
from tests.fixtures.journals import EngineMarket

async def main() -> None:
    market = EngineMarket(accounts=8, seed=int(sys.argv[2]))
    records = market.setup() + market.steps(int(sys.argv[3]))
    async def slow():
        for index, record in enumerate(records):
            if index % 25 == 0:
                await asyncio.sleep(0.005)
            yield record
    def linger(point: str) -> None:
        # Hold each transaction open a while before COMMIT, so the kill lands inside one.
        if point == "before_commit":
            time.sleep(0.05)

    config = ProjectorConfig(max_batch_records=25)
    projector = Projector(create_store_engine(sys.argv[1]), config, fault=linger)
    await projector.run(slow())

asyncio.run(main())
"""


async def test_exactly_once_across_a_sigkill_of_the_projector_process(pg_url: str) -> None:
    seed, steps = 4, 6000
    # The child imports `tests.fixtures`: run it from the repository root, whatever pytest's cwd is.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, pg_url, str(seed), str(steps)], env=dict(os.environ), cwd=root
    )
    deadline = time.monotonic() + 60
    try:
        while _last_seq(pg_url) < 1500 or not _in_transaction(pg_url):
            assert child.poll() is None, "the projector process ended before it was killed"
            assert time.monotonic() < deadline, "the projector process made no progress"
            time.sleep(0.005)
        before_kill = _last_seq(pg_url)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    deadline = time.monotonic() + 10
    while _in_transaction(pg_url):  # the server notices the dead client and rolls back
        assert time.monotonic() < deadline
        time.sleep(0.02)
    killed_at = _last_seq(pg_url)
    # The batch in flight was rolled back: at most the one whose COMMIT was already on its way.
    assert 0 <= killed_at - before_kill <= 25
    market = EngineMarket(accounts=8, seed=seed)
    records = market.setup() + market.steps(steps)
    assert 1500 <= killed_at < len(records), "the kill did not land mid-run"
    engine = create_store_engine(pg_url)
    projector = Projector(engine, ProjectorConfig(max_batch_records=500))
    resume = await projector.last_seq()
    assert resume == killed_at
    await projector.run(_feed([r for r in records if r.seq > resume]))
    assert differences(engine, market) == []
    projector.close()
    engine.dispose()


async def test_a_failure_mid_batch_rolls_back_everything_of_that_batch(pg_url: str) -> None:
    market = EngineMarket(accounts=5, seed=8)
    records = market.setup() + market.steps(1000)
    calls = 0

    def fail_third(point: str) -> None:
        nonlocal calls
        if point != "before_commit":
            return
        calls += 1
        if calls == 3:
            raise RuntimeError("killed mid-batch")

    engine = create_store_engine(pg_url)
    first = Projector(engine, ProjectorConfig(max_batch_records=200), fault=fail_third)
    with pytest.raises(RuntimeError, match="killed mid-batch"):
        await first.run(_feed(records))
    first.close()
    with engine.connect() as connection:
        fills = connection.execute(text("SELECT count(*) FROM fills")).scalar()
        orders = connection.execute(text("SELECT count(*) FROM orders")).scalar()
    expected_fills = sum(1 for r in records[:400] for ev in r.events if type(ev).__name__ == "OrderFilled")
    expected_orders = sum(1 for r in records[:400] for ev in r.events if type(ev).__name__ == "OrderAccepted")
    assert (fills, orders, _last_seq(pg_url)) == (expected_fills, expected_orders, 400)
    second = Projector(engine, ProjectorConfig(max_batch_records=200))
    await second.run(_feed(records[await second.last_seq() :]))
    assert differences(engine, market) == []
    second.close()
    engine.dispose()


async def test_reconnects_after_pg_terminate_backend_inside_a_batch(pg_url: str) -> None:
    market = EngineMarket(accounts=5, seed=13)
    records = market.setup() + market.steps(1200)
    calls = 0
    terminated = 0

    def terminate_on_second_and_fifth(point: str) -> None:
        nonlocal calls, terminated
        if point != "before_commit":
            return
        calls += 1
        if calls in (2, 5):
            terminated += _terminate_backends(pg_url)

    engine = create_store_engine(pg_url)
    projector = Projector(
        engine, ProjectorConfig(max_batch_records=100, retry=FAST), fault=terminate_on_second_and_fifth
    )
    await projector.run(_feed(records))
    assert terminated >= 2
    assert projector.retries == 2
    assert projector.connected
    assert differences(engine, market) == []
    projector.close()
    engine.dispose()


async def test_catches_up_after_the_database_refuses_connections_for_a_while(pg_url: str) -> None:
    market = EngineMarket(accounts=5, seed=17)
    records = market.setup() + market.steps(3000)
    engine = create_store_engine(pg_url)
    projector = Projector(engine, ProjectorConfig(max_batch_records=50, retry=FAST))
    running = asyncio.create_task(projector.run(_feed(records, pause_every=50, pause=0.01)))
    while (projector.projected_seq or 0) < 500:
        await asyncio.sleep(0.01)
    _allow_connections(pg_url, False)
    try:
        _terminate_backends(pg_url)
        await asyncio.sleep(1.0)
        assert not projector.connected
        assert projector.lag > 0
        stalled = projector.projected_seq
        await asyncio.sleep(0.3)
        assert projector.projected_seq == stalled
    finally:
        _allow_connections(pg_url, True)
    await asyncio.wait_for(running, timeout=60)
    assert projector.connected
    assert projector.retries >= 3
    assert projector.lag == 0
    assert differences(engine, market) == []
    projector.close()
    engine.dispose()


async def test_real_engine_output_converges_on_postgresql(pg_url: str) -> None:
    """The SQLite end-to-end scenario (spot, perp, binary settlement) through COPY and unnest updates."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from tests.unit.test_store_engine_projection import SPECS, _commands, _journal
    from tradehall.domain.events import OrderFilled
    from tradehall.domain.fixedpoint import amount_of, decimal_of
    from tradehall.engine import Engine, EngineConfig
    from tradehall.store.models import Balance, Fill, Order, Position

    config = EngineConfig()
    engine = Engine(config)
    records = _journal(engine, _commands(seed=8, count=1500))
    db = create_store_engine(pg_url)
    projector = Projector(
        db, ProjectorConfig(max_batch_records=61, currency_decimals=config.currency_decimals)
    )
    await projector.run(_feed(records))
    projector.close()
    specs = {spec.symbol: spec for spec in SPECS}
    with Session(db) as session:
        fills = sum(1 for r in records for ev in r.events if isinstance(ev, OrderFilled))
        assert len(session.scalars(select(Fill)).all()) == fills > 200
        balances = {(b.account_id, b.currency): (b.total, b.held) for b in session.scalars(select(Balance))}
        for account_id, account in engine.accounts.items():
            for currency, balance in account.balances.items():
                places = config.decimals(currency)
                expected = (amount_of(balance.total, places), amount_of(balance.held, places))
                if balance.total or balance.held:
                    assert balances[(account_id, currency)] == expected, (account_id, currency)
        positions = {(p.account_id, p.market): p for p in session.scalars(select(Position))}
        for symbol, market in engine.markets.items():
            for account_id, position in market.positions.items():
                row = positions.get((account_id, symbol))
                if row is not None:
                    assert row.quantity == decimal_of(position.quantity, specs[symbol].lot_size)
        live = {str(order_id) for order_id in engine.orders}
        open_rows = set(
            session.scalars(
                select(Order.id).where(Order.status.in_(("open", "partially_filled", "pending_trigger")))
            )
        )
        assert open_rows == live
        cancelled_unfilled = session.scalars(
            select(Order).where(Order.status == "cancelled", Order.average_price.is_(None))
        ).first()
        assert cancelled_unfilled is not None
    db.dispose()


def test_the_mirror_is_reloaded_from_one_snapshot_while_another_writer_commits_on_postgresql(
    pg_url: str,
) -> None:
    """As the SQLite test in tests/unit/test_store_projector_race.py: READ COMMITTED gave each table
    of the mirror's reload its own snapshot; the reload now reads in one REPEATABLE READ snapshot."""
    market = EngineMarket(accounts=3, seed=5)
    first = market.setup() + market.steps(100)
    second = market.steps(40)
    engine = create_store_engine(pg_url)
    earlier = Projector(engine, ProjectorConfig())
    asyncio.run(earlier.apply(first))
    earlier.close()
    other = Projector(engine, ProjectorConfig())
    interleaved = False

    def commit_meanwhile(point: str) -> None:
        nonlocal interleaved
        if point == "load_mirror" and not interleaved:
            interleaved = True
            asyncio.run(other.apply(second))

    reloading = Projector(engine, ProjectorConfig(), fault=commit_meanwhile)
    plain = Projector(engine, ProjectorConfig())
    try:
        before, seq_before = plain._load_mirror()
        loaded, seq_loaded = reloading._load_mirror()
        after, seq_after = plain._load_mirror()
    finally:
        for projector in (reloading, other, plain):
            projector.close()
    assert interleaved
    assert (seq_before, seq_after) == (first[-1].seq, second[-1].seq)
    assert before.balances != after.balances
    assert (seq_loaded, loaded.balances, loaded.positions) == (seq_before, before.balances, before.positions)
    assert loaded.open_orders == before.open_orders
    assert differences(engine, market) == []
    engine.dispose()
