"""Processes for the cross-shard transfer kill test: a shard (an engine runner on its own local journal,
serving commands over the ZeroMQ endpoint) and a transfer coordinator (records in a JetStream KV bucket).

`python -m tests.integration.cluster_procs shard DIR ADDRESS [--kill before:TransferIn|after:TransferOut]`
SIGKILLs itself on the first such command: before handing it to the runner, or once it is durable in
the journal but before answering. `... coordinator NATS PREFIX A=ADDR,B=ADDR (transfer ID ACCOUNT AMOUNT
FROM TO | recover) [--kill-at POINT]` SIGKILLs itself at a coordinator checkpoint (`transfers.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from tradehall.domain.commands import AnyCommand
from tradehall.service.cluster.routing import ShardRouter
from tradehall.service.cluster.shards import ShardMap
from tradehall.service.cluster.transfers import KvTransferStore, TransferCoordinator, TransferRecord
from tradehall.service.runner import CommandResult, EngineRunner, RunnerConfig
from tradehall.service.transport import EngineClient, EngineEndpoint
from tradehall.service.wiring import engine_factory


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def run_shard(data_dir: Path, address: str, kill: str | None) -> None:
    config = RunnerConfig(
        journal_dir=data_dir / "journal", snapshot_dir=data_dir / "snapshots", fsync="always"
    )
    runner = EngineRunner(engine_factory(), config)
    await runner.start()
    when, _, command_name = (kill or "").partition(":")

    async def submit_many(commands: Sequence[AnyCommand]) -> list[CommandResult]:
        named = any(type(command).__name__ == command_name for command in commands)
        if named and when == "before":
            _die()
        results = await runner.submit_many(commands)
        if named and when == "after":
            _die()  # durable in the journal, never answered
        return results

    endpoint = EngineEndpoint(address, submit_many, lambda: runner.durable_seq)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await endpoint.start()
    await stop.wait()
    await endpoint.stop()
    await runner.stop()


class _Shard:
    """A shard server behind the router's `ShardSubmitter` (the ZeroMQ client has its own timeout)."""

    def __init__(self, client: EngineClient) -> None:
        self._client = client

    async def submit(self, command: AnyCommand, *, timeout: float | None = None) -> CommandResult:
        return await self._client.submit(command)


async def run_coordinator(
    nats_url: str, prefix: str, shards: str, action: list[str], kill_at: str | None
) -> int:
    import nats

    addresses = dict(part.split("=", 1) for part in shards.split(","))
    shard_map = ShardMap.of({name: [f"M-{name}"] for name in addresses})
    clients = {name: EngineClient(address, timeout=1.0) for name, address in addresses.items()}
    for client in clients.values():
        await client.start()
    router = ShardRouter(
        shard_map,
        {name: _Shard(client) for name, client in clients.items()},
        request_timeout=1.0,
        retry_seconds=3.0,
    )
    nc = await nats.connect(nats_url)
    store = await KvTransferStore.open(nc.jetstream(), prefix)

    def checkpoint(point: str, _record: TransferRecord) -> None:
        if point == kill_at:
            _die()

    coordinator = TransferCoordinator(router.submit_to, store, shard_map.names, checkpoint=checkpoint)
    try:
        if action[0] == "recover":
            records = await coordinator.recover()
            print(" ".join(f"{r.transfer_id}={r.state}" for r in records), flush=True)
        else:
            transfer_id, account, amount, source, target = action[1:6]
            record = await coordinator.transfer(transfer_id, account, Decimal(amount), source, target)
            print(f"{record.transfer_id}={record.state}", flush=True)
    except Exception as error:  # the test reads the outcome from the exit status
        print(f"error {type(error).__name__}: {error}", flush=True)
        return 3
    finally:
        await nc.close()
        for client in clients.values():
            await client.stop()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    shard = sub.add_parser("shard")
    shard.add_argument("data_dir", type=Path)
    shard.add_argument("address")
    shard.add_argument("--kill")
    coordinator = sub.add_parser("coordinator")
    coordinator.add_argument("nats_url")
    coordinator.add_argument("prefix")
    coordinator.add_argument("shards")
    coordinator.add_argument("action", nargs="+")
    coordinator.add_argument("--kill-at")
    args = parser.parse_args(argv)
    if args.role == "shard":
        asyncio.run(run_shard(args.data_dir, args.address, args.kill))
        return 0
    return asyncio.run(run_coordinator(args.nats_url, args.prefix, args.shards, args.action, args.kill_at))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
