from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from typer.testing import CliRunner

from tradehall.bus.redis_streams import RedisStreamsBus
from tradehall.bus.sample import trading_records
from tradehall.bus.serialize import EventSerializer
from tradehall.cli.main import app

pytestmark = [pytest.mark.services, pytest.mark.timeout(60)]


def test_events_tail_prints_one_json_envelope_per_message_from_redis(redis_available: None) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    serializer = EventSerializer()
    messages = [e for r in trading_records(("BTC-PERP", "ETH-PERP"), 6) for e in serializer.envelopes(r)]
    bus = RedisStreamsBus(prefix=prefix)
    asyncio.run(bus.publish(messages))
    try:
        arguments = "events tail --topic trades.BTC-PERP --backend redis --from-start --count 3 --prefix"
        result = CliRunner().invoke(app, [*arguments.split(), prefix])
    finally:
        cleaner = RedisStreamsBus(prefix=prefix)

        async def purge() -> None:
            await cleaner.purge()
            await cleaner.close()

        asyncio.run(purge())
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["id"] for line in lines] == ["3:1", "5:1", "7:1"]
    assert {line["type"] for line in lines} == {"TradeExecuted"}
    assert lines[0]["payload"]["price"] == "100000"
