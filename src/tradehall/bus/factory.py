"""Build the configured bus backend from the service settings."""

from __future__ import annotations

from typing import Protocol

from tradehall.bus.protocol import EventBus


class BusSettings(Protocol):
    """The part of `tradehall.service.settings.Settings` the bus reads (the bus does not import service)."""

    @property
    def bus(self) -> str: ...

    @property
    def redis_url(self) -> str: ...

    @property
    def nats_url(self) -> str: ...

    @property
    def kafka_bootstrap(self) -> str: ...

    @property
    def bus_prefix(self) -> str: ...


def create_bus(settings: BusSettings, *, prefix: str | None = None) -> EventBus:
    """The backend named by `settings.bus` in namespace `prefix` (default `settings.bus_prefix`).

    Brokers' client libraries are imported only when chosen.
    """
    prefix = prefix or settings.bus_prefix
    if settings.bus == "inproc":
        from tradehall.bus.inproc import InProcessBus

        return InProcessBus()
    if settings.bus == "redis":
        from tradehall.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus(settings.redis_url, prefix=prefix)
    if settings.bus == "nats":
        from tradehall.bus.nats import NatsJetStreamBus

        return NatsJetStreamBus(settings.nats_url, prefix=prefix)
    if settings.bus == "kafka":
        from tradehall.bus.kafka import KafkaBus

        return KafkaBus(settings.kafka_bootstrap, prefix=prefix)
    raise ValueError(f"unknown bus backend {settings.bus!r}")  # pragma: no cover
