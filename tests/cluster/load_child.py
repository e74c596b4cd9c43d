"""A gateway under load for the cluster tests: places orders on one shard through the gateway's router.

Run inside a namespace (`ip netns exec`). The gateway side is the real one: a `ShardRouter` over the
shard map `<shard>=BTC-USD` with a `ShardClient`, which resends the same command (same correlation id,
same client order id) while the shard has no leader. Sets the shard up (a market, four funded
accounts), then `CLIENTS` concurrent clients each place orders with a client order id; when the router
gives up (`ClusterUnavailableError`, the gateway's 503) the client sends the same order again as a new
request (same client order id, correlation id `<cid>-r<n>`), until some leader acknowledges it. Prints
one JSON line per request and per acknowledgement (flushed: every `ack` line is an ack the client got):
    {"submit": corr_id, "coid": ..., "t": monotonic}
    {"ack": corr_id, "coid": ..., "seq": n, "digest": sha256, "accepted": bool, "code": "",
     "t_first": monotonic of the first attempt, "t": monotonic of the ack, "attempts": n}
Exits at once on SIGTERM (in-flight orders stay unacknowledged, as for a client that went away; no
cancellation that a retry loop could swallow, so nothing is sent after the signal).
Usage: python load_child.py NATS_URLS PREFIX SHARD SEED CLIENTS
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path

import msgspec
import structlog

from tradehall.domain.commands import PlaceOrder
from tradehall.domain.enums import OrderSide
from tradehall.domain.errors import TradehallError
from tradehall.domain.events import OrderAccepted
from tradehall.service.cluster.client import ShardClient
from tradehall.service.cluster.connection import connect
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.routing import ClusterUnavailableError, ShardRouter
from tradehall.service.cluster.shards import ShardMap
from tradehall.service.runner import RunnerError

# the crash-recovery child's accounts, set-up and event digests (one load set-up for both children)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.e2e.crash_runner_child import ACCOUNTS, events_digest, setup_commands


def out(line: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def submit_until_acked(shard: ShardRouter, command: PlaceOrder) -> None:
    """Sends `command` until a leader answers; a retry keeps the client order id (exactly once)."""
    first = time.monotonic()
    attempt = 0
    while True:
        corr = command.correlation_id if attempt == 0 else f"{command.correlation_id}-r{attempt}"
        sent = msgspec.structs.replace(command, correlation_id=corr)
        out({"submit": corr, "coid": command.client_order_id, "t": time.monotonic()})
        attempt += 1
        try:
            result = await shard.submit(sent)
        except (ClusterUnavailableError, RunnerError):
            await asyncio.sleep(0.05)
            continue
        except TradehallError as error:
            out({"ack": corr, "coid": command.client_order_id, "seq": 0, "digest": "", "accepted": False,
                 "code": str(error.code), "t_first": first, "t": time.monotonic(), "attempts": attempt})
            return
        accepted = any(isinstance(event, OrderAccepted) for event in result.events)
        out({"ack": corr, "coid": command.client_order_id, "seq": result.seq,
             "digest": events_digest(result.events), "accepted": accepted, "code": "",
             "t_first": first, "t": time.monotonic(), "attempts": attempt})
        return


async def client(shard: ShardRouter, name: str, rng: random.Random) -> None:
    n = 0
    while True:
        n += 1
        command = PlaceOrder(
            account_id=rng.choice(ACCOUNTS), market="BTC-USD",
            side=rng.choice([OrderSide.BUY, OrderSide.SELL]),
            quantity=Decimal(rng.randint(1, 50)) / 1000, price=Decimal(rng.randint(9_900, 10_100)) / 100,
            client_order_id=f"{name}-{n}", correlation_id=f"{name}-{n}",
        )
        await submit_until_acked(shard, command)


async def main(servers: list[str], prefix: str, shard_name: str, seed: int, clients: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    nc = await connect(",".join(servers), "load")  # the gateway's connection (fails over between servers)
    shard = ShardRouter(
        ShardMap.parse(f"{shard_name}=BTC-USD"),
        {shard_name: ShardClient(nc, ShardNames(shard_name, prefix), timeout=2.0)},
        request_timeout=2.0,
        retry_seconds=10.0,
    )
    for command in setup_commands():
        while True:
            try:
                result = await shard.submit(command)
                break
            except ClusterUnavailableError:
                await asyncio.sleep(0.1)
        out({"setup": command.correlation_id, "seq": result.seq})
    out({"ready": True})
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, leave)
    rng = random.Random(seed)
    names = [f"s{seed}c{k}" for k in range(clients)]
    await asyncio.gather(*(client(shard, name, random.Random(rng.random())) for name in names))


def leave() -> None:
    """Every line printed so far is whole (they are written between loop turns): flush and go."""
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    urls, prefix_arg, shard_arg, seed_arg, clients_arg = sys.argv[1:6]
    asyncio.run(main(urls.split(","), prefix_arg, shard_arg, int(seed_arg), int(clients_arg)))
