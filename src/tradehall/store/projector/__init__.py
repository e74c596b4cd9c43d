"""The projector: engine events -> read models, one transaction per batch, exactly once.

Each batch is written in ONE transaction together with `projection_state.last_seq`, which the
transaction re-reads under a row lock: a batch the database already holds (a commit whose
acknowledgement was lost) is never written again, and a gap in the sequence is refused, so none is
ever skipped. The projector never blocks the engine: it reads its own `AsyncIterator[JournalRecord]`
and does its work in two threads (prepare rows, write them). A lost connection is retried with
exponential backoff; on restart, `await projector.last_seq()` says where to resume reading the journal.

The engine's events carry integers only; the projector converts them with each market's spec (from
`MarketCreated`, reloaded from the `markets` table on resume) and the currencies' decimals, through
`tradehall.domain.fixedpoint`. It keeps a mirror of balances, positions, marks and open orders in
memory, so a batch needs no reads; the mirror is rebuilt from the database after a failure.
Accounts' peak equity and drawdown are sampled at batch ends (the engine's own figures are
authoritative for assessment rules).

The package: `driver` (the `Projector`: threads, retries, the batch transaction), `mirror` (the
in-memory state and its reload), `batch` (one handler per event), `rows` (the rows a batch writes),
`bulk` (COPY and one-statement updates), `config` (settings and errors).
"""

from tradehall.store.projector.config import (
    DEFAULT_PROJECTOR,
    ProjectionError,
    ProjectorConfig,
    RetryPolicy,
    SequenceGapError,
    is_transient,
)
from tradehall.store.projector.driver import Projector

__all__ = [
    "DEFAULT_PROJECTOR",
    "ProjectionError",
    "Projector",
    "ProjectorConfig",
    "RetryPolicy",
    "SequenceGapError",
    "is_transient",
]
