"""The projector's settings and errors: what is retried and what stops it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from tradehall.domain.market import DEFAULT_CURRENCY_DECIMALS
from tradehall.store.ledger import MAX_LEDGER_SHARDS

DEFAULT_PROJECTOR = "read_models"


class ProjectionError(Exception):
    """The events cannot be projected (unknown market, a gap in the sequence): not retried."""


class SequenceGapError(ProjectionError):
    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"journal sequence gap: expected seq {expected}, got {got}")
        self.expected = expected
        self.got = got


def is_transient(error: BaseException) -> bool:
    """A lost or refused connection (retry later), as opposed to a bug or bad data (stop)."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_delay: float = 0.05
    max_delay: float = 5.0
    multiplier: float = 2.0

    def delays(self) -> Iterable[float]:
        delay = self.initial_delay
        while True:
            yield delay
            delay = min(self.max_delay, delay * self.multiplier)


@dataclass(frozen=True, slots=True)
class ProjectorConfig:
    name: str = DEFAULT_PROJECTOR
    max_batch_records: int = 1000
    max_pending_records: int = 100_000
    equity_interval_seconds: float = 1.0
    """Minimum event time between two equity_history points of one account (0 = every batch)."""
    currency_decimals: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CURRENCY_DECIMALS))
    default_currency_decimals: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    candle_intervals: tuple[str, ...] = ("1m", "5m", "15m", "1h", "1d")
    """Candles of book-venue markets from their trades (empty: none)."""
    shard_index: int = 0
    """A cluster shard's place in the shard map: its balance rows carry it and its ledger ids include
    it, so several shards' projections share one database (0: one machine, or the first shard)."""
    writes_accounts: bool = True
    """Whether this projection writes the `accounts` rows (and equity history): in a cluster every
    shard opens every account, and only the home shard's projection owns the account rows."""

    def __post_init__(self) -> None:
        if not 0 <= self.shard_index < MAX_LEDGER_SHARDS:
            top = MAX_LEDGER_SHARDS - 1
            raise ValueError(f"shard index {self.shard_index}: the read models hold shards 0 to {top}")
