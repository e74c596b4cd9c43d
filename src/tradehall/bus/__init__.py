"""The event bus: engine events published from the journal to in-process, Redis, NATS or Kafka.

See docs/bus.md for topics and the message schema.
"""

from tradehall.bus.consumer import Deduper, DedupingConsumer
from tradehall.bus.envelope import SCHEMA_VERSION, Envelope, decode_envelope, encode_envelope
from tradehall.bus.factory import BusSettings, create_bus
from tradehall.bus.inproc import InProcessBus
from tradehall.bus.position import FilePositionStore, MemoryPositionStore, PositionStore, PublisherPosition
from tradehall.bus.protocol import BusUnavailableError, Delivery, EventBus, StartPosition
from tradehall.bus.publisher import BusPublisher
from tradehall.bus.serialize import EventSerializer
from tradehall.bus.source import JournalSource, MemoryJournalSource, RunnerJournalSource
from tradehall.bus.topics import Route, route_of, topic_matches

__all__ = [
    "SCHEMA_VERSION",
    "BusPublisher",
    "BusSettings",
    "BusUnavailableError",
    "Deduper",
    "DedupingConsumer",
    "Delivery",
    "Envelope",
    "EventBus",
    "EventSerializer",
    "FilePositionStore",
    "InProcessBus",
    "JournalSource",
    "MemoryJournalSource",
    "MemoryPositionStore",
    "PositionStore",
    "PublisherPosition",
    "Route",
    "RunnerJournalSource",
    "StartPosition",
    "create_bus",
    "decode_envelope",
    "encode_envelope",
    "route_of",
    "topic_matches",
]
