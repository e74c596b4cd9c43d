"""Real replica processes of one shard on the NATS on 127.0.0.1:4222: SIGKILL the leader under load.

The standby must serve within 5 s; every acknowledged order is in its engine, once; orders the client
retried with the same client order id exist once. (The cluster of NATS servers in network
namespaces is tests/e2e's business; this is the one-server version of the same check.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster_kit import (
    NATS_URL,
    order,
    setup_commands,
    submit_retrying,
)
from tradehall.domain.commands import Configure
from tradehall.domain.events import OrderAccepted, OrderRejected
from tradehall.engine import Engine
from tradehall.journal.recovery import EngineFactory
from tradehall.service.cluster.client import ShardClient, ShardUnavailableError
from tradehall.service.cluster.log import ShardLog, restore_state
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.protocol import ReplicaStatus
from tradehall.service.cluster.status import gather_status
from tradehall.service.runner import CommandResult, RunnerError

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(180)]

LEASE_TTL = "1.0"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def spawn(processes: list[subprocess.Popen[bytes]], prefix: str, replica_id: str, logs: Path) -> None:
    argv = [sys.executable, "-m", "tradehall.service.cluster.replica", "--shard", "A", "--prefix", prefix]
    argv += ["--replica-id", replica_id, "--lease-ttl", LEASE_TTL, "--nats", NATS_URL]
    log_file = (logs / f"{replica_id}.log").open("wb")
    processes.append(subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=dict(os.environ)))
    log_file.close()


async def statuses_until(nc: Any, names: ShardNames, check: Any, within: float = 60.0) -> list[ReplicaStatus]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        statuses = await gather_status(nc, names, timeout=0.3)
        if check(statuses):
            return statuses
        assert loop.time() < deadline, f"replicas never reached the expected state: {statuses}"


async def test_sigkill_of_the_leader_process_under_load_the_standby_serves_within_5_seconds(
    nc: Any, prefix: str, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    names = ShardNames("A", prefix)
    spawn(processes, prefix, "r1", tmp_path)
    await statuses_until(nc, names, lambda s: [x.role for x in s] == ["leader"])
    spawn(processes, prefix, "r2", tmp_path)
    await statuses_until(nc, names, lambda s: sorted(x.role for x in s) == ["leader", "standby"])
    client = ShardClient(nc, names, timeout=1.0)
    # thousands of alice's orders rest: above the default cap of 1,000 open orders the later ones would
    # be refused (an answer, but not an order), so the cap is raised first
    for command in [Configure(max_open_orders=1_000_000), *setup_commands()]:
        await client.submit(command)

    acknowledged: dict[str, CommandResult] = {}
    sent: list[str] = []
    stop_load = asyncio.Event()

    async def load(worker: int) -> None:
        i = worker
        while not stop_load.is_set():
            command = order(i)
            sent.append(command.client_order_id or "")
            try:
                acknowledged[command.client_order_id or ""] = await client.submit(command)
            except ShardUnavailableError:
                await asyncio.sleep(0.01)  # as a gateway does: no leader yet, do not spin on it
            except RunnerError:
                pass
            i += 4

    workers = [asyncio.create_task(load(w)) for w in range(4)]
    started = time.monotonic()
    while len(acknowledged) < 100:
        assert time.monotonic() - started < 60, "the leader did not take the load"
        await asyncio.sleep(0.01)
    statuses = await gather_status(nc, names, timeout=0.3)
    leader = next(s for s in statuses if s.role == "leader")
    killed_at = time.monotonic()
    os.kill(leader.pid, signal.SIGKILL)
    count_at_kill = len(acknowledged)
    while len(acknowledged) <= count_at_kill:  # the first answer after the kill comes from the new leader
        assert time.monotonic() - killed_at < 30, "no answer after the kill"
        await asyncio.sleep(0.005)
    served_after = time.monotonic() - killed_at
    await asyncio.sleep(0.3)  # a little load on the new leader too
    stop_load.set()
    await asyncio.gather(*workers)
    assert served_after < 5.0, f"the standby served {served_after:.2f} s after the SIGKILL"

    survivors = await statuses_until(nc, names, lambda s: [x.role for x in s] == ["leader"])
    assert survivors[0].replica_id != leader.replica_id
    assert survivors[0].takeovers == 1
    # every order sent, acknowledged or not, is retried with its client order id until answered
    for coid in sent:
        i = int(coid[1:])
        acknowledged.setdefault(coid, await submit_retrying(client, order(i)))

    state = await restore_state(ShardLog(nc.jetstream(), names), None, EngineFactory(Engine, Engine.restore))
    engine = state.engine
    order_ids = set()
    for coid, result in acknowledged.items():
        assert not [e for e in result.events if isinstance(e, OrderRejected)], f"{coid}: {result.events}"
        order_id = engine.order_id_for("alice", coid)
        assert order_id is not None, f"{coid} was acknowledged but is not in the log"
        accepted = [e for e in result.events if isinstance(e, OrderAccepted)]
        if accepted:  # the first answer: the very order the log holds
            assert accepted[0].order_id == order_id
        order_ids.add(order_id)
    assert len(order_ids) == len(set(sent))  # none applied twice: one order per client order id
    assert len(engine.orders) == len(order_ids)
    final = await gather_status(nc, names, timeout=0.3, state_hash=True)
    assert final[0].state_hash == engine.state_hash()
