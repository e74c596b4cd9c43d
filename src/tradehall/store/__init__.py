"""Read models: SQLAlchemy 2 models, the projector (events -> tables), queries and repositories.

SQLite is the embedded default, PostgreSQL the production store (fills partitioned by month).
Database work runs on sync SQLAlchemy engines in worker threads; see `tradehall.store.db`.
"""

from tradehall.store.db import Store, create_store_engine, is_postgresql, sync_url
from tradehall.store.migrate import current_revision, downgrade, head_revision, upgrade
from tradehall.store.projector import (
    ProjectionError,
    Projector,
    ProjectorConfig,
    RetryPolicy,
    SequenceGapError,
)
from tradehall.store.queries import Page
from tradehall.store.repositories import CandleRow, upsert_candles

__all__ = [
    "CandleRow",
    "Page",
    "ProjectionError",
    "Projector",
    "ProjectorConfig",
    "RetryPolicy",
    "SequenceGapError",
    "Store",
    "create_store_engine",
    "current_revision",
    "downgrade",
    "head_revision",
    "is_postgresql",
    "sync_url",
    "upgrade",
    "upsert_candles",
]
