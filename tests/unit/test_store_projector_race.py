"""The projector's crash recovery with its threads forced into the orders that once failed on a loaded
machine (`SequenceGapError: expected seq 190, got 199` from the batching-and-crashes property).

`run` prepares batch N+1 on one thread while batch N is written on another. The hooks below hold one
thread until the other has reached a given point, so each order is reproduced every time, not by
luck: a write that fails while the next batch is being prepared, a prepare that fails while a write
is still committing, and a mirror reload that overlaps another writer's commit.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.unit.test_store_projector_properties import RECORDS, dump, feed, reference
from tradehall.store import ProjectionError, Projector, ProjectorConfig, create_store_engine, upgrade

BATCH = 10
WAIT = 30.0
"""Upper bound for a hook waiting on the other thread: a bug shows as a failure, not a hang."""


def _engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'run.db'}"
    upgrade(url)
    return create_store_engine(url)


async def _finish(engine: Engine) -> None:
    """A fresh projector resumes after what the database holds and projects the rest."""
    projector = Projector(engine, ProjectorConfig(max_batch_records=BATCH))
    try:
        start = await projector.last_seq()
        await projector.run(feed([r for r in RECORDS if r.seq > start]))
    finally:
        projector.close()


async def test_a_write_failing_while_the_next_batch_is_prepared_is_reported_and_loses_nothing(
    tmp_path: Path,
) -> None:
    # The order of the failure seen on a loaded machine: batch 3's write fails and the failure reaches
    # the event loop before batch 4's prepare looks at the mirror. The mirror was thrown away then and
    # reloaded from the database (at batch 2's end) while batch 4 follows batch 3: SequenceGapError,
    # which hid the real error and stopped the restart loop of its caller.
    writes = prepares = 0
    write_failed = threading.Event()

    def fault(point: str) -> None:
        nonlocal writes, prepares
        if point == "before_commit":
            writes += 1
            if writes == 3:
                raise RuntimeError("crash in batch 3")
        elif point == "write_failed":
            write_failed.set()
        elif point == "before_prepare":
            prepares += 1
            if prepares == 4 and not write_failed.wait(WAIT):
                raise AssertionError("batch 3's write never failed")

    engine = _engine(tmp_path)
    projector = Projector(engine, ProjectorConfig(max_batch_records=BATCH), fault=fault)
    try:
        with pytest.raises(RuntimeError, match="crash in batch 3"):
            await projector.run(feed(RECORDS))
    finally:
        projector.close()
    assert write_failed.is_set() and prepares == 4
    resumed = Projector(engine, ProjectorConfig())
    assert await resumed.last_seq() == RECORDS[2 * BATCH - 1].seq  # batches 1 and 2, nothing of 3
    resumed.close()
    await _finish(engine)
    assert dump(engine) == await reference(tmp_path)
    engine.dispose()


async def test_run_never_returns_while_its_last_write_is_still_committing(tmp_path: Path) -> None:
    # Batch 3's prepare fails while batch 2 is being written. `run` used to cancel the asyncio task of
    # the write and return at once, while the writer thread went on and committed afterwards: a
    # caller that restarted then read `last_seq` before that commit and raced it.
    writes = prepares = 0
    release = threading.Event()
    writing = threading.Event()
    committed = threading.Event()

    def fault(point: str) -> None:
        nonlocal writes, prepares
        if point == "before_commit":
            writes += 1
            if writes == 2:
                writing.set()
                release.wait(2.0)  # hold the commit until the test has seen `run` return (bounded)
        elif point == "after_commit":
            if writes == 2:
                committed.set()
        elif point == "before_prepare":
            prepares += 1
            if prepares == 3:
                if not writing.wait(WAIT):  # batch 2's transaction is open in the writer thread
                    raise AssertionError("batch 2 was never written")
                raise ProjectionError("bad data in batch 3")

    engine = _engine(tmp_path)
    projector = Projector(engine, ProjectorConfig(max_batch_records=BATCH), fault=fault)
    try:
        with pytest.raises(ProjectionError, match="bad data in batch 3"):
            await projector.run(feed(RECORDS))
        write_done_when_run_returned = committed.is_set()
        release.set()
    finally:
        release.set()
        projector.close()
    assert write_done_when_run_returned, "run() returned while batch 2 was still being written"
    resumed = Projector(engine, ProjectorConfig())
    assert await resumed.last_seq() == RECORDS[2 * BATCH - 1].seq
    resumed.close()
    await _finish(engine)
    assert dump(engine) == await reference(tmp_path)
    engine.dispose()


def test_the_mirror_is_reloaded_from_one_snapshot_even_while_another_writer_commits(tmp_path: Path) -> None:
    # The mirror is read table by table. Another writer committing between two of those reads (a
    # crashed projector's writer thread, say) used to give a mirror whose markets came from before
    # that commit and whose balances, positions, orders and seq came from after it.
    engine = _engine(tmp_path)
    first, second = RECORDS[:120], RECORDS[120:150]
    earlier = Projector(engine, ProjectorConfig())
    asyncio.run(earlier.apply(first))
    earlier.close()
    other = Projector(engine, ProjectorConfig())
    interleaved = False

    def commit_meanwhile(point: str) -> None:
        nonlocal interleaved
        if point == "load_mirror" and not interleaved:
            interleaved = True
            asyncio.run(other.apply(second))  # another writer commits between two reads of the reload

    reloading = Projector(engine, ProjectorConfig(), fault=commit_meanwhile)
    plain = Projector(engine, ProjectorConfig())
    try:
        before, seq_before = plain._load_mirror()
        loaded, seq_loaded = reloading._load_mirror()  # on this thread: the hook runs the other writer
        after, seq_after = plain._load_mirror()
    finally:
        for projector in (reloading, other, plain):
            projector.close()
    assert interleaved
    assert (seq_before, seq_after) == (first[-1].seq, second[-1].seq)
    assert before.balances != after.balances  # the concurrent commit changed what the mirror holds
    assert seq_loaded == seq_before
    assert loaded.balances == before.balances
    assert loaded.positions == before.positions
    assert loaded.open_orders == before.open_orders
    engine.dispose()
