"""The journal's write + fsync runs in a dedicated thread: nothing queued in the loop's default
executor (argon2, file reads, anything using `asyncio.to_thread`) can delay an acknowledgement."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

from tradehall.domain.commands import Deposit
from tradehall.journal import EngineFactory
from tradehall.journal.testing import ToyEngine
from tradehall.service.runner import JOURNAL_IO_THREAD, SNAPSHOT_IO_THREAD, EngineRunner, RunnerConfig

FACTORY = EngineFactory(ToyEngine, ToyEngine.restore)


def deposit(n: int) -> Deposit:
    return Deposit(account_id="acct-1", amount=Decimal(n), correlation_id=f"corr-{n}")


def runner_config(tmp_path: Path, **overrides: object) -> RunnerConfig:
    values: dict[str, object] = {
        "journal_dir": tmp_path / "journal",
        "snapshot_dir": tmp_path / "snapshots",
        "fsync": "batch",
        "max_wait_ms": 0.0,
    }
    values.update(overrides)
    return RunnerConfig(**values)  # type: ignore[arg-type]


async def test_fsync_and_snapshots_run_in_the_journals_own_threads(tmp_path: Path) -> None:
    runner = EngineRunner(FACTORY, runner_config(tmp_path, snapshot_every_commands=2))
    await runner.start()
    sync_threads: list[str] = []
    snapshot_threads: list[str] = []
    real_sync = runner.journal.sync
    real_persist = runner._persist_snapshot

    def recording_sync() -> None:
        sync_threads.append(threading.current_thread().name)
        real_sync()

    def recording_persist(seq: int, data: bytes) -> None:
        snapshot_threads.append(threading.current_thread().name)
        real_persist(seq, data)

    runner.journal.sync = recording_sync  # type: ignore[method-assign]
    runner._persist_snapshot = recording_persist  # type: ignore[method-assign]
    try:
        for n in range(1, 4):
            await runner.submit(deposit(n))
    finally:
        await runner.stop()
    assert sync_threads, "no fsync was observed"
    assert all(name.startswith(JOURNAL_IO_THREAD) for name in sync_threads), sync_threads
    assert snapshot_threads, "no snapshot was written"
    assert all(name.startswith(SNAPSHOT_IO_THREAD) for name in snapshot_threads), snapshot_threads


async def test_acks_do_not_wait_for_a_saturated_default_executor(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    default = ThreadPoolExecutor(max_workers=1, thread_name_prefix="default-under-test")
    loop.set_default_executor(default)
    blocker = threading.Event()
    runner = EngineRunner(FACTORY, runner_config(tmp_path))
    await runner.start()
    # the default executor's only thread is busy, and more work waits behind it: what the failed
    # logins did to the journal's fsync before it had a thread of its own
    occupied = [loop.run_in_executor(None, blocker.wait) for _ in range(5)]
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(runner.submit(deposit(n)) for n in range(1, 21))), timeout=20
        )
        assert [result.seq for result in results] == list(range(1, 21))
        assert runner.durable_seq == 20
        assert all(not future.done() for future in occupied)
    finally:
        blocker.set()
        await asyncio.gather(*occupied)
        await runner.stop()
        default.shutdown(wait=True)
