"""The projector of `serve --workers N` in its own process: fed by the engine process's published
records, reading the journal for whatever it missed, resuming after its stored seq.

The engine side is `run_engine`'s: a `Service(project=False, feeds=False)` behind an `EngineEndpoint`
and a `RecordPublisher`; the projector side is `ProjectorProcess`, on the same event loop here (the
processes themselves are exercised by tests/e2e/test_serve_workers.py and the crash matrix).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.crash_runner_child import ACCOUNTS, setup_commands
from tests.support.read_models import project_journal, projected_seq, read_models
from tradehall.domain.commands import AnyCommand, PlaceOrder
from tradehall.domain.enums import OrderSide
from tradehall.journal.records import JournalRecord
from tradehall.service.follower import RecordPublisher, records_address
from tradehall.service.projection import Projection, ProjectorProcess
from tradehall.service.settings import Settings
from tradehall.service.transport import EngineEndpoint, engine_address
from tradehall.service.wiring import Service


def orders(first: int, count: int) -> list[AnyCommand]:
    """Alternating bids and asks at one price: every second one fills the one before."""
    return [
        PlaceOrder(account_id=ACCOUNTS[n % 4], market="BTC-USD", side=[OrderSide.BUY, OrderSide.SELL][n % 2],
                   quantity=Decimal("0.01"), price=Decimal("100.00"), client_order_id=f"o-{n}",
                   correlation_id=f"o-{n}")
        for n in range(first, first + count)
    ]


class EngineSide:
    """What `run_engine` runs, minus the signals."""

    def __init__(self, settings: Settings, *, publish: bool = True) -> None:
        self.service = Service(settings, project=False, feeds=False)
        self.settings = settings
        self.publish = publish
        self.publisher: RecordPublisher | None = None
        self.endpoint: EngineEndpoint | None = None

    async def start(self) -> None:
        await self.service.start()
        if self.publish:
            self.publisher = RecordPublisher(records_address(self.settings.data_dir))
            self.service.add_listener(self.publisher.on_records)
        runner = self.service.runner
        self.endpoint = EngineEndpoint(engine_address(self.settings.data_dir), runner.submit_many,
                                       lambda: runner.durable_seq)
        await self.endpoint.start()

    async def stop(self) -> None:
        assert self.endpoint is not None
        await self.endpoint.stop()
        await self.service.stop()
        if self.publisher is not None:
            self.publisher.close()


class Running:
    def __init__(self, settings: Settings) -> None:
        self.process = ProjectorProcess(settings)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.process.run(self.stop))

    async def until(self, seq: int) -> None:
        async with asyncio.timeout(30):
            while self.process.projection.projected_seq < seq:
                assert not self.task.done(), self.task
                await asyncio.sleep(0.01)

    async def end(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", fsync="none", clock_tick_seconds=0)


async def one_process_projection(settings: Settings, tmp_path: Path, last: int) -> str:
    """The same journal projected the one-process way, into a database of its own."""
    return await project_journal(settings.journal_dir, f"sqlite:///{tmp_path / 'reference.sqlite3'}", last)


@pytest.fixture
async def engine_side(settings: Settings) -> AsyncIterator[EngineSide]:
    side = EngineSide(settings)
    await side.start()
    try:
        yield side
    finally:
        await side.stop()


async def test_the_engine_process_projects_nothing_the_projector_process_everything_once(
    engine_side: EngineSide, settings: Settings, tmp_path: Path
) -> None:
    runner = engine_side.service.runner
    await runner.submit_many(setup_commands())
    await runner.submit_many(orders(0, 40))
    assert projected_seq(settings.sqlalchemy_url) == 0  # the engine process wrote no read model
    projector = Running(settings)
    await projector.until(runner.durable_seq)
    await runner.submit_many(orders(40, 40))  # published while it runs
    await projector.until(runner.durable_seq)
    await projector.end()
    assert projected_seq(settings.sqlalchemy_url) == runner.durable_seq

    await runner.submit_many(orders(80, 40))  # while no projector runs
    again = Running(settings)  # resumes after the stored seq: catches up from the journal
    await again.until(runner.durable_seq)
    await runner.submit_many(orders(120, 10))
    await again.until(runner.durable_seq)
    await again.end()
    assert projected_seq(settings.sqlalchemy_url) == runner.durable_seq
    reference = await one_process_projection(settings, tmp_path, runner.durable_seq)
    assert read_models(settings.sqlalchemy_url) == read_models(reference)  # exactly once, nothing skipped
    assert len(read_models(reference)["fills"]) == 130  # one per side of each of the 65 trades


async def test_records_never_published_are_read_from_the_journal(settings: Settings, tmp_path: Path) -> None:
    side = EngineSide(settings, publish=False)  # as if every publication were lost
    await side.start()
    try:
        projector = Running(settings)
        runner = side.service.runner
        await runner.submit_many(setup_commands())
        await runner.submit_many(orders(0, 20))
        await projector.until(runner.durable_seq)  # told how far by the engine when nothing arrives
        await projector.end()
    finally:
        await side.stop()
    reference = await one_process_projection(settings, tmp_path, runner.durable_seq)
    assert read_models(settings.sqlalchemy_url) == read_models(reference)


async def test_a_one_process_service_still_projects_itself(settings: Settings) -> None:
    service = Service(settings)
    await service.start()
    try:
        await service.runner.submit_many(setup_commands())
        result = (await service.runner.submit_many(orders(0, 4)))[-1]
        await service.wait_projected(result.seq)
        assert service.projected_seq == result.seq == service.runner.durable_seq
    finally:
        await service.stop()
    assert projected_seq(settings.sqlalchemy_url) == result.seq


class CountingProjector:
    """Stands in for `Projector`: keeps the seqs of each batch it was asked to write."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def last_seq(self) -> int:
        return self.batches[-1][-1] if self.batches else 0

    async def apply(self, records: Sequence[JournalRecord]) -> int:
        self.batches.append([record.seq for record in records])
        return records[-1].seq


