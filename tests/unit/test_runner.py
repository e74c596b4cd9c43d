"""The engine runner: sequencing, stamping, group commit, ack only after durable, subscribers, restarts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from structlog.testing import capture_logs

from tradehall.domain.commands import AnyCommand, Deposit
from tradehall.domain.events import AnyEvent, BalanceChanged
from tradehall.journal import DeterminismError, EngineFactory, JournalRecord, read_records
from tradehall.journal.segments import EncodedBatch, list_segments
from tradehall.journal.snapshots import SnapshotStore
from tradehall.journal.testing import ToyEngine, sample_command
from tradehall.service.clock import ManualClock, SystemClock
from tradehall.service.runner import (
    CommandResult,
    EngineRunner,
    RunnerConfig,
    RunnerError,
    SubscriptionOverflowError,
)
from tradehall.service.settings import Settings

START_NS = 1_800_000_000_000_000_000
FACTORY = EngineFactory(ToyEngine, ToyEngine.restore)


def config(tmp_path: Path, **overrides: object) -> RunnerConfig:
    values: dict[str, object] = {
        "journal_dir": tmp_path / "journal",
        "snapshot_dir": tmp_path / "snapshots",
        "max_wait_ms": 0.0,
    }
    values.update(overrides)
    return RunnerConfig(**values)  # type: ignore[arg-type]


def deposit(n: int) -> Deposit:
    return Deposit(account_id=f"acct-{n % 3}", amount=Decimal(n), correlation_id=f"corr-{n}")


class SlowSync:
    """Wraps Journal.sync: records the last seq each fsync covered and holds it until released."""

    def __init__(self, runner: EngineRunner[ToyEngine], delay: float = 0.0) -> None:
        self.covered: list[int] = []
        self.release = threading.Event()
        self.release.set()
        self.delay = delay
        self._journal = runner.journal
        self._real = runner.journal.sync
        runner.journal.sync = self  # type: ignore[method-assign]

    def __call__(self) -> None:
        self.covered.append(self._journal.last_seq)
        time.sleep(self.delay)
        self.release.wait(5)
        self._real()


def test_clocks() -> None:
    manual = ManualClock(100, step_ns=5)
    assert [manual.now_ns(), manual.now_ns()] == [100, 105]
    manual.advance(1000)
    assert manual.now_ns() == 1110
    with pytest.raises(ValueError, match="backwards"):
        manual.set(5)
    system = SystemClock()
    readings = [system.now_ns() for _ in range(1000)]
    assert readings == sorted(readings)
    assert abs(readings[0] - time.time_ns()) < 5_000_000_000


def test_config_comes_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, fsync="always", group_commit_max_batch=7, snapshot_retention=4)
    cfg = RunnerConfig.from_settings(settings)
    assert (cfg.journal_dir, cfg.snapshot_dir) == (tmp_path / "journal", tmp_path / "snapshots")
    assert (cfg.fsync, cfg.max_batch, cfg.snapshot_retention) == ("always", 7, 4)


async def test_submit_before_start_is_refused(tmp_path: Path) -> None:
    runner = EngineRunner(FACTORY, config(tmp_path))
    with pytest.raises(RunnerError, match="not accepting"):
        await runner.submit(deposit(1))


async def test_commands_get_consecutive_seqs_and_clock_stamps_in_submission_order(tmp_path: Path) -> None:
    clock = ManualClock(START_NS, step_ns=10)
    async with EngineRunner(FACTORY, config(tmp_path), clock=clock) as runner:
        results = await asyncio.gather(*(runner.submit(deposit(n)) for n in range(1, 41)))
    assert [r.seq for r in results] == list(range(1, 41))
    assert [r.ts for r in results] == [START_NS + 10 * i for i in range(40)]
    first = results[0].events[0]
    assert isinstance(first, BalanceChanged) and (first.account_id, first.delta) == ("acct-1", 100)
    journaled = list(read_records(tmp_path / "journal"))
    assert [(r.seq, r.ts, r.events) for r in journaled] == [(r.seq, r.ts, r.events) for r in results]
    assert [r.command.ts for r in journaled] == [r.ts for r in results]
    assert [r.command.correlation_id for r in journaled] == [f"corr-{n}" for n in range(1, 41)]


async def test_one_fsync_covers_every_command_gathered_while_the_previous_ran(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path)) as runner:
        spy = SlowSync(runner)
        spy.release.clear()
        first = asyncio.create_task(runner.submit(deposit(1)))
        while not spy.covered:
            await asyncio.sleep(0.001)
        rest = [asyncio.create_task(runner.submit(deposit(n))) for n in range(2, 32)]
        await asyncio.sleep(0.05)
        assert runner.last_seq == 31  # applied while the first fsync is still running
        assert runner.journal.last_seq == 1  # and written only after it
        spy.release.set()
        results = await asyncio.gather(first, *rest)
        assert spy.covered == [1, 31]
        assert runner.batches_synced == 2
    assert [r.seq for r in results] == list(range(1, 32))


async def test_no_ack_and_no_subscriber_delivery_before_the_fsync_returns(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path)) as runner:
        delivered: list[int] = []
        runner.add_listener(lambda records: delivered.extend(r.seq for r in records))
        spy = SlowSync(runner)
        spy.release.clear()
        pending = asyncio.create_task(runner.submit(deposit(1)))
        await asyncio.sleep(0.1)
        assert spy.covered == [1]
        assert not pending.done()
        assert delivered == []
        assert runner.durable_seq == 0
        spy.release.set()
        result = await pending
        assert (result.seq, runner.durable_seq, delivered) == (1, 1, [1])


async def test_fsync_always_syncs_each_command_alone(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path, fsync="always")) as runner:
        spy = SlowSync(runner, delay=0.002)
        await asyncio.gather(*(runner.submit(deposit(n)) for n in range(1, 11)))
        assert spy.covered == list(range(1, 11))


async def test_batches_are_bounded_by_max_batch(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path, max_batch=8)) as runner:
        written: list[int] = []
        real_write = runner.journal.write

        def spy_write(batch: EncodedBatch) -> int:
            written.append(batch.last_seq - batch.first_seq + 1)
            return real_write(batch)

        runner.journal.write = spy_write  # type: ignore[method-assign]
        await runner.submit_many([deposit(n) for n in range(1, 21)])
    assert written == [8, 8, 4]


async def test_subscribers_receive_durable_records_in_order(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path)) as runner:
        subscription = runner.subscribe()
        await asyncio.gather(*(runner.submit(deposit(n)) for n in range(1, 6)))
        await runner.submit_many([deposit(n) for n in range(6, 9)])
        received = [await anext(subscription) for _ in range(8)]
        assert [r.seq for r in received] == list(range(1, 9))
        subscription.close()
        with pytest.raises(StopAsyncIteration):
            await anext(subscription)


async def test_a_subscriber_that_falls_behind_is_told_where_to_resume(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path)) as runner:
        subscription = runner.subscribe(max_queue=4)
        await runner.submit_many([deposit(n) for n in range(1, 4)])
        await runner.submit_many([deposit(n) for n in range(4, 7)])
        assert [(await anext(subscription)).seq for _ in range(3)] == [1, 2, 3]
        with pytest.raises(SubscriptionOverflowError) as caught:
            await anext(subscription)
        assert caught.value.last_seq == 3


async def test_a_failing_listener_does_not_stop_the_runner(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path)) as runner:

        def broken(records: Sequence[JournalRecord]) -> None:
            raise RuntimeError("subscriber bug")

        runner.add_listener(broken)
        assert (await runner.submit(deposit(1))).seq == 1
        assert (await runner.submit(deposit(2))).seq == 2


class ExplodingEngine(ToyEngine):
    def apply(self, command: AnyCommand) -> Sequence[AnyEvent]:
        if command.correlation_id == "corr-3":
            raise RuntimeError("engine bug")
        return super().apply(command)


async def test_an_engine_exception_fails_that_command_and_stops_the_runner(tmp_path: Path) -> None:
    factory = EngineFactory(ExplodingEngine, ExplodingEngine.restore)
    runner = EngineRunner(factory, config(tmp_path))
    await runner.start()
    results = await asyncio.gather(*(runner.submit(deposit(n)) for n in range(1, 6)), return_exceptions=True)
    assert [r.seq for r in results[:2] if isinstance(r, CommandResult)] == [1, 2]
    assert isinstance(results[2], RuntimeError)
    assert all(isinstance(r, RunnerError) for r in results[3:])
    with pytest.raises(RunnerError, match="fatal error"):
        await runner.submit(deposit(9))
    assert runner.accepting is False
    assert isinstance(runner.failure, RuntimeError)
    await runner.stop()
    assert [r.seq for r in read_records(tmp_path / "journal")] == [1, 2]


async def test_restart_recovers_state_and_continues_the_sequence(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path)) as runner:
        for n in range(1, 31):
            await runner.submit(sample_command(n))
        state = runner.engine.state_hash()
    assert [seq for seq, _ in SnapshotStore(tmp_path / "snapshots").paths()] == [30]
    async with EngineRunner(FACTORY, config(tmp_path)) as runner:
        assert runner.engine.state_hash() == state
        assert (await runner.submit(sample_command(31))).seq == 31


async def test_snapshots_every_n_commands_with_retention_and_archiving(tmp_path: Path) -> None:
    cfg = config(
        tmp_path, snapshot_every_commands=10, snapshot_retention=2, segment_bytes=1, snapshot_on_stop=False
    )
    async with EngineRunner(FACTORY, cfg) as runner:
        for n in range(1, 36):
            await runner.submit(sample_command(n))
            await asyncio.sleep(0)
        for _ in range(100):
            if runner.snapshot_seq == 30:
                break
            await asyncio.sleep(0.01)
    assert [seq for seq, _ in SnapshotStore(tmp_path / "snapshots").paths()] == [30, 20]
    live = [s.first_seq for s in list_segments(tmp_path / "journal")]
    assert live[0] == 21  # segments wholly at or before the oldest retained snapshot (20) are archived
    assert [r.seq for r in read_records(tmp_path / "journal")] == list(range(1, 36))


async def test_segments_a_consumer_still_needs_are_kept(tmp_path: Path) -> None:
    cfg = config(
        tmp_path, snapshot_every_commands=10, snapshot_retention=1, segment_bytes=1, snapshot_on_stop=False
    )
    async with EngineRunner(FACTORY, cfg, retain_from=lambda: 6) as runner:
        for n in range(1, 21):
            await runner.submit(sample_command(n))
        for _ in range(100):
            if runner.snapshot_seq == 20:
                break
            await asyncio.sleep(0.01)
    assert list_segments(tmp_path / "journal")[0].first_seq == 6


async def test_snapshot_after_t_seconds_even_when_idle(tmp_path: Path) -> None:
    cfg = config(tmp_path, snapshot_every_seconds=0.05, snapshot_on_stop=False)
    async with EngineRunner(FACTORY, cfg) as runner:
        await runner.submit(sample_command(1))
        await runner.submit(sample_command(2))
        for _ in range(100):
            if runner.snapshot_seq == 2:
                break
            await asyncio.sleep(0.01)
        assert runner.snapshot_seq == 2
    assert [seq for seq, _ in SnapshotStore(tmp_path / "snapshots").paths()] == [2]


async def test_a_runner_starts_once(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path)) as runner:
        with pytest.raises(RunnerError, match="already been started"):
            await runner.start()


async def test_submitters_wait_for_room_when_the_queue_is_full(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path, max_pending=4, max_batch=2)) as runner:
        results = await asyncio.gather(*(runner.submit(deposit(n)) for n in range(1, 21)))
    assert [r.seq for r in results] == list(range(1, 21))


async def test_the_record_stream_ends_when_the_runner_stops(tmp_path: Path) -> None:
    runner = EngineRunner(FACTORY, config(tmp_path))
    await runner.start()
    received: list[int] = []

    async def consume() -> None:
        async for record in runner.records():
            received.append(record.seq)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    await runner.submit_many([deposit(n) for n in range(1, 4)])
    await runner.stop()
    await asyncio.wait_for(consumer, 5)
    assert received == [1, 2, 3]
    with pytest.raises(RunnerError, match="not accepting"):
        await runner.submit(deposit(4))


async def test_restart_after_a_torn_write_truncates_it_and_continues(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path, snapshot_on_stop=False)) as runner:
        await runner.submit_many([sample_command(n) for n in range(1, 6)])
    newest = sorted((tmp_path / "journal").glob("*.wal"))[-1]
    with newest.open("ab") as handle:
        handle.write(b"TRJ1\x00\x01")  # a frame header cut short by the crash
    with capture_logs() as logs:
        async with EngineRunner(FACTORY, config(tmp_path)) as runner:
            assert runner.last_seq == 5
            assert (await runner.submit(sample_command(6))).seq == 6
    assert any(entry["event"] == "journal_torn_tail_truncated" for entry in logs)
    assert [r.seq for r in read_records(tmp_path / "journal", tolerate_torn_tail=False)] == list(range(1, 7))


class DriftingEngine(ToyEngine):
    """Gives every deposit a different reason than it did when journaled: a determinism break."""

    def apply(self, command: AnyCommand) -> Sequence[AnyEvent]:
        events = super().apply(command)
        replace = msgspec.structs.replace
        return [replace(e, reason="changed") if isinstance(e, BalanceChanged) else e for e in events]


async def test_start_with_verification_refuses_an_engine_that_replays_differently(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, config(tmp_path, snapshot_on_stop=False)) as runner:
        await runner.submit_many([deposit(n) for n in range(1, 4)])
    drifting = EngineFactory(DriftingEngine, DriftingEngine.restore)
    runner = EngineRunner(drifting, config(tmp_path, verify_on_recovery=True))
    with pytest.raises(DeterminismError) as caught:
        await runner.start()
    assert caught.value.seq == 1


async def test_submit_many_reports_each_result_when_the_engine_fails_midway(tmp_path: Path) -> None:
    runner = EngineRunner(EngineFactory(ExplodingEngine, ExplodingEngine.restore), config(tmp_path))
    await runner.start()
    with pytest.raises(RuntimeError, match="engine bug"):
        await runner.submit_many([deposit(n) for n in range(1, 6)])
    await runner.stop()
    assert [r.seq for r in read_records(tmp_path / "journal")] == [1, 2]


async def test_a_command_the_journal_cannot_encode_is_refused_and_the_runner_goes_on(tmp_path: Path) -> None:
    from tradehall.domain.commands import AdvanceTime
    from tradehall.domain.errors import TradehallError

    async with EngineRunner(FACTORY, config(tmp_path)) as runner:
        with pytest.raises(TradehallError) as refused:
            await runner.submit(AdvanceTime(ts=2**70))
        assert refused.value.code == "invalid_request"
        with pytest.raises(TradehallError):
            await runner.submit_many([deposit(1), AdvanceTime(ts=2**70)])
        assert runner.accepting
        result = await runner.submit(deposit(2))
    assert result.seq == 1  # nothing of the refused batch was sequenced
