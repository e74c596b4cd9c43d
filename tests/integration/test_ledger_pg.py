"""The ledger on PostgreSQL (COPY inserts, NUMERIC amounts, migration 0006's opening balances): the same
rows as on SQLite for the same journal, and an older database's ledger reconciles after the upgrade."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from tests.conftest import require_service
from tests.engine_support import perp_spec
from tests.unit.test_store_engine_projection import _commands
from tests.unit.test_store_ledger import _row, assert_reconciles, fresh_db, journal, ledger, lines, project
from tradehall.domain import commands as c
from tradehall.engine import Engine, EngineConfig
from tradehall.store import create_store_engine, downgrade, upgrade
from tradehall.store.models import LedgerEntry

pytestmark = pytest.mark.services
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@pytest.fixture
def pg_url(postgresql_available: None) -> Iterator[str]:
    """A database of its own (th_test_<uuid>), dropped at the end."""
    require_service("postgresql")
    name = f"th_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgresql_writes_the_ledger_sqlite_writes(pg_url: str, tmp_path: Path) -> None:
    commands = _commands(seed=3, count=500)
    commands.pop()  # the settlement: void instead, after funding both ways
    commands += [
        c.MarkPrice(market="ETH-PERP", price=D("3000")),
        c.ApplyFunding(market="ETH-PERP", rate=D("0.0004")),
        c.ApplyFunding(market="ETH-PERP", rate=D("-0.0001")),
        c.Withdraw(account_id="acct-1", amount=D("7.5")),
        c.VoidMarket(market="RAIN"),
    ]
    engine = Engine(EngineConfig())
    records = journal(engine, commands, strict=False)
    sqlite = fresh_db(tmp_path / "l.db")
    assert project(sqlite, records) == 0
    upgrade(pg_url)
    pg = create_store_engine(pg_url)
    try:
        assert project(pg, records, batch=41) == 0
        rows = [_row(r) for r in ledger(pg)]
        assert rows == [_row(r) for r in ledger(sqlite)]
        assert [str(r[4]) for r in rows[:3]] == [str(r.amount) for r in ledger(sqlite)[:3]]  # same places
        assert_reconciles(pg, engine)
    finally:
        pg.dispose()


def test_an_older_postgresql_database_opens_its_ledger_with_the_balances(pg_url: str) -> None:
    engine = Engine()
    records = journal(
        engine,
        [
            c.CreateMarket(spec=perp_spec()),
            c.OpenAccount(account_id="a", owner="a"),
            c.Deposit(account_id="a", amount=D("1100")),
            c.OpenAccount(account_id="b", owner="b"),
            c.Deposit(account_id="b", amount=D("1000000")),
            c.PlaceOrder(account_id="b", market="BTC-PERP", side="short", quantity=D("1"), price=D("10000")),  # type: ignore[arg-type]
            c.PlaceOrder(account_id="a", market="BTC-PERP", side="long", quantity=D("1"), price=D("10000")),  # type: ignore[arg-type]
        ],
    )
    upgrade(pg_url)
    pg = create_store_engine(pg_url)
    try:
        assert project(pg, records) == 0
        with Session(pg) as session, session.begin():
            session.execute(delete(LedgerEntry))
        downgrade(pg_url, "0005")
        upgrade(pg_url)
        assert lines(pg, "a") == [("opening_balance", "1095.00", "USD", "1095.00")]
        more = journal(
            engine,
            [c.MarkPrice(market="BTC-PERP", price=D("8000"))],  # no bids: taken over, the loss capped
            first_seq=len(records) + 1,
        )
        assert project(pg, more) == 0
        assert lines(pg, "a")[1:] == [("insurance", "-1095.00", "USD", "0.00")]
        assert_reconciles(pg, engine)
    finally:
        pg.dispose()
