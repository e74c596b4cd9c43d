"""The projector's settings and errors: what is retried and what stops it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from tradehall.domain.market import DEFAULT_CURRENCY_DECIMALS

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
