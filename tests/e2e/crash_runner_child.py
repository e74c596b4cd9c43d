"""A runner under concurrent load, for tests/e2e/test_crash_recovery.py to kill with SIGKILL.

Prints one JSON line per acknowledged command (after its record is durable) and flushes, so every
line the parent reads is an ack the client received. Usage:
    python crash_runner_child.py DATA_DIR SEED [RETRY_FILE]
RETRY_FILE holds commands (one JSON object per line) whose acks never arrived: they are submitted
again first, as a client would after a reconnect. A "submit" line precedes each load command.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import structlog

from tradehall.domain.commands import AnyCommand, CancelOrder, CreateMarket, Deposit, OpenAccount, PlaceOrder
from tradehall.domain.enums import MarketKind, OrderSide
from tradehall.domain.events import AnyEvent
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine
from tradehall.journal import EngineFactory
from tradehall.service.runner import EngineRunner, RunnerConfig

ACCOUNTS = ["alice", "bob", "carol", "dave"]
CLIENTS = 16
_command_decoder = msgspec.json.Decoder(AnyCommand)


def events_digest(events: tuple[AnyEvent, ...]) -> str:
    return hashlib.sha256(msgspec.msgpack.encode(events)).hexdigest()


def setup_commands() -> list[AnyCommand]:
    spec = MarketSpec(symbol="BTC-USD", kind=MarketKind.SPOT, base="BTC", quote="USD",
                      tick_size=Decimal("0.01"), lot_size=Decimal("0.0001"))
    stream: list[AnyCommand] = [CreateMarket(spec=spec, correlation_id="setup-market")]
    for account in ACCOUNTS:
        stream.append(OpenAccount(account_id=account, owner=account, correlation_id=f"setup-open-{account}"))
        stream.append(Deposit(account_id=account, amount=Decimal("1000000"),
                              correlation_id=f"setup-usd-{account}"))
        stream.append(Deposit(account_id=account, amount=Decimal("100"), currency="BTC",
                              correlation_id=f"setup-btc-{account}"))
    return stream


def emit(command: AnyCommand, seq: int, events: tuple[AnyEvent, ...]) -> None:
    line = {"cid": command.correlation_id, "seq": seq, "digest": events_digest(events),
            "command": msgspec.json.encode(command).decode()}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def announce(command: AnyCommand) -> None:
    sys.stdout.write(json.dumps({"submit": command.correlation_id,
                                 "command": msgspec.json.encode(command).decode()}) + "\n")


async def client(runner: EngineRunner[Engine], name: str, rng: random.Random, order_ids: list[int]) -> None:
    n = 0
    while True:
        n += 1
        command: AnyCommand
        if order_ids and rng.random() < 0.3:
            command = CancelOrder(order_id=rng.choice(order_ids), correlation_id=f"{name}-{n}")
        else:
            side = rng.choice([OrderSide.BUY, OrderSide.SELL])
            command = PlaceOrder(
                account_id=rng.choice(ACCOUNTS), market="BTC-USD", side=side,
                quantity=Decimal(rng.randint(1, 50)) / 1000, price=Decimal(rng.randint(9_900, 10_100)) / 100,
                client_order_id=f"{name}-{n}", correlation_id=f"{name}-{n}",
            )
        announce(command)
        result = await runner.submit(command)
        for event in result.events:
            order_id = getattr(event, "order_id", None)
            if type(event).__name__ == "OrderAccepted" and isinstance(order_id, int):
                order_ids.append(order_id)
        emit(command, result.seq, result.events)


async def main() -> None:
    data_dir, seed = Path(sys.argv[1]), int(sys.argv[2])
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    config = RunnerConfig(journal_dir=data_dir / "journal", snapshot_dir=data_dir / "snapshots",
                          fsync="batch", segment_bytes=64 * 1024, snapshot_every_commands=300,
                          max_wait_ms=0.5, verify_on_recovery=True)
    runner = EngineRunner(EngineFactory(Engine, Engine.restore), config)
    await runner.start()
    if runner.last_seq == 0:
        for command in setup_commands():
            emit(command, (result := await runner.submit(command)).seq, result.events)
    if len(sys.argv) > 3:
        lines = Path(sys.argv[3]).read_text().splitlines()
        retries = [_command_decoder.decode(line) for line in lines if line]
        for result, command in zip(await runner.submit_many(retries), retries, strict=True):
            emit(command, result.seq, result.events)
    sys.stdout.write(json.dumps({"ready": runner.last_seq}) + "\n")
    sys.stdout.flush()
    rng = random.Random(seed)
    order_ids: list[int] = []
    await asyncio.gather(*(client(runner, f"s{seed}c{k}", random.Random(rng.random()), order_ids)
                           for k in range(CLIENTS)))


if __name__ == "__main__":
    asyncio.run(main())
