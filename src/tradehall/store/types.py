"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no decimal type: a NUMERIC column there coerces "64000.50" to a binary float, so money
would lose cents. `Money` is NUMERIC on PostgreSQL and TEXT on SQLite (the exact decimal string);
SQL arithmetic and ordering on money columns are therefore not portable and the store never uses them.
`UTCDateTime` is timestamptz on PostgreSQL and a fixed-width text on SQLite (so ordering works), and
always hands back timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

from tradehall.domain.fixedpoint import decimal_str


class Money(TypeDecorator[Decimal]):
    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return decimal_str(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        return Decimal(str(value))


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: the store keeps UTC instants")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # Naive UTC: SQLAlchemy writes it as the fixed-width text of `sqlite_datetime`.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def sqlite_datetime(value: datetime) -> str:
    """An aware datetime as SQLite stores it here: naive UTC text of fixed width (text order = time
    order), the same form SQLAlchemy's SQLite DATETIME writes and reads."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are refused: the store keeps UTC instants")
    utc = value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}"
    )


def utc_of_ns(ns: int) -> datetime:
    """A UTC datetime (microsecond precision, truncated) from nanoseconds since the epoch."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def ns_of_utc(instant: datetime) -> int:
    """Nanoseconds since the epoch of a stored (microsecond) time: the inverse of `utc_of_ns`."""
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
