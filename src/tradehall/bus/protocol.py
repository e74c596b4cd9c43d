"""The `EventBus` protocol every backend implements.

Delivery is at least once: a message is delivered again until it is acknowledged, and after a
publisher crash it may be published twice (same `Envelope.id`). Consumers dedupe by id/seq
(`tradehall.bus.consumer.DedupingConsumer`). Messages with the same topic and key arrive in
publish order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from tradehall.bus.envelope import Envelope


class StartPosition(StrEnum):
    """Where a durable consumer seen for the first time starts; afterwards it resumes from its last ack."""

    EARLIEST = "earliest"
    LATEST = "latest"


class BusUnavailableError(Exception):
    """The broker did not take the batch (down, unreachable, timed out); the publisher retries."""


@dataclass(slots=True, eq=False)
class Delivery:
    """One delivered message; `token` is the backend's handle for acknowledging it."""

    envelope: Envelope
    token: object = field(repr=False)
    redelivered: bool = False


@runtime_checkable
class EventBus(Protocol):
    name: str

    async def start(self) -> None:
        """Connect and create what the backend needs (streams, topics); idempotent."""

    async def close(self) -> None: ...

    async def publish(self, messages: Sequence[Envelope]) -> None:
        """Publish a batch in order; return once the broker holds it all, else raise `BusUnavailableError`."""

    def subscribe(
        self, pattern: str, consumer: str, start: StartPosition = StartPosition.LATEST
    ) -> AsyncIterator[Delivery]:
        """Deliveries of topics matching `pattern` for the durable consumer `consumer`.

        Consumers with the same name share the work and the acknowledged position.
        Close the iterator (`aclose`) to stop; unacknowledged messages are delivered again later.
        """
        ...

    async def ack(self, *deliveries: Delivery) -> None: ...
