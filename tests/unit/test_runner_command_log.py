"""The runner with a `CommandLog` in place of the local journal (what a cluster shard's leader runs):
acknowledged only after the log stored the batch, a refused append stops it, `abort` stops
acknowledging at once, snapshots go to the log with the checkpoint captured with them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from tradehall.domain.commands import Deposit
from tradehall.journal import EngineFactory
from tradehall.journal.errors import JournalError
from tradehall.journal.segments import EncodedBatch, decode_frames
from tradehall.journal.testing import ToyEngine
from tradehall.service.command_log import LogRecovery
from tradehall.service.runner import EngineRunner, RunnerConfig, RunnerError

FACTORY = EngineFactory(ToyEngine, ToyEngine.restore)


class MemoryLog:
    """Batches kept in a list; an append can be held (a slow log) or refused (a fenced one)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.snapshots: list[tuple[int, int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.appending = asyncio.Event()
        self.refuse: Exception | None = None
        self.closed = False

    async def recover(self, factory: EngineFactory[ToyEngine]) -> LogRecovery[ToyEngine]:
        engine = factory.create()
        for message in self.messages:
            for record in decode_frames(message):
                engine.apply(record.command)
        return LogRecovery(engine, sum(len(decode_frames(m)) for m in self.messages))

    async def append(self, batches: Sequence[EncodedBatch]) -> None:
        self.appending.set()
        await self.gate.wait()
        if self.refuse is not None:
            raise self.refuse
        self.messages.append(b"".join(batch.data for batch in batches))

    def checkpoint(self) -> int:
        return len(self.messages) + 1

    async def write_snapshot(self, seq: int, data: bytes, checkpoint: int) -> None:
        self.snapshots.append((seq, checkpoint))

    async def close(self) -> None:
        self.closed = True


def config(**overrides: object) -> RunnerConfig:
    values: dict[str, object] = {"journal_dir": Path("unused"), "snapshot_dir": Path("unused")}
    values.update(overrides)
    return RunnerConfig(**values)  # type: ignore[arg-type]


def deposit(n: int) -> Deposit:
    return Deposit(account_id="a", amount=Decimal(n))


def stored_seqs(log: MemoryLog) -> list[int]:
    return [record.seq for message in log.messages for record in decode_frames(message)]


async def test_a_command_is_acknowledged_only_after_the_log_stored_its_batch() -> None:
    log = MemoryLog()
    runner = EngineRunner(FACTORY, config(), command_log=log)
    await runner.start()
    log.gate.clear()
    pending = asyncio.create_task(runner.submit(deposit(1)))
    await log.appending.wait()
    await asyncio.sleep(0.01)
    assert not pending.done() and log.messages == []
    log.gate.set()
    result = await pending
    assert result.seq == 1 and stored_seqs(log) == [1]
    with pytest.raises(RunnerError, match="not the local journal"):
        _ = runner.journal
    await runner.stop()
    assert log.closed


async def test_a_restarted_runner_recovers_from_the_log() -> None:
    log = MemoryLog()
    async with EngineRunner(FACTORY, config(snapshot_on_stop=False), command_log=log) as runner:
        await runner.submit_many([deposit(n) for n in range(1, 6)])
        expected = runner.engine.state_hash()
    async with EngineRunner(FACTORY, config(snapshot_on_stop=False), command_log=log) as again:
        assert again.last_seq == 5 and again.engine.state_hash() == expected
        assert (await again.submit(deposit(6))).seq == 6


async def test_a_refused_append_fails_its_commands_and_stops_the_runner() -> None:
    log = MemoryLog()
    runner = EngineRunner(FACTORY, config(), command_log=log)
    await runner.start()
    await runner.submit(deposit(1))
    log.refuse = JournalError("fenced")
    with pytest.raises(JournalError, match="fenced"):
        await runner.submit(deposit(2))
    assert isinstance(runner.failure, JournalError) and not runner.accepting
    assert (runner.durable_seq, runner.last_seq) == (1, 2)
    with pytest.raises(RunnerError):
        await runner.submit(deposit(3))
    await runner.stop()
    assert stored_seqs(log) == [1]


async def test_abort_lets_the_batch_being_stored_finish_and_stores_nothing_more() -> None:
    log = MemoryLog()
    runner = EngineRunner(FACTORY, config(max_wait_ms=0.0), command_log=log)
    await runner.start()
    log.gate.clear()
    first = asyncio.create_task(runner.submit(deposit(1)))
    await log.appending.wait()  # seq 1 is being stored
    second = asyncio.create_task(runner.submit(deposit(2)))
    await asyncio.sleep(0.01)  # seq 2 applied, waiting for the next append
    runner.abort("no longer the leader")
    with pytest.raises(RunnerError, match="no longer the leader"):
        await runner.submit(deposit(3))
    log.gate.set()
    assert (await first).seq == 1  # it was stored: its answer is true
    with pytest.raises(RunnerError):
        await second
    await runner.stop()
    assert stored_seqs(log) == [1]
    assert (runner.durable_seq, runner.last_seq) == (1, 2)  # the engine is ahead: rebuild it


async def test_snapshots_go_to_the_log_with_the_checkpoint_taken_with_them() -> None:
    log = MemoryLog()
    runner = EngineRunner(FACTORY, config(snapshot_every_commands=3, max_wait_ms=0.0), command_log=log)
    await runner.start()
    for n in range(1, 4):
        await runner.submit(deposit(n))
    for _ in range(100):
        if log.snapshots:
            break
        await asyncio.sleep(0.01)
    # captured right after seq 3 was applied, before its batch was stored: two messages stored then
    assert log.snapshots == [(3, 3)]
    assert runner.snapshot_seq == 3
    await runner.stop()
