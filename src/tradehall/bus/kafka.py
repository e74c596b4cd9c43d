"""Kafka backend (aiokafka): an idempotent producer keyed by market, consumer groups, manual commits.

Kafka topics are one per family: `<prefix>.orders`, `<prefix>.trades`, `<prefix>.accounts`,
`<prefix>.markets`, `<prefix>.market-data`. The message key is the route key (the market, or the
account on `accounts`), so one market's events stay ordered in one partition; the bus topic
(`orders.BTC-PERP`) travels in the `topic` header and a subscription filters on it.
A durable consumer is a consumer group. Acknowledging commits the offset after the message:
as in Kafka, that acknowledges everything before it in its partition too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from tradehall.bus.envelope import Envelope, decode_envelope, encode_envelope
from tradehall.bus.protocol import BusUnavailableError, Delivery, StartPosition
from tradehall.bus.topics import FAMILIES, families_of_pattern, family_of, topic_matches, validate_pattern

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Token:
    consumer: Any
    partition: TopicPartition
    offset: int


class KafkaBus:
    name = "kafka"

    def __init__(
        self,
        bootstrap: str = "127.0.0.1:9092",
        *,
        prefix: str = "tradehall",
        partitions: int = 3,
        publish_timeout: float = 10.0,
        batch: int = 1_000,
        linger_ms: int = 2,
    ) -> None:
        self._bootstrap = bootstrap
        self._prefix = prefix
        self._partitions = partitions
        self._publish_timeout = publish_timeout
        self._batch = batch
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._topics_ready = False

    def kafka_topic(self, family: str) -> str:
        return f"{self._prefix}.{family}"

    async def start(self) -> None:
        if not self._topics_ready:
            await self._ensure_topics()
            self._topics_ready = True
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                enable_idempotence=True,
                acks="all",
                linger_ms=self._linger_ms,
                max_batch_size=256 * 1024,
                request_timeout_ms=int(self._publish_timeout * 1000),
            )
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise BusUnavailableError(f"kafka at {self._bootstrap}: {exc!r}") from exc
            self._producer = producer

    async def _admin(self) -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=5_000)
        try:
            await admin.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await admin.close()
            raise BusUnavailableError(f"kafka at {self._bootstrap}: {exc!r}") from exc
        return admin

    async def _ensure_topics(self) -> None:
        admin = await self._admin()
        try:
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(self.kafka_topic(family), num_partitions=self._partitions, replication_factor=1)
                for family in FAMILIES
                if self.kafka_topic(family) not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
        except (KafkaError, OSError) as exc:
            raise BusUnavailableError(f"kafka at {self._bootstrap}: {exc!r}") from exc
        finally:
            await admin.close()

    async def close(self) -> None:
        await self._drop_producer()

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5.0)

    async def purge(self) -> None:
        """Delete this prefix's topics (tests and teardown)."""
        admin = await self._admin()
        try:
            with contextlib.suppress(KafkaError):
                await admin.delete_topics([self.kafka_topic(family) for family in FAMILIES])
        finally:
            await admin.close()
        self._topics_ready = False

    async def publish(self, messages: Sequence[Envelope]) -> None:
        if not messages:
            return
        await self.start()
        producer = self._producer
        assert producer is not None
        try:
            futures = [
                await producer.send(
                    self.kafka_topic(family_of(envelope.topic)),
                    value=encode_envelope(envelope),
                    key=envelope.key.encode(),
                    headers=[("topic", envelope.topic.encode()), ("id", envelope.id.encode())],
                )
                for envelope in messages
            ]
            done, pending = await asyncio.wait(futures, timeout=self._publish_timeout)
            if pending:
                raise BusUnavailableError(f"kafka: {len(pending)} of {len(futures)} sends not acknowledged")
            for future in done:
                future.result()
        except (BusUnavailableError, KafkaError, OSError) as exc:
            # A fresh producer after a failure: the old one's queue and sequence numbers are stale.
            # And check the topics again: a broker that came back empty needs them created.
            await self._drop_producer()
            self._topics_ready = False
            if isinstance(exc, BusUnavailableError):
                raise
            raise BusUnavailableError(f"kafka at {self._bootstrap}: {exc!r}") from exc

    async def subscribe(
        self, pattern: str, consumer: str, start: StartPosition = StartPosition.LATEST
    ) -> AsyncIterator[Delivery]:
        validate_pattern(pattern)
        topics = [self.kafka_topic(family) for family in families_of_pattern(pattern)]
        if not self._topics_ready:  # a consumer needs the topics, not a producer
            await self._ensure_topics()
            self._topics_ready = True
        kafka_consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=self._bootstrap,
            group_id=consumer,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if start is StartPosition.EARLIEST else "latest",
        )
        try:
            await kafka_consumer.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await kafka_consumer.stop()
            raise BusUnavailableError(f"kafka at {self._bootstrap}: {exc!r}") from exc
        try:
            while True:
                try:
                    batches = await kafka_consumer.getmany(timeout_ms=500, max_records=self._batch)
                except KafkaError as exc:
                    log.warning("bus_kafka_fetch_failed", consumer=consumer, error=repr(exc))
                    await asyncio.sleep(0.5)
                    continue
                for partition, records in batches.items():
                    for record in records:
                        if record.value is None:
                            continue  # a tombstone: not one of ours
                        headers = dict(record.headers or ())
                        topic = headers.get("topic", b"").decode()
                        if not topic_matches(pattern, topic):
                            continue
                        token = _Token(kafka_consumer, partition, record.offset)
                        yield Delivery(decode_envelope(record.value), token)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(kafka_consumer.stop(), 5.0)

    async def ack(self, *deliveries: Delivery) -> None:
        offsets: dict[Any, dict[TopicPartition, int]] = {}
        for delivery in deliveries:
            token = delivery.token
            if not isinstance(token, _Token):
                raise TypeError("not a delivery of the kafka bus")
            per_consumer = offsets.setdefault(token.consumer, {})
            per_consumer[token.partition] = max(per_consumer.get(token.partition, 0), token.offset + 1)
        try:
            for kafka_consumer, commit in offsets.items():
                await kafka_consumer.commit(commit)
        except (KafkaError, OSError) as exc:
            raise BusUnavailableError(f"kafka at {self._bootstrap}: {exc!r}") from exc
