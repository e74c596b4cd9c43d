"""The in-process bus: the default, for the demo, tests and single-process deployments.

Each topic is an in-memory log trimmed to `maxlen` entries; a durable consumer is a group with a
committed offset per topic (contiguous acks), so re-subscribing resumes after the last ack.
`available = False` simulates a broker outage for tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from tradehall.bus.envelope import Envelope
from tradehall.bus.protocol import BusUnavailableError, Delivery, StartPosition
from tradehall.bus.topics import topic_matches, validate_pattern


@dataclass(slots=True)
class _Log:
    entries: list[Envelope] = field(default_factory=list)
    base: int = 0

    @property
    def end(self) -> int:
        return self.base + len(self.entries)


@dataclass(slots=True)
class _Group:
    start: StartPosition
    committed: dict[str, int] = field(default_factory=dict)
    acked_ahead: dict[str, set[int]] = field(default_factory=dict)
    cursor: dict[str, int] = field(default_factory=dict)
    subscribers: int = 0


@dataclass(frozen=True, slots=True)
class _Token:
    consumer: str
    topic: str
    offset: int


class InProcessBus:
    name = "inproc"

    def __init__(self, maxlen: int = 1_000_000) -> None:
        self.available = True
        self._maxlen = maxlen
        self._logs: dict[str, _Log] = {}
        self._groups: dict[str, _Group] = {}
        self._published = asyncio.Event()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def topics(self) -> list[str]:
        return sorted(self._logs)

    def messages(self, topic: str) -> list[Envelope]:
        log = self._logs.get(topic)
        return list(log.entries) if log else []

    async def publish(self, messages: Sequence[Envelope]) -> None:
        if not self.available:
            raise BusUnavailableError("in-process bus is marked unavailable")
        for envelope in messages:
            log = self._logs.get(envelope.topic)
            if log is None:
                log = self._logs[envelope.topic] = _Log()
            log.entries.append(envelope)
            overflow = len(log.entries) - self._maxlen
            if overflow > 0:
                del log.entries[:overflow]
                log.base += overflow
        self._published.set()
        self._published = asyncio.Event()

    def _group(self, consumer: str, start: StartPosition) -> _Group:
        group = self._groups.get(consumer)
        if group is None:
            group = self._groups[consumer] = _Group(start=start)
            for topic, log in self._logs.items():
                group.committed[topic] = log.base if start is StartPosition.EARLIEST else log.end
        return group

    def _committed(self, group: _Group, topic: str) -> int:
        log = self._logs[topic]
        # A topic born after the group started: everything in it is new to the group.
        committed = max(group.committed.setdefault(topic, log.base), log.base)
        group.committed[topic] = committed
        return committed

    async def subscribe(
        self, pattern: str, consumer: str, start: StartPosition = StartPosition.LATEST
    ) -> AsyncIterator[Delivery]:
        validate_pattern(pattern)
        group = self._group(consumer, start)
        if group.subscribers == 0:
            group.cursor.clear()  # redeliver whatever was not acknowledged
        group.subscribers += 1
        try:
            while True:
                waiter = self._published
                delivered = False
                for topic in [t for t in self._logs if topic_matches(pattern, t)]:
                    log = self._logs[topic]
                    committed = self._committed(group, topic)
                    offset = max(group.cursor.get(topic, committed), log.base)
                    while offset < log.end:
                        envelope = log.entries[offset - log.base]
                        group.cursor[topic] = offset + 1
                        delivered = True
                        yield Delivery(envelope, _Token(consumer, topic, offset), redelivered=False)
                        offset = max(group.cursor.get(topic, offset + 1), log.base)
                if not delivered:
                    await waiter.wait()
        finally:
            group.subscribers -= 1

    async def ack(self, *deliveries: Delivery) -> None:
        for delivery in deliveries:
            token = delivery.token
            if not isinstance(token, _Token):
                raise TypeError("not a delivery of the in-process bus")
            group = self._groups[token.consumer]
            committed = group.committed.get(token.topic, 0)
            if token.offset < committed:
                continue
            ahead = group.acked_ahead.setdefault(token.topic, set())
            ahead.add(token.offset)
            while committed in ahead:
                ahead.discard(committed)
                committed += 1
            group.committed[token.topic] = committed
