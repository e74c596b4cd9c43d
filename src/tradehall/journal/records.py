"""The unit of the journal: one sequenced command and the events the engine produced for it.

Recovery replays `command` only (the engine is deterministic); `events` let the projector and the
bus publisher read what happened without running an engine, and let replay verify determinism.
"""

from __future__ import annotations

import msgspec

from tradehall.domain.commands import AnyCommand
from tradehall.domain.events import AnyEvent


class JournalRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    seq: int
    ts: int
    command: AnyCommand
    events: tuple[AnyEvent, ...]


class ReplayRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A journal record as recovery reads it: the command alone. Decoding skips the events, which
    are most of a record's bytes and would only be built to be thrown away."""

    seq: int
    ts: int
    command: AnyCommand
