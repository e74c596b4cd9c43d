"""Helpers for tests of shards on NATS JetStream: unique names, clean-up, a market and its orders."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from decimal import Decimal
from typing import Any

import nats.js.errors

from tradehall.domain import commands as c
from tradehall.domain.enums import MarketKind, OrderSide
from tradehall.domain.market import MarketSpec
from tradehall.service.cluster.client import ShardClient, ShardUnavailableError
from tradehall.service.cluster.names import ShardNames
from tradehall.service.runner import CommandResult

NATS_URL = "nats://127.0.0.1:4222"
MARKET = "BTC-USD"
SPEC = MarketSpec(
    symbol=MARKET,
    kind=MarketKind.SPOT,
    base="BTC",
    quote="USD",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("0.0001"),
)


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def delete_prefix(js: Any, prefix: str, shards: tuple[str, ...] = ("A",)) -> None:
    """Removes every stream, bucket and object store a test's replicas made under `prefix`."""
    for shard in shards:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(ShardNames(shard, prefix).stream)
    names = ShardNames(shards[0], prefix)
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_key_value(names.lease_bucket)
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_object_store(names.snapshot_bucket)


def setup_commands(accounts: tuple[str, ...] = ("alice", "bob")) -> list[c.AnyCommand]:
    commands: list[c.AnyCommand] = [c.CreateMarket(spec=SPEC)]
    for account in accounts:
        commands.append(c.OpenAccount(account_id=account, owner=account))
        commands.append(c.Deposit(account_id=account, amount=Decimal("1000000")))
    return commands


def order(i: int, account: str = "alice", *, coid: str | None = None) -> c.PlaceOrder:
    """A resting buy (prices below any sell): each one opens exactly one order."""
    return c.PlaceOrder(
        account_id=account,
        market=MARKET,
        side=OrderSide.BUY,
        quantity=Decimal("0.01"),
        price=Decimal(100 + i % 50),
        client_order_id=coid if coid is not None else f"o{i}",
    )


async def submit_retrying(
    client: ShardClient, command: c.AnyCommand, *, within: float = 15.0
) -> CommandResult:
    """What a gateway does across a takeover: the same command again until a leader answers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            return await client.submit(command, timeout=1.0)
        except ShardUnavailableError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
