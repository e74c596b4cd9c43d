from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tradehall.domain.errors import Code, TradehallError
from tradehall.store import upgrade
from tradehall.store.db import create_store_engine, sync_url
from tradehall.store.queries import clamp_limit, decode_cursor, encode_cursor
from tradehall.store.types import utc_of_ns


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = create_store_engine(url)
    yield engine
    engine.dispose()


def test_async_urls_map_to_the_sync_driver_of_the_same_database() -> None:
    assert sync_url("sqlite+aiosqlite:///var/x.db").drivername == "sqlite+pysqlite"
    assert sync_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        sync_url("mysql://u@h/db")


def test_money_keeps_every_digit_on_sqlite(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO balances (account_id, currency, total, held, available, updated_at) "
                "VALUES ('a', 'BTC', :total, '0', '0', '2026-01-01 00:00:00.000000')"
            ),
            {"total": "12345678901234.00000001"},
        )
    from sqlalchemy.orm import Session

    from tradehall.store.models import Balance

    with Session(engine) as session:
        balance = session.get(Balance, ("a", "BTC", 0))
        assert balance is not None
        assert balance.total == Decimal("12345678901234.00000001")
        assert balance.updated_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    from sqlalchemy.exc import StatementError
    from sqlalchemy.orm import Session

    from tradehall.store.models import ProjectionState

    with Session(engine) as session, pytest.raises(StatementError, match="naive datetimes are refused"):
        session.add(ProjectionState(name="x", last_seq=1, updated_at=datetime(2026, 1, 1)))
        session.flush()


def test_utc_of_ns_truncates_to_microseconds() -> None:
    assert utc_of_ns(1_700_000_000_123_456_789) == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)


def test_cursor_round_trips_time_and_key() -> None:
    at = datetime(2026, 11, 25, 1, 2, 3, 456789, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, 42)) == (at, 42)
    assert decode_cursor(encode_cursor(at, "17")) == (at, "17")


@pytest.mark.parametrize(
    "cursor", ["", "not base64!", "bnVsbA", "WzEsMl0", "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwxXQ"]
)
def test_a_malformed_cursor_is_invalid_request(cursor: str) -> None:
    with pytest.raises(TradehallError) as caught:
        decode_cursor(cursor)
    assert caught.value.code is Code.INVALID_REQUEST


def _raw_cursor(at: str, key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps([at, key]).encode()).decode().rstrip("=")


UTC_2000 = "2000-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("at", "key"),
    [
        (UTC_2000, 2**63),  # one past BIGINT: OverflowError in SQLite's driver
        (UTC_2000, -(2**63) - 1),
        (UTC_2000, 10**40),
        (UTC_2000, "a\x00b"),  # PostgreSQL text holds no NUL
        (UTC_2000, "\ud800"),  # a lone surrogate: no UTF-8 for either driver
        ("9999-12-31T23:00:00-05:00", 1),  # in UTC: year 10000
        ("0001-01-01T00:30:00+01:00", 1),  # in UTC: year 0
        (UTC_2000, True),
        (UTC_2000, 1.5),
        ("2000-01-01T00:00:00", 1),  # no time zone
    ],
)
def test_a_cursor_the_database_could_not_bind_is_invalid_request(at: str, key: object) -> None:
    with pytest.raises(TradehallError) as caught:
        decode_cursor(_raw_cursor(at, key))
    assert caught.value.code is Code.INVALID_REQUEST


def test_the_extremes_that_fit_are_cursors_like_any_other() -> None:
    assert decode_cursor(_raw_cursor(UTC_2000, 2**63 - 1))[1] == 2**63 - 1
    assert decode_cursor(_raw_cursor(UTC_2000, -(2**63)))[1] == -(2**63)
    at, _ = decode_cursor(_raw_cursor("9999-12-31T18:00:00-05:00", 1))
    assert at == datetime(9999, 12, 31, 23, tzinfo=UTC) and at.tzinfo is UTC
    at, _ = decode_cursor(_raw_cursor("2000-01-01T05:30:00+05:30", "17"))
    assert at == datetime(2000, 1, 1, tzinfo=UTC) and at.tzinfo is UTC


def test_limit_defaults_to_100_and_is_capped_at_1000() -> None:
    assert clamp_limit(None) == 100
    assert clamp_limit(1) == 1
    assert clamp_limit(5000) == 1000
    with pytest.raises(TradehallError) as caught:
        clamp_limit(0)
    assert caught.value.code is Code.INVALID_REQUEST


def test_raw_sqlite_datetimes_match_what_sqlalchemy_writes(engine: Engine) -> None:
    from sqlalchemy.orm import Session

    from tradehall.store.models import ProjectionState
    from tradehall.store.types import sqlite_datetime

    instant = datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        session.add(ProjectionState(name="x", last_seq=1, updated_at=instant))
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT updated_at FROM projection_state")).scalar()
    assert stored == sqlite_datetime(instant) == "2026-03-04 05:06:07.000089"