def record(seq: int) -> JournalRecord:
    return JournalRecord(seq=seq, ts=seq, command=orders(seq, 1)[0], events=())


async def test_records_arriving_under_load_wait_to_share_a_transaction(tmp_path: Path) -> None:
    """The projector process starts a transaction at most every `min_interval` while records keep
    coming (a transaction's fixed cost was most of its CPU per order); the first after a quiet spell
    is not delayed."""
    projector = CountingProjector()
    projection = Projection(projector, tmp_path, min_interval=2.0)  # type: ignore[arg-type]
    await projection.start(0)
    projection.feed([record(1)])
    await projection.wait_projected(1, timeout=1.0)  # at once: nothing was projected for a while
    projection.feed([record(2)])
    for _ in range(5):
        await asyncio.sleep(0)
    assert projector.batches == [[1]]  # within 2 s of the last transaction: waits for company
    projection.feed([record(3), record(4)])
    await projection.wait_projected(4, timeout=10.0)
    assert projector.batches == [[1], [2, 3, 4]]
    await projection.stop(4)


class StoredSeq:
    """Stands in for `Projector` where another process projects: the stored seq, and how often it was read."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.reads = 0

    async def last_seq(self) -> int:
        self.reads += 1
        return self.seq


async def test_a_read_barrier_queries_the_store_only_for_a_seq_not_yet_seen_projected(
    settings: Settings,
) -> None:
    """A gateway's GET of the read models waits for the projector process's seq; what was once read
    stored only grows, so a seq at or below it needs no query (one per GET cost ~10 % of a gateway's
    CPU on `GET /trades`)."""
    service = Service(settings, project=False)
    stored = StoredSeq(7)
    service._projector = stored  # type: ignore[assignment]
    await service.wait_projected(7)
    await service.wait_projected(7)
    await service.wait_projected(3)
    assert stored.reads == 1
    stored.seq = 9
    await service.wait_projected(8)  # beyond what was seen: read again
    assert (stored.reads, service.projected_seq) == (2, 9)
    with pytest.raises(TimeoutError):
        await service.wait_projected(10, timeout=0.0)
    assert stored.reads == 3
