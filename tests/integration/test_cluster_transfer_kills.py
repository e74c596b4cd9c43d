"""A cross-shard transfer killed between its steps, in each process (real processes, SIGKILL): the
coordinator after step 1, the source shard after journaling step 1, the destination shard before and
after applying step 2. Recovery finishes every transfer; money is conserved across both shards and no
transfer happens twice. Shards are engine runners on local journals (fsync always) behind the ZeroMQ
endpoint; the coordinator's records are in a real JetStream key-value bucket."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tradehall.domain import commands as c
from tradehall.domain.enums import TransferStatus
from tradehall.engine import Engine
from tradehall.engine.ledger import SYSTEM_TRANSFERS
from tradehall.journal.recovery import recover
from tradehall.service.transport import EngineClient
from tradehall.service.wiring import engine_factory

pytestmark = pytest.mark.usefixtures("nats_available")

ROOT = Path(__file__).resolve().parents[2]
NATS_URL = "nats://127.0.0.1:4222"
START_DEADLINE = 30.0


class Cluster:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.prefix = f"th-test-{uuid.uuid4().hex[:10]}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.addresses = {name: f"ipc://{workdir}/{name}.sock" for name in ("A", "B")}

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}

    def start_shard(self, name: str, kill: str | None = None) -> None:
        socket = self.workdir / f"{name}.sock"
        socket.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "tests.integration.cluster_procs", "shard", str(self.workdir / name)]
        argv += [self.addresses[name], *(["--kill", kill] if kill else [])]
        with (self.workdir / f"{name}.log").open("a") as output:
            proc = subprocess.Popen(argv, env=self._env(), stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs[name] = proc
        deadline = time.monotonic() + START_DEADLINE
        while not socket.exists():  # the endpoint binds once the runner has recovered
            assert proc.poll() is None and time.monotonic() < deadline, f"shard {name} did not start"
            time.sleep(0.02)

    def wait_killed(self, name: str) -> None:
        assert self.procs[name].wait(timeout=START_DEADLINE) == -signal.SIGKILL

    def coordinator(self, *action: str, kill_at: str | None = None) -> tuple[int, str]:
        shards = ",".join(f"{name}={address}" for name, address in self.addresses.items())
        argv = [
            sys.executable,
            "-m",
            "tests.integration.cluster_procs",
            "coordinator",
            NATS_URL,
            self.prefix,
            shards,
        ]
        argv += [*action, *(["--kill-at", kill_at] if kill_at else [])]
        done = subprocess.run(argv, env=self._env(), capture_output=True, text=True, cwd=ROOT, timeout=120)
        lines = done.stdout.strip().splitlines()  # logs, then the outcome
        return done.returncode, lines[-1] if lines else ""

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=START_DEADLINE)

    def engine(self, name: str) -> Engine:
        data = self.workdir / name
        return recover(data / "journal", data / "snapshots", engine_factory(), open_for_append=False).engine


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path)
    try:
        yield made
    finally:
        for proc in made.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        asyncio.run(_delete_bucket(made.prefix))


async def _delete_bucket(prefix: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_key_value(f"{prefix}-transfers")
    except Exception:  # no bucket: the test failed before making one
        pass
    finally:
        await nc.close()


async def _setup(cluster: Cluster) -> None:
    for address in cluster.addresses.values():
        client = EngineClient(address, timeout=10.0)
        await client.start()
        try:
            await client.submit(c.OpenAccount(account_id="alice", owner="u1"))
            await client.submit(c.Deposit(account_id="alice", amount=Decimal("1000")))
        finally:
            await client.stop()


def test_a_transfer_killed_between_its_steps_in_each_process_conserves_money(cluster: Cluster) -> None:
    cluster.start_shard("A")
    cluster.start_shard("B")
    asyncio.run(_setup(cluster))

    # 1. the coordinator dies after step 1 (the source journaled and answered TransferOut)
    status, _ = cluster.coordinator("transfer", "t-1", "alice", "100", "A", "B", kill_at="out_applied")
    assert status == -signal.SIGKILL
    assert cluster.coordinator("recover") == (0, "t-1=completed")

    # 2. the source shard dies after journaling step 1, before answering it
    cluster.procs["A"].terminate()
    cluster.procs["A"].wait()
    cluster.start_shard("A", kill="after:TransferOut")
    status, out = cluster.coordinator("transfer", "t-2", "alice", "10", "A", "B")
    assert status == 3 and "shard A has no leader that answered" in out
    cluster.wait_killed("A")
    cluster.start_shard("A")
    assert cluster.coordinator("recover") == (0, "t-2=completed")

    # 3. the destination dies before applying step 2 ...
    cluster.procs["B"].terminate()
    cluster.procs["B"].wait()
    cluster.start_shard("B", kill="before:TransferIn")
    status, _ = cluster.coordinator("transfer", "t-3", "alice", "1", "A", "B")
    assert status == 3
    cluster.wait_killed("B")
    # ... and, restarted, dies again after applying it, before answering
    cluster.start_shard("B", kill="after:TransferIn")
    status, _ = cluster.coordinator("recover")
    cluster.wait_killed("B")
    cluster.start_shard("B")
    assert cluster.coordinator("recover") == (0, "t-3=completed")
    # the same transfer asked again (a client's retry) moves nothing more
    assert cluster.coordinator("transfer", "t-3", "alice", "1", "A", "B") == (0, "t-3=completed")
    cluster.stop_all()

    source, target = cluster.engine("A"), cluster.engine("B")
    moved = 100_00 + 10_00 + 1_00
    assert source.accounts["alice"].balances["USD"].total == 1000_00 - moved
    assert target.accounts["alice"].balances["USD"].total == 1000_00 + moved
    in_transit = sum(e.accounts[SYSTEM_TRANSFERS].balances["USD"].total for e in (source, target))
    assert in_transit == 0
    for transfer_id in ("t-1", "t-2", "t-3"):
        assert source.state.transfers[transfer_id].status is TransferStatus.COMPLETED
        assert target.state.transfers[transfer_id].status is TransferStatus.CREDITED
    for engine in (source, target):
        assert engine.ledger.totals() == {"USD": 0}
