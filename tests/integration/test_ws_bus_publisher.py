"""The bus publisher as the service runs it (TRADEHALL_BUS=redis): the engine's trades reach a consumer
of the real Redis, the readiness check follows a broker outage, and the journal is retained for what
the publisher has not published yet."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from fastapi import Request

from tests.fixtures.bus_records import perp_spec
from tests.integration.bus_proxy import TcpProxy
from tradehall.api.auth import Authenticator
from tradehall.api.gateway import Gateway
from tradehall.api.routes.ops import ready
from tradehall.bus import Delivery, StartPosition
from tradehall.bus.redis_streams import RedisStreamsBus
from tradehall.domain.commands import CreateMarket, Deposit, OpenAccount, PlaceOrder
from tradehall.domain.enums import OrderSide
from tradehall.service.settings import Settings
from tradehall.service.wiring import Service

pytestmark = [pytest.mark.services, pytest.mark.timeout(60)]

D = Decimal


@pytest.fixture
async def proxy(redis_available: None) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def service(proxy: TcpProxy, tmp_path: Path) -> AsyncIterator[Service]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    settings = Settings(
        data_dir=tmp_path,
        fsync="none",
        bus="redis",
        redis_url=f"redis://127.0.0.1:{proxy.port}/0",
        bus_prefix=prefix,
        clock_tick_seconds=0,
    )
    service = Service(settings)
    await service.start()
    yield service
    await service.stop()
    cleaner = RedisStreamsBus(prefix=prefix)
    await cleaner.purge()
    await cleaner.close()


async def trade(service: Service, price: str) -> int:
    """A resting sell and a crossing buy; returns the seq of the buy (the trade's record)."""
    for account, side in (("seller", OrderSide.SELL), ("buyer", OrderSide.BUY)):
        order = PlaceOrder(
            account_id=account, market="BTC-PERP", side=side, quantity=D("0.01"), price=D(price)
        )
        result = await service.submit(order)
    return result.seq


async def setup_market(service: Service) -> None:
    await service.submit(CreateMarket(spec=perp_spec("BTC-PERP")))
    for account in ("seller", "buyer"):
        await service.submit(OpenAccount(account_id=account, owner=account))
        await service.submit(Deposit(account_id=account, amount=D("100000")))


async def readiness(service: Service) -> tuple[int, dict[str, object]]:
    gateway = Gateway(service.settings, service, Authenticator(service.settings, service.store))
    no_monitor = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace()))  # the route reads app.state
    response = await ready(gateway, cast(Request, no_monitor))
    body = json.loads(bytes(response.body))
    return response.status_code, body["checks"]["bus"]


async def take(subscription: AsyncIterator[Delivery], count: int) -> list[Delivery]:
    got: list[Delivery] = []

    async def run() -> None:
        async for delivery in subscription:
            got.append(delivery)
            if len(got) == count:
                return

    await asyncio.wait_for(run(), 20)
    return got


async def test_the_services_trades_reach_a_redis_consumer(service: Service) -> None:
    publisher = service.integrations.publisher
    assert publisher is not None
    await setup_market(service)
    first = await trade(service, "50000")
    second = await trade(service, "50010.5")
    await publisher.wait_published(second)
    consumer = RedisStreamsBus(prefix=service.settings.bus_prefix)
    subscription = consumer.subscribe("trades.BTC-PERP", "reader", StartPosition.EARLIEST)
    try:
        deliveries = await take(subscription, 2)
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]
        await consumer.close()
    assert [(d.envelope.seq, d.envelope.type) for d in deliveries] == [
        (first, "TradeExecuted"),
        (second, "TradeExecuted"),
    ]
    assert [(d.envelope.payload["price"], d.envelope.payload["quantity"]) for d in deliveries] == [
        ("50000", "0.01"),
        ("50010.5", "0.01"),
    ]


async def test_an_outage_holds_the_journal_and_the_publisher_catches_up(
    service: Service, proxy: TcpProxy
) -> None:
    publisher = service.integrations.publisher
    assert publisher is not None
    await setup_market(service)
    before = await trade(service, "50000")
    await publisher.wait_published(before)
    assert publisher.healthy is True
    await proxy.stop()
    during = await trade(service, "50001")
    for _ in range(200):
        if not publisher.healthy:
            break
        await asyncio.sleep(0.05)
    assert publisher.healthy is False
    assert publisher.published_seq < during
    status, bus = await readiness(service)
    assert status == 503
    assert bus["ok"] is False
    assert bus["backend"] == "redis"
    assert bus["published_seq"] == publisher.published_seq
    assert bus["lag"] == service.runner.durable_seq - publisher.published_seq
    await service.wait_projected(during)
    # the projector has everything; the runner must still keep what the publisher has not published
    assert service.projected_seq == during
    assert service._retain_from() == publisher.published_seq + 1
    await proxy.start()
    await publisher.wait_published(during, timeout=30)
    assert publisher.healthy is True
    assert service._retain_from() == during + 1
