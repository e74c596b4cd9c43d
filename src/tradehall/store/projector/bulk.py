"""Bulk writes in the batch's transaction: COPY / executemany inserts and one-statement updates."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, text, update

from tradehall.domain.fixedpoint import decimal_str
from tradehall.store.types import Money, UTCDateTime, sqlite_datetime


def _insert_many(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY on PostgreSQL (psycopg sends one INSERT per row otherwise), a plain executemany of
    pre-converted tuples on SQLite (SQLAlchemy's per-row parameter processing costs more than the
    insert itself); both in the batch's transaction."""
    if not rows:
        return
    names = [column.name for column in table.columns if column.name in rows[0]]
    column_list = ", ".join(f'"{name}"' for name in names)
    if connection.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in names)
        sql = f'INSERT INTO "{table.name}" ({column_list}) VALUES ({marks})'
        connection.exec_driver_sql(sql, _sqlite_rows(table, names, rows))
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({column_list}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[name] for name in names])


def _update_many(
    connection: Connection,
    table: Table,
    keys: Sequence[str],
    rows: Sequence[dict[str, Any]],
    columns: Iterable[str],
) -> None:
    if not rows:
        return
    columns = tuple(columns)
    if connection.dialect.name == "postgresql":
        _update_many_unnest(connection, table, keys, rows, columns)
        return
    if connection.dialect.name == "sqlite":
        assignments = ", ".join(f'"{column}" = ?' for column in columns)
        matches = " AND ".join(f'"{key}" = ?' for key in keys)
        sql = f'UPDATE "{table.name}" SET {assignments} WHERE {matches}'
        connection.exec_driver_sql(sql, _sqlite_rows(table, (*columns, *keys), rows))
        return
    statement = (
        update(table)
        .where(*(table.c[key] == bindparam(f"k_{key}") for key in keys))
        .values({column: bindparam(f"v_{column}") for column in columns})
    )
    params = [
        {**{f"k_{key}": row[key] for key in keys}, **{f"v_{column}": row[column] for column in columns}}
        for row in rows
    ]
    connection.execute(statement, params)


def _sqlite_rows(table: Table, names: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as SQLite parameters, converted the way `Money` and `UTCDateTime` bind them (exact
    decimal text, fixed-width naive UTC text), column by column; the times of a batch repeat a lot."""
    times: dict[datetime, str] = {}

    def time_text(value: datetime | None) -> str | None:
        if value is None:
            return None
        text_value = times.get(value)
        if text_value is None:
            text_value = times[value] = sqlite_datetime(value)
        return text_value

    def money_text(value: Decimal | None) -> str | None:
        return None if value is None else decimal_str(value)

    def same(value: Any) -> Any:
        return value

    converters: list[Callable[[Any], Any]] = []
    for name in names:
        kind = table.c[name].type
        converters.append(
            money_text if isinstance(kind, Money) else time_text if isinstance(kind, UTCDateTime) else same
        )
    pairs = list(zip(names, converters, strict=True))
    return [tuple(convert(row[name]) for name, convert in pairs) for row in rows]


def _update_many_unnest(
    connection: Connection,
    table: Table,
    keys: Sequence[str],
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
) -> None:
    """One UPDATE ... FROM unnest(arrays) statement instead of a round trip per row (PostgreSQL).

    Values bypass the column types' bind processing, so they must already be what PostgreSQL takes:
    Decimals, aware datetimes, strings, booleans (they are: the rows come from the projector).
    """
    names = (*keys, *columns)
    arrays = ", ".join(
        f"CAST(:a{i} AS {table.c[name].type.compile(dialect=connection.dialect)}[])"
        for i, name in enumerate(names)
    )
    assignments = ", ".join(f'"{name}" = v."{name}"' for name in columns)
    matches = " AND ".join(f't."{key}" = v."{key}"' for key in keys)
    column_list = ", ".join(f'"{name}"' for name in names)
    sql = f'UPDATE "{table.name}" AS t SET {assignments} FROM unnest({arrays}) AS v({column_list})'
    sql += f" WHERE {matches}"
    params = {f"a{i}": [row[name] for row in rows] for i, name in enumerate(names)}
    connection.execute(text(sql), params)
