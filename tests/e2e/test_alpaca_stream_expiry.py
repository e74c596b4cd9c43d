"""`/alpaca/stream` `expired` updates: a DAY order expires at UTC midnight of the manual clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import LimitOrderRequest

from tests.e2e.alpaca_support import alpaca_trader, seed_book
from tests.e2e.test_api_harness import running_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _recv(socket: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = orjson.loads(await asyncio.wait_for(socket.recv(), 20))
    return decoded


async def test_a_day_order_sends_expired_when_the_clock_passes_midnight(tmp_path: Path) -> None:
    with running_server(tmp_path, clock="manual", clock_tick_seconds=0) as server:
        admin = server.admin()
        # noon, a month ahead: the order's day ends in exactly 12 hours
        noon = (datetime.now(UTC) + timedelta(days=30)).replace(hour=12, minute=0, second=0, microsecond=0)
        admin.move_clock(set_to=_rfc3339(noon))
        seed_book(server)
        trader = alpaca_trader(server)
        client = TradingClient(trader.key_id, trader.secret, url_override=trader.base)
        async with websockets.connect(server.url.replace("http", "ws") + "/alpaca/stream") as socket:
            auth = {"key_id": trader.key_id, "secret_key": trader.secret}
            await socket.send(orjson.dumps({"action": "authenticate", "data": auth}))
            assert (await _recv(socket))["data"]["status"] == "authorized"
            await socket.send(orjson.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            assert await _recv(socket) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
            request = LimitOrderRequest(
                symbol="BTC/USD",
                qty=0.01,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                limit_price=40000,
            )
            placed = await asyncio.to_thread(client.submit_order, request)
            new = TradeUpdate(**(await _recv(socket))["data"])
            assert (str(new.event), new.order.id, new.order.time_in_force) == (
                "new",
                placed.id,
                TimeInForce.DAY,
            )
            await asyncio.to_thread(admin.move_clock, advance_seconds=12 * 3600 - 1)  # one second short
            still = await asyncio.to_thread(client.get_order_by_id, placed.id)
            assert still.status is OrderStatus.NEW
            await asyncio.to_thread(admin.move_clock, advance_seconds=1)  # midnight
            message = await _recv(socket)
            expired = TradeUpdate(**message["data"])
    assert str(expired.event) == "expired"
    assert (expired.order.id, expired.order.status) == (placed.id, OrderStatus.EXPIRED)
    assert expired.order.filled_qty == "0"
    assert message["data"]["timestamp"].startswith(_rfc3339(noon + timedelta(hours=12))[:-1])
    assert (expired.execution_id, expired.price, expired.qty, expired.position_qty) == (
        None,
        None,
        None,
        None,
    )
