"""Redis Streams backend: a stream per topic, consumer groups, XAUTOCLAIM of stale pending entries.

Keys: `<prefix>:<topic>` (a stream, trimmed with `XADD MAXLEN ~ maxlen`), `<prefix>:topics` (a set of
topics, so a wildcard subscription can find its streams) and `<prefix>:groups` (when each durable
consumer was first seen, so a `latest` consumer also gets topics created after it started).
A batch is appended by one Lua script (all or nothing, in order). A durable consumer is a consumer
group; each process reads as `<consumer>:<instance>` within it.
On (re)subscribe it first re-reads its own unacknowledged entries, then claims entries other
instances left pending longer than `claim_idle_ms`, then reads new ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from tradehall.bus.envelope import Envelope, decode_envelope, encode_envelope
from tradehall.bus.protocol import BusUnavailableError, Delivery, StartPosition
from tradehall.bus.topics import topic_matches, validate_pattern

log = structlog.get_logger(__name__)

_UNAVAILABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)

_APPEND_SCRIPT = """
for i = 1, #KEYS do
    redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[i + 1])
end
return #KEYS
"""
"""A whole batch in one script call: all or nothing, in order, and a tenth of a pipeline's client CPU."""


@dataclass(frozen=True, slots=True)
class _Token:
    stream: bytes
    group: str
    entry_id: bytes


