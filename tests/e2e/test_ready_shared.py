"""`/ready` is public: its store check (a `SELECT 1` and the projector's cursor) runs at most once per
second whatever the request rate, concurrent requests sharing one round (the clock is the test's)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.e2e.test_api_harness import running_server
from tests.fakes.cluster import FakeTime


def test_concurrent_ready_requests_ping_the_store_once_a_second(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        gateway = server.app.state.gateway
        service = gateway.service
        pings: list[int] = []
        reachable = service.store_reachable

        async def counted() -> bool:
            pings.append(len(pings))
            await asyncio.sleep(0.05)  # a round long enough for the requests to arrive during it
            return await reachable()

        service.store_reachable = counted
        clock = FakeTime()
        clock.now = 1e9  # past whatever the server's start left fresh
        gateway.store_check.monotonic = clock.monotonic

        async def burst(count: int) -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                responses = await asyncio.gather(*(client.get("/ready") for _ in range(count)))
            return [response.status_code for response in responses]

        assert asyncio.run(burst(30)) == [200] * 30
        assert len(pings) == 1
        clock.now += 0.999
        assert asyncio.run(burst(10)) == [200] * 10
        assert len(pings) == 1
        clock.now += 0.001
        assert asyncio.run(burst(10)) == [200] * 10
        assert len(pings) == 2
