"""The `remote` strategy against a fake model service on 127.0.0.1 failing in each way: slow, down,
overloaded, answering garbage; the circuit breaker; replaying recorded answers deterministically; and
a live session asking the model each cycle.

Backoff waits and the breaker's clock are injected (no real waiting); a slow service is one whose
answer is held until the test releases it, so a timeout is certain, not a race.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.http_server import FakeHttpServer, Response
from tests.unit.test_sessions import Harness, harness  # noqa: F401 - the fixture
from tradehall.domain.errors import TradehallError
from tradehall.store import sessions as repo
from tradehall.strategies.builtin.remote import RemoteModel
from tradehall.strategies.types import Action, Bar

S = 1_000_000_000
BAR_END = 1_900_000_060 * S


def bar(close: float, end: int = BAR_END) -> Bar:
    return Bar(end - 60 * S, close, close + 1, close - 1, close, 5.0, end)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
async def model() -> AsyncIterator[FakeHttpServer]:
    server = await FakeHttpServer().start()
    server.route(
        "/model", lambda request: Response.json({"action": "buy", "confidence": 0.8, "reason": "up"})
    )
    yield server
    await server.stop()


def remote(server: FakeHttpServer, fake: FakeTime, **params: Any) -> RemoteModel:
    values: dict[str, Any] = {
        "url": f"{server.url}/model",
        "features": "bars",
        "timeout_seconds": 0.05,
        "retries": 2,
        "backoff_seconds": 0.1,
        "failure_threshold": 2,
        "reset_seconds": 30.0,
    }
    values.update(params)
    strategy = RemoteModel(values)
    strategy.clock = fake.clock
    strategy.sleep = fake.sleep
    return strategy


async def signal_for(strategy: RemoteModel, close: float = 100.0, end: int = BAR_END) -> Any:
    closed = bar(close, end)
    await strategy.prepare("SIM-USD", closed)
    return strategy.on_bar("SIM-USD", closed)


async def test_a_healthy_model_answer_becomes_the_signal(model: FakeHttpServer) -> None:
    fake = FakeTime()
    signal = await signal_for(remote(model, fake))
    assert (signal.action, signal.confidence, signal.reason, signal.price) == (Action.BUY, 0.8, "up", 100.0)
    assert signal.metadata["model"]["attempts"] == 1 and signal.metadata["model"]["error"] is None
    [request] = model.hits("/model")
    sent = json.loads(request.body)
    assert sent == {
        "market": "SIM-USD",
        "bars": [[BAR_END - 60 * S, 100.0, 101.0, 99.0, 100.0, 5.0]],
        "t": BAR_END,
    }
    assert fake.sleeps == []


async def test_an_overloaded_model_is_retried_with_backoff_then_answers(model: FakeHttpServer) -> None:
    fake = FakeTime()
    model.inject("/model", Response.json({"error": "busy"}, 503), Response.json({}, 429))
    signal = await signal_for(remote(model, fake))
    assert (signal.action, signal.metadata["model"]["attempts"]) == (Action.BUY, 3)
    assert len(fake.sleeps) == 2
    assert 0 <= fake.sleeps[0] <= 0.1 and 0 <= fake.sleeps[1] <= 0.2  # full jitter under base x 2^n


async def test_a_model_that_is_down_means_hold_with_the_reason(model: FakeHttpServer) -> None:
    fake = FakeTime()
    model.inject("/model", *(Response(drop=True) for _ in range(3)))
    signal = await signal_for(remote(model, fake))
    assert (signal.action, signal.confidence) == (Action.HOLD, 0.0)
    assert signal.reason == "model service unreachable: RemoteProtocolError"
    assert signal.metadata["model"]["error"] == "unavailable" and signal.metadata["model"]["attempts"] == 3
    assert len(model.hits("/model")) == 3


async def test_a_slow_model_times_out_and_holds(model: FakeHttpServer) -> None:
    fake = FakeTime()
    never = asyncio.Event()
    model.inject("/model", *(Response(200, b"{}", {}, hold=never) for _ in range(2)))
    signal = await signal_for(remote(model, fake, retries=1))
    never.set()
    assert signal.action is Action.HOLD
    assert signal.reason == "model did not answer within 0.05 s"
    assert signal.metadata["model"]["error"] == "timeout" and signal.metadata["model"]["attempts"] == 2


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (
            Response.html(),
            "model answered garbage: not JSON: b'<!DOCTYPE html><html><body>Error</body></html>'",
        ),
        (Response.json([1, 2]), "model answered garbage: not an object: list"),
        (
            Response.json({"action": "moon", "confidence": 1}),
            "model answered garbage: action 'moon' is not buy, sell or hold",
        ),
        (
            Response.json({"action": "buy", "confidence": 1.5}),
            "model answered garbage: confidence 1.5 is not a number in [0, 1]",
        ),
        (Response.json({"detail": "bad request"}, 400), "model answered garbage: HTTP 400"),
    ],
)
async def test_garbage_is_a_hold_and_is_not_retried(
    model: FakeHttpServer, response: Response, reason: str
) -> None:
    fake = FakeTime()
    model.inject("/model", response)
    signal = await signal_for(remote(model, fake))
    assert (signal.action, signal.reason, signal.metadata["model"]["error"]) == (
        Action.HOLD,
        reason,
        "garbage",
    )
    assert len(model.hits("/model")) == 1 and fake.sleeps == []


async def test_the_circuit_opens_after_failed_bars_then_probes_after_its_timeout(
    model: FakeHttpServer,
) -> None:
    fake = FakeTime()
    strategy = remote(model, fake, retries=0)
    model.inject("/model", Response.json({}, 500), Response.json({}, 500))
    first = await signal_for(strategy, end=BAR_END)
    second = await signal_for(strategy, end=BAR_END + 60 * S)
    assert (first.reason, second.reason) == (
        "model service answered 500",
        "model service answered 500; circuit opened",
    )
    third = await signal_for(strategy, end=BAR_END + 120 * S)
    assert (third.action, third.metadata["model"]["error"]) == (Action.HOLD, "circuit_open")
    assert third.reason == "model service circuit open (retry in 30.0 s)"
    assert len(model.hits("/model")) == 2  # an open circuit asks nothing
    fake.now += 30.0
    fourth = await signal_for(strategy, end=BAR_END + 180 * S)
    assert (fourth.action, fourth.reason) == (Action.BUY, "up")  # the half-open probe succeeded
    assert strategy.breaker.state.value == "closed"


async def test_recorded_answers_replay_deterministically_in_a_backtest(
    model: FakeHttpServer, tmp_path: Path
) -> None:
    fake = FakeTime()
    record = tmp_path / "answers.jsonl"
    live = remote(model, fake, record=str(record))
    model.inject("/model", Response.json({"action": "sell", "confidence": 0.25, "reason": "down"}))
    live_signals = [await signal_for(live, 100.0 + i, BAR_END + i * 60 * S) for i in range(3)]
    assert [s.action for s in live_signals] == [Action.SELL, Action.BUY, Action.BUY]
    replayed = [RemoteModel({"replay": str(record)}) for _ in range(2)]
    runs = [
        [strategy.on_bar("SIM-USD", bar(100.0 + i, BAR_END + i * 60 * S)) for i in range(4)]
        for strategy in replayed
    ]
    assert runs[0] == runs[1]
    assert [(s.action, s.confidence, s.reason) for s in runs[0]] == [
        (Action.SELL, 0.25, "down"),
        (Action.BUY, 0.8, "up"),
        (Action.BUY, 0.8, "up"),
        (Action.HOLD, 0.0, "no recorded answer for this bar"),
    ]
    assert len(model.hits("/model")) == 3  # replaying asks nothing


def test_the_remote_strategy_needs_a_url_or_recorded_answers() -> None:
    with pytest.raises(TradehallError) as refused:
        RemoteModel({})
    assert refused.value.detail == "the remote strategy needs `url` (live) or `replay` (recorded answers)"
    with pytest.raises(TradehallError) as refused:
        RemoteModel({"url": "http://127.0.0.1:1/", "features": "bars,sentiment"})
    assert (
        refused.value.detail
        == "features ['sentiment'] unknown; choose from ['bars', 'imbalance', 'position']"
    )


async def test_a_session_asks_the_model_each_cycle_and_stores_its_answer(
    harness: Harness,  # noqa: F811 - the fixture
    model: FakeHttpServer,
) -> None:
    model.inject("/model", Response.html())
    info = await harness.manager.create(
        "u1",
        "acc-1",
        ["SIM-USD"],
        [
            {
                "name": "remote",
                "parameters": {"url": f"{model.url}/model", "features": "bars,position", "retries": 0},
            }
        ],
        {"interval_seconds": 60, "max_position_size": "1000"},
    )
    await harness.cycle(info.id, {"SIM-USD": "100"}, 1)  # garbage: a hold
    await harness.cycle(info.id, {"SIM-USD": "101"}, 2)  # a buy
    signals = await harness.signals(info.id)
    assert [(s.action, s.reason) for s in signals] == [
        ("hold", "model answered garbage: not JSON: b'<!DOCTYPE html><html><body>Error</body></html>'"),
        ("buy", "up"),
    ]
    assert json.loads(signals[1].meta)["model"]["attempts"] == 1
    second = json.loads(model.hits("/model")[1].body)
    assert second["position"] == 0.0 and len(second["bars"]) == 2
    decisions = await harness.decisions(info.id)
    assert [(d.action, d.status) for d in decisions] == [("hold", "hold"), ("buy", "placed")]
    page = await harness.service.store.call(repo.list_sessions, owner="u1")
    assert [row.id for row in page.items] == [info.id]