class RedisStreamsBus:
    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "tradehall",
        maxlen: int = 1_000_000,
        instance: str = "main",
        batch: int = 500,
        block_ms: int = 500,
        claim_idle_ms: int = 30_000,
        discover_interval: float = 1.0,
        socket_timeout: float = 5.0,
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._maxlen = maxlen
        self._instance = instance
        self._batch = batch
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._discover_interval = discover_interval
        self._socket_timeout = socket_timeout
        self._redis: Redis | None = None
        self._known_topics: set[str] = set()
        self._append: AsyncScript | None = None

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = Redis.from_url(
                self._url,
                socket_connect_timeout=min(self._socket_timeout, 2.0),
                socket_timeout=self._socket_timeout + self._block_ms / 1000,
            )
        return self._redis

    def stream_key(self, topic: str) -> str:
        return f"{self._prefix}:{topic}"

    async def start(self) -> None:
        try:
            await self.redis.ping()
        except _UNAVAILABLE as exc:
            raise BusUnavailableError(f"redis at {self._url}: {exc}") from exc

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
            self._append = None

    async def purge(self) -> int:
        """Delete every key of this prefix (tests and teardown)."""
        keys = [key async for key in self.redis.scan_iter(match=f"{self._prefix}:*", count=1000)]
        if keys:
            await self.redis.delete(*keys)
        self._known_topics.clear()
        return len(keys)

    async def publish(self, messages: Sequence[Envelope]) -> None:
        if not messages:
            return
        new_topics = {m.topic for m in messages} - self._known_topics
        keys = [self.stream_key(envelope.topic) for envelope in messages]
        arguments: list[bytes | int] = [self._maxlen]
        arguments.extend(encode_envelope(envelope) for envelope in messages)
        try:
            if new_topics:
                await self.redis.sadd(f"{self._prefix}:topics", *new_topics)
            if self._append is None:
                self._append = self.redis.register_script(_APPEND_SCRIPT)
            await self._append(keys=keys, args=arguments)
        except _UNAVAILABLE as exc:
            raise BusUnavailableError(f"redis at {self._url}: {exc}") from exc
        self._known_topics |= new_topics

    async def _group_birth_ms(self, consumer: str) -> int:
        groups = f"{self._prefix}:groups"
        await self.redis.hsetnx(groups, consumer, str(int(time.time() * 1000)))
        birth = await self.redis.hget(groups, consumer)
        return int(birth or 0)

    async def _discover(
        self, pattern: str, consumer: str, start: StartPosition, birth_ms: int, streams: dict[bytes, bytes]
    ) -> None:
        """Join the group on every stream of a matching topic not joined yet."""
        topics = await self.redis.smembers(f"{self._prefix}:topics")
        for raw in topics:
            topic = raw.decode() if isinstance(raw, bytes) else str(raw)
            key = self.stream_key(topic).encode()
            if key in streams or not topic_matches(pattern, topic):
                continue
            first_id: str = "0" if start is StartPosition.EARLIEST else f"{birth_ms}-0"
            try:
                await self.redis.xgroup_create(key, consumer, id=first_id, mkstream=True)
            except redis_errors.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            streams[key] = b"0"  # own pending entries first, then '>'

    async def subscribe(
        self, pattern: str, consumer: str, start: StartPosition = StartPosition.LATEST
    ) -> AsyncIterator[Delivery]:
        validate_pattern(pattern)
        name = f"{consumer}:{self._instance}"
        streams: dict[bytes, bytes] = {}
        birth_ms: int | None = None
        discovered_at = 0.0
        claimed_at = 0.0
        while True:
            try:
                if birth_ms is None:
                    birth_ms = await self._group_birth_ms(consumer)
                now = time.monotonic()
                if now - discovered_at >= self._discover_interval:
                    await self._discover(pattern, consumer, start, birth_ms, streams)
                    discovered_at = now
                if not streams:
                    await asyncio.sleep(self._discover_interval)
                    continue
                if now - claimed_at >= self._claim_idle_ms / 2000:
                    claimed_at = now
                    for key in list(streams):
                        for delivery in await self._claim(key, consumer, name):
                            yield delivery
                pending_streams: dict[Any, Any] = {k: v for k, v in streams.items() if v != b">"}
                if pending_streams:
                    reply = await self.redis.xreadgroup(consumer, name, pending_streams, count=self._batch)
                    for key, entries in _stream_entries(reply):
                        if not entries:
                            streams[key] = b">"
                            continue
                        streams[key] = entries[-1][0]
                        for entry_id, fields in entries:
                            pending = self._delivery(key, consumer, entry_id, fields, redelivered=True)
                            if pending is None:
                                await self.redis.xack(key, consumer, entry_id)
                            else:
                                yield pending
                    continue
                reading: dict[Any, Any] = dict(streams)
                reply = await self.redis.xreadgroup(
                    consumer, name, reading, count=self._batch, block=self._block_ms
                )
                for key, entries in _stream_entries(reply):
                    for entry_id, fields in entries:
                        new = self._delivery(key, consumer, entry_id, fields, redelivered=False)
                        if new is not None:
                            yield new
            except _UNAVAILABLE as exc:
                log.warning("bus_redis_read_failed", consumer=consumer, error=repr(exc))
                await asyncio.sleep(0.5)
                for key in streams:
                    streams[key] = b"0"

    async def _claim(self, key: bytes, group: str, name: str) -> list[Delivery]:
        deliveries: list[Delivery] = []
        cursor: bytes | str = "0-0"
        while True:
            reply: list[Any] = await self.redis.xautoclaim(
                key, group, name, min_idle_time=self._claim_idle_ms, start_id=cursor, count=self._batch
            )
            cursor, entries = reply[0], reply[1]
            for entry_id, fields in entries:
                delivery = self._delivery(key, group, entry_id, fields, redelivered=True)
                if delivery is None:
                    await self.redis.xack(key, group, entry_id)
                else:
                    deliveries.append(delivery)
            if cursor in (b"0-0", "0-0"):
                return deliveries

    @staticmethod
    def _delivery(
        key: bytes, group: str, entry_id: bytes, fields: dict[bytes, bytes] | None, redelivered: bool
    ) -> Delivery | None:
        """None for an entry trimmed away while pending: nothing left to deliver."""
        if not fields or b"m" not in fields:
            return None
        return Delivery(decode_envelope(fields[b"m"]), _Token(key, group, entry_id), redelivered=redelivered)

    async def ack(self, *deliveries: Delivery) -> None:
        if not deliveries:
            return
        by_stream: dict[tuple[bytes, str], list[bytes]] = {}
        for delivery in deliveries:
            token = delivery.token
            if not isinstance(token, _Token):
                raise TypeError("not a delivery of the redis bus")
            by_stream.setdefault((token.stream, token.group), []).append(token.entry_id)
        pipe = self.redis.pipeline(transaction=False)
        for (stream, group), ids in by_stream.items():
            pipe.xack(stream, group, *ids)
        try:
            await pipe.execute()
        except _UNAVAILABLE as exc:
            raise BusUnavailableError(f"redis at {self._url}: {exc}") from exc


def _stream_entries(reply: Any) -> list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]]:
    """XREADGROUP's reply as (stream key, entries): RESP2 gives a list, RESP3 a dict."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [
            (key, entries[0] if entries and isinstance(entries[0], list) else entries)
            for key, entries in reply.items()
        ]
    return [(key, entries) for key, entries in reply]
