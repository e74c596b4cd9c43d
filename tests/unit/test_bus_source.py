"""The publisher's journal source on a real engine runner: journal files, then live durable records."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tradehall.bus.inproc import InProcessBus
from tradehall.bus.position import MemoryPositionStore
from tradehall.bus.publisher import BusPublisher
from tradehall.bus.source import RunnerJournalSource
from tradehall.journal.recovery import EngineFactory
from tradehall.journal.testing import ToyEngine, sample_command
from tradehall.service.runner import EngineRunner, RunnerConfig

FACTORY = EngineFactory(ToyEngine, ToyEngine.restore)


def runner_config(tmp_path: Path) -> RunnerConfig:
    return RunnerConfig(
        journal_dir=tmp_path / "journal", snapshot_dir=tmp_path / "snapshots", max_wait_ms=0.0
    )


async def test_the_publisher_reads_what_was_journaled_before_and_after_it_started(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, runner_config(tmp_path)) as runner:
        for n in range(30):
            await runner.submit(sample_command(n))
        bus = InProcessBus()
        source = RunnerJournalSource(runner, runner.config.journal_dir)
        publisher = BusPublisher(bus, source, MemoryPositionStore(), batch_max=7)
        await publisher.start()
        await publisher.wait_published(30)
        await runner.submit_many([sample_command(n) for n in range(30, 50)])
        await publisher.wait_published(50)
        await publisher.stop()
    seqs = sorted({m.seq for topic in bus.topics() for m in bus.messages(topic)})
    assert seqs == list(range(1, 51))


async def test_a_reader_that_fell_behind_catches_up_from_the_journal_files(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, runner_config(tmp_path)) as runner:
        await runner.submit(sample_command(0))
        source = RunnerJournalSource(runner, runner.config.journal_dir, max_queue=5)
        records = source.records(1)
        first = await records.__anext__()
        await runner.submit_many([sample_command(n) for n in range(1, 40)])  # overflows the live queue
        rest = [await asyncio.wait_for(records.__anext__(), 5) for _ in range(39)]
        await records.aclose()  # type: ignore[attr-defined]
    assert [first.seq, *(r.seq for r in rest)] == list(range(1, 41))


async def test_a_source_started_at_a_later_seq_skips_what_was_published(tmp_path: Path) -> None:
    async with EngineRunner(FACTORY, runner_config(tmp_path)) as runner:
        await runner.submit_many([sample_command(n) for n in range(10)])
        records = RunnerJournalSource(runner, runner.config.journal_dir).records(8)
        got = [await asyncio.wait_for(records.__anext__(), 5) for _ in range(3)]
        await records.aclose()  # type: ignore[attr-defined]
    assert [r.seq for r in got] == [8, 9, 10]
