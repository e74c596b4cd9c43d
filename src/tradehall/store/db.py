"""Database engines and the async facade over them.

SQLAlchemy's asyncio extension needs `greenlet`, which SQLAlchemy 2.1 no longer installs and which is
not among our dependencies. The store therefore uses SQLAlchemy's sync engine with the sync driver of
the configured database (pysqlite for SQLite, psycopg 3 for PostgreSQL) and runs every database call
in worker threads, so the event loop never blocks. URLs may name the async drivers the settings use
(`sqlite+aiosqlite:///...`, `postgresql+asyncpg://...`); they are mapped to the sync ones.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

_SYNC_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg"}

P = ParamSpec("P")
T = TypeVar("T")


def sync_url(url: str | URL) -> URL:
    """The URL with the sync driver of the same database (pysqlite / psycopg 3)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _SYNC_DRIVERS:
        raise ValueError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")
    return parsed.set(drivername=_SYNC_DRIVERS[backend])


def is_postgresql(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the projector writes; NORMAL is durable enough for read models
    # (the journal is the source of truth: a lost tail is projected again from it).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_store_engine(url: str | URL, **kwargs: Any) -> Engine:
    """A sync engine; `pool_pre_ping` so a connection the server killed is replaced, not reused."""
    parsed = sync_url(url)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql":
        options["connect_args"] = {"connect_timeout": 5}
    options.update(kwargs)
    engine = create_engine(parsed, **options)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Store:
    """The async face of the read models: `await store.call(fn, ...)` runs `fn(session, ...)` in a thread.

    Each call is one transaction (committed when `fn` returns, rolled back if it raises). The query
    and repository functions of `tradehall.store.queries` / `repositories` take the session first.
    """

    def __init__(self, engine: Engine, *, max_workers: int = 4) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="store")

    @classmethod
    def from_url(cls, url: str | URL, **kwargs: Any) -> Store:
        return cls(create_store_engine(url, **kwargs))

    def call_sync(self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self.sessions.begin() as session:
            return fn(session, *args, **kwargs)

    async def call(self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        work = functools.partial(self.call_sync, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, work)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
