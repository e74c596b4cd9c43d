"""`tradehall events tail`: follow a bus topic on any backend, one JSON message per line."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Literal, cast

import typer

from tradehall.bus.envelope import encode_envelope
from tradehall.bus.factory import create_bus
from tradehall.bus.protocol import BusUnavailableError, StartPosition
from tradehall.bus.topics import InvalidTopicError, validate_pattern
from tradehall.cli.common import EXIT_REFUSED, EXIT_UNREACHABLE, err_console, fail
from tradehall.service.settings import Settings

events_app = typer.Typer(name="events", help="The event bus.", no_args_is_help=True)

BACKENDS = ("inproc", "redis", "nats", "kafka")


async def tail_topic(
    settings: Settings, topic: str, consumer: str, start: StartPosition, count: int | None, prefix: str | None
) -> int:
    """Print matching messages until `count` (or forever); returns how many were printed."""
    bus = create_bus(settings, prefix=prefix)
    printed = 0
    try:
        await bus.start()
        subscription = bus.subscribe(topic, consumer, start)
        try:
            async for delivery in subscription:
                typer.echo(encode_envelope(delivery.envelope).decode())
                await bus.ack(delivery)
                printed += 1
                if count is not None and printed >= count:
                    break
        finally:
            aclose = getattr(subscription, "aclose", None)
            if aclose is not None:
                await aclose()
    finally:
        await bus.close()
    return printed


@events_app.command("tail")
def tail(
    topic: str = typer.Option(
        ..., "--topic", help="Topic or pattern: trades.BTC-PERP, orders.*, market-data.>"
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="inproc, redis, nats or kafka (default: settings)."
    ),
    from_start: bool = typer.Option(False, "--from-start", help="Start at the oldest retained message."),
    consumer: str | None = typer.Option(
        None, "--consumer", help="Durable consumer name: resume where it left off (default: a new one)."
    ),
    count: int | None = typer.Option(None, "--count", min=1, help="Stop after this many messages."),
    prefix: str | None = typer.Option(
        None, "--prefix", help="Namespace of the bus's streams and topics (default: settings bus_prefix)."
    ),
) -> None:
    """Print each message of a topic as one JSON line (the envelope of docs/bus.md)."""
    if backend is not None and backend not in BACKENDS:
        fail(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}", EXIT_REFUSED)
    try:
        validate_pattern(topic)
    except InvalidTopicError as error:
        fail(str(error), EXIT_REFUSED)
    settings = Settings()
    if backend is not None:
        settings = settings.model_copy(
            update={"bus": cast(Literal["inproc", "redis", "nats", "kafka"], backend)}
        )
    if settings.bus == "inproc":
        err_console.print("the in-process bus lives inside the server process: this tail will see nothing")
    name = consumer or f"tail-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    start = StartPosition.EARLIEST if from_start else StartPosition.LATEST
    try:
        asyncio.run(tail_topic(settings, topic, name, start, count, prefix))
    except BusUnavailableError as error:
        fail(f"bus unavailable: {error}", EXIT_UNREACHABLE)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
