"""Idempotent consumption: drop redelivered and re-published messages by their position.

Within one topic and key, messages arrive in publish order, and the publisher publishes in journal
order, so a message whose (seq, index) is not above the last one handled for its topic and key is a
duplicate (a redelivery after a consumer crash, or a re-publish after a publisher crash). Duplicates
are acknowledged and skipped. Pass `seen` (e.g. loaded from the consumer's own store, saved with its
side effects) to keep dedupe exact across consumer restarts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tradehall.bus.envelope import Envelope
from tradehall.bus.protocol import Delivery, EventBus, StartPosition


class Deduper:
    __slots__ = ("duplicates", "seen")

    def __init__(self, seen: dict[tuple[str, str], tuple[int, int]] | None = None) -> None:
        self.seen: dict[tuple[str, str], tuple[int, int]] = dict(seen or {})
        """(topic, key) → (seq, index) of the last message handled."""
        self.duplicates = 0

    def is_new(self, envelope: Envelope) -> bool:
        """True the first time a position is seen for its topic and key; records it."""
        stream = (envelope.topic, envelope.key)
        position = (envelope.seq, envelope.index)
        last = self.seen.get(stream)
        if last is not None and position <= last:
            self.duplicates += 1
            return False
        self.seen[stream] = position
        return True


class DedupingConsumer:
    """Subscribe, yield each message once, ack duplicates; the caller acks what it handled."""

    def __init__(
        self,
        bus: EventBus,
        pattern: str,
        consumer: str,
        start: StartPosition = StartPosition.LATEST,
        deduper: Deduper | None = None,
    ) -> None:
        self.bus = bus
        self.pattern = pattern
        self.consumer = consumer
        self.start = start
        self.deduper = deduper or Deduper()

    async def deliveries(self) -> AsyncIterator[Delivery]:
        subscription = self.bus.subscribe(self.pattern, self.consumer, self.start)
        try:
            async for delivery in subscription:
                if self.deduper.is_new(delivery.envelope):
                    yield delivery
                else:
                    await self.bus.ack(delivery)
        finally:
            aclose = getattr(subscription, "aclose", None)
            if aclose is not None:
                await aclose()
