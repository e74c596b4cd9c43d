"""In-process shards for the cluster tests: an engine behind a leader that can be down or lose replies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tradehall.domain.commands import AnyCommand
from tradehall.engine import Engine
from tradehall.journal.records import JournalRecord
from tradehall.service.cluster.ops import followed_check
from tradehall.service.cluster.routing import NoResponderError
from tradehall.service.runner import CommandResult, RunnerError

DOWN = "down"
"""No leader listens: the command is not delivered."""
LOSE_REPLY = "lose_reply"
"""The leader applies (journals) the command and dies before answering: the caller sees a timeout."""


class LostReplyError(RunnerError):
    maybe_applied = True


@dataclass
class FakeShard:
    """`faults` are taken one per request, in order; then every request is served."""

    name: str
    engine: Engine = field(default_factory=Engine)
    faults: list[str] = field(default_factory=list)
    seq: int = 0
    commands: list[AnyCommand] = field(default_factory=list)
    listeners: list[Callable[[Sequence[JournalRecord]], None]] = field(default_factory=list)
    """Called with each applied record, as a replica's `ShardState.listeners` are."""
    now_ns: Callable[[], int] | None = None
    """When set, stamps each command as a leader's sequencer does (else `ts` stays 0)."""

    async def submit(self, command: AnyCommand, *, timeout: float | None = None) -> CommandResult:
        fault = self.faults.pop(0) if self.faults else None
        if fault == DOWN:
            raise NoResponderError(f"shard {self.name}: no leader is serving")
        self.seq += 1
        if self.now_ns is not None:
            command = msgspec.structs.replace(command, ts=self.now_ns())
        self.commands.append(command)
        events = tuple(self.engine.apply(command))
        for listener in list(self.listeners):
            listener([JournalRecord(seq=self.seq, ts=0, command=command, events=events)])
        if fault == LOSE_REPLY:
            raise LostReplyError(f"shard {self.name}: the leader did not answer in time")
        return CommandResult(seq=self.seq, ts=0, events=events)


class FakeTime:
    """`monotonic` and `sleep` for the router: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeReads:
    """The gateway's read replicas of fake shards: the shards' own engines (always caught up)."""

    shards: dict[str, FakeShard]

    def engine_of(self, shard: str) -> Engine:
        return self.shards[shard].engine

    async def wait_applied(self, shard: str, seq: int) -> None:
        assert self.shards[shard].seq >= seq

    def add_listener(self, shard: str, listener: Callable[[Sequence[JournalRecord]], None]) -> None:
        self.shards[shard].listeners.append(listener)

    async def shard_check(self, shard: str) -> dict[str, Any]:
        """A shard whose next request finds no leader (`DOWN`) is seen without one."""
        fake = self.shards[shard]
        leader_seen = not fake.faults or fake.faults[0] != DOWN
        return followed_check(
            applied_seq=fake.seq,
            stream_seq=fake.seq,
            stream_last_seq=fake.seq,
            lease_holder=f"{shard}-1" if leader_seen else "",
            lease_since_renewal_seconds=0.0,
            lease_ttl_seconds=5.0,
            diverged_seq=0,
        )
