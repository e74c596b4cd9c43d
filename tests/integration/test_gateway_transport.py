"""The gateway <-> engine transport of `serve --workers N`, in one process: an engine runner behind its
ZeroMQ endpoint, publisher and status page, and two gateway replicas (`FollowerRunner`).

Covers: one frame per loop turn of requests, every reply matched to its request; the status page
written before the answer leaves (so a GET's barrier on *another* gateway, with no round trip, shows
what the answer said, even when that gateway's record stream is stalled); revocations counted in the
page, across engine restarts, and seen by every gateway before its next request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from tradehall.domain.commands import CreateMarket, Deposit, OpenAccount, PlaceOrder
from tradehall.domain.enums import MarketKind, OrderSide
from tradehall.domain.events import OrderAccepted
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine, views
from tradehall.service.follower import FollowerRunner, RecordPublisher, records_address
from tradehall.service.runner import EngineRunner, RunnerConfig
from tradehall.service.status_page import EngineStatus, status_path
from tradehall.service.transport import EngineClient, EngineEndpoint, EngineUnavailableError, engine_address
from tradehall.service.wiring import engine_factory

pytestmark = pytest.mark.timeout(60)


def config(data_dir: Path) -> RunnerConfig:
    return RunnerConfig(journal_dir=data_dir / "journal", snapshot_dir=data_dir / "snapshots", fsync="batch")


@dataclass
class Engines:
    runner: EngineRunner[Engine]
    endpoint: EngineEndpoint
    status: EngineStatus
    a: FollowerRunner
    b: FollowerRunner
    revoked: list[tuple[str, str | None]]


def follower(data_dir: Path) -> FollowerRunner:
    return FollowerRunner(
        engine_factory(),
        config(data_dir),
        engine_address=engine_address(data_dir),
        records_from=records_address(data_dir),
        status=EngineStatus(status_path(data_dir)),
        timeout=10.0,
    )


def place(n: int) -> PlaceOrder:
    return PlaceOrder(account_id="alice", market="BTC-USD", side=OrderSide.BUY, quantity=Decimal("0.01"),
                      price=Decimal(f"{100 + n}"), correlation_id=f"order-{n}")


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[Engines]:
    runner = EngineRunner(engine_factory(), config(tmp_path))
    await runner.start()
    spec = MarketSpec(symbol="BTC-USD", kind=MarketKind.SPOT, base="BTC", quote="USD",
                      tick_size=Decimal("0.01"), lot_size=Decimal("0.0001"))
    await runner.submit_many([CreateMarket(spec=spec), OpenAccount(account_id="alice", owner="alice"),
                              Deposit(account_id="alice", amount=Decimal("100000"))])
    status = EngineStatus(status_path(tmp_path))
    status.durable_seq = runner.durable_seq
    publisher = RecordPublisher(records_address(tmp_path), status)
    runner.add_listener(publisher.on_records)
    revoked: list[tuple[str, str | None]] = []

    def on_revoked(user_id: str, key_id: str | None) -> None:
        revoked.append((user_id, key_id))
        publisher.on_revoked(user_id, key_id)

    endpoint = EngineEndpoint(engine_address(tmp_path), runner.submit_many, lambda: runner.durable_seq,
                              on_revoked=on_revoked, status=status)
    await endpoint.start()
    a, b = follower(tmp_path), follower(tmp_path)
    await a.start()
    await b.start()
    try:
        yield Engines(runner, endpoint, status, a, b, revoked)
    finally:
        await a.stop()
        await b.stop()
        await endpoint.stop()
        await runner.stop()
        publisher.close()
        status.close()


async def test_one_loop_turn_of_requests_leaves_in_one_frame(engines: Engines, tmp_path: Path) -> None:
    client = EngineClient(engine_address(tmp_path), timeout=10.0)
    await client.start()
    try:
        results = await asyncio.gather(*(client.submit(place(n)) for n in range(20)))
    finally:
        await client.stop()
    assert client.frames_sent == 1
    assert engines.endpoint.batches_taken == 1  # and one batch for the runner
    seqs = [result.seq for result in results]
    assert seqs == list(range(seqs[0], seqs[0] + 20))  # each caller got its own command's result
    events = [event for result in results for event in result.events]
    prices = [event.price for event in events if isinstance(event, OrderAccepted)]
    assert prices == [(100 + n) * 100 for n in range(20)]  # ticks of 0.01


async def test_the_status_page_shows_an_answer_before_it_is_given(engines: Engines) -> None:
    seen: list[int] = []
    original = engines.endpoint._send  # the moment each answer leaves

    async def recording(sender: bytes, replies: list[object]) -> None:
        seen.append(engines.status.durable_seq)
        await original(sender, replies)  # type: ignore[arg-type]

    engines.endpoint._send = recording  # type: ignore[method-assign]
    result = await engines.a.submit(place(1))
    assert seen == [result.seq]
    assert EngineStatus(status_path(engines.a.config.journal_dir.parent)).durable_seq == result.seq


async def test_a_get_on_another_gateway_sees_an_answered_order_without_a_round_trip(engines: Engines) -> None:
    follow = engines.b._follow_task  # stall gateway B's record stream
    assert follow is not None
    follow.cancel()
    result = await engines.a.submit(place(2))
    order_id = next(e.order_id for e in result.events if isinstance(e, OrderAccepted))
    assert views.order(engines.a.engine, order_id) is not None  # the answering gateway shows it at once
    assert views.order(engines.b.engine, order_id) is None  # B has not heard of it
    sent_before = engines.b._client.frames_sent
    await engines.b.catch_up()  # the barrier of a GET on B: reads the seq, then the journal has it
    assert engines.b.durable_seq == result.seq
    assert views.order(engines.b.engine, order_id) is not None
    assert engines.b._client.frames_sent == sent_before  # nothing asked of the engine


async def test_a_revocation_reaches_every_gateway_before_its_next_request(engines: Engines) -> None:
    forgotten: dict[str, int] = {"a": 0, "b": 0}
    engines.a.on_missed_revocations = lambda: forgotten.__setitem__("a", forgotten["a"] + 1)
    engines.b.on_missed_revocations = lambda: forgotten.__setitem__("b", forgotten["b"] + 1)
    engines.b.check_revocations()
    assert forgotten == {"a": 0, "b": 0}  # nothing revoked yet
    await engines.a.revoke("user-1", "key-1")
    assert engines.revoked == [("user-1", "key-1")]
    assert engines.status.revocations == 1
    engines.b.check_revocations()  # whether or not B's notice has arrived: B forgets its cached keys
    engines.b.check_revocations()  # once per revocation
    assert forgotten["b"] == 1
    await engines.a.catch_up()
    assert forgotten["a"] == 1


def test_the_status_page_keeps_its_revocation_count_across_engine_restarts(tmp_path: Path) -> None:
    first = EngineStatus(status_path(tmp_path))
    assert (first.durable_seq, first.revocations) == (0, 0)
    first.durable_seq = 41
    first.count_revocation()
    first.count_revocation()
    reader = EngineStatus(status_path(tmp_path))  # a gateway's mapping of the same page
    first.durable_seq = 42
    assert (reader.durable_seq, reader.revocations) == (42, 2)
    first.close()
    again = EngineStatus(status_path(tmp_path))  # the engine process started again
    assert again.count_revocation() == 3
    assert reader.revocations == 3
    again.close()
    reader.close()


async def test_a_request_the_engine_never_answers_fails_after_its_timeout(tmp_path: Path) -> None:
    client = EngineClient(engine_address(tmp_path / "nobody"), timeout=0.3)  # no engine listens there
    await client.start()
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(EngineUnavailableError, match="did not answer in time"):
            await client.submit(place(1))
        waited = asyncio.get_running_loop().time() - started
        assert 0.3 <= waited < 5.0
        assert client._waiting == {}  # nothing left behind
    finally:
        await client.stop()
