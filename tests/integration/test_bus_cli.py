"""`tradehall events tail` against each real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from tests.conftest import require_service
from tests.fixtures.bus_records import positions_on, trading_records
from tests.integration.kafka_broker import KafkaTestBroker, kafka_test_broker
from tradehall.bus.kafka import KafkaBus
from tradehall.bus.nats import NatsJetStreamBus
from tradehall.bus.protocol import EventBus
from tradehall.bus.redis_streams import RedisStreamsBus
from tradehall.bus.serialize import EventSerializer
from tradehall.cli.main import app

pytestmark = [pytest.mark.services, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def kafka_broker() -> Iterator[KafkaTestBroker]:
    with kafka_test_broker() as broker:
        yield broker


def make_bus(backend: str, prefix: str, kafka: str) -> EventBus:
    if backend == "redis":
        return RedisStreamsBus(prefix=prefix)
    if backend == "nats":
        return NatsJetStreamBus(prefix=prefix)
    return KafkaBus(kafka, prefix=prefix)


@pytest.mark.parametrize("backend", ["redis", "nats", "kafka"])
def test_events_tail_prints_one_json_envelope_per_message(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = ""
    if backend == "kafka":
        kafka = request.getfixturevalue("kafka_broker").bootstrap
        monkeypatch.setenv("TRADEHALL_KAFKA_BOOTSTRAP", kafka)
    else:
        require_service(backend)
    prefix = f"t{uuid.uuid4().hex[:12]}"
    serializer = EventSerializer()
    records = trading_records(("BTC-PERP", "ETH-PERP"), 6)
    messages = [e for r in records for e in serializer.envelopes(r)]

    async def publish() -> None:
        bus = make_bus(backend, prefix, kafka)
        await bus.start()
        await bus.publish(messages)
        await bus.close()

    async def purge() -> None:
        bus = make_bus(backend, prefix, kafka)
        await bus.purge()  # type: ignore[attr-defined]
        await bus.close()

    asyncio.run(publish())
    try:
        arguments = f"events tail --topic trades.BTC-PERP --backend {backend} --from-start --count 3 --prefix"
        result = CliRunner().invoke(app, [*arguments.split(), prefix])
    finally:
        asyncio.run(purge())
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    trades = positions_on(records, "trades.BTC-PERP")
    assert len(trades) == 3
    assert [line["id"] for line in lines] == [f"{seq}:{index}" for seq, index in trades]
    assert {line["type"] for line in lines} == {"TradeExecuted"}
    assert lines[0]["payload"]["price"] == "100000.5"
