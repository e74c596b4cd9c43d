"""A cluster shard's id range: `Configure(id_base=...)` moves order and trade ids above it (forward only)."""

from __future__ import annotations

from tests.engine_support import engine_with, expect_no_rejection, of_type, one, order_id, place, spot_spec
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.errors import Code
from tradehall.engine import Engine

BASE = 3 << 40


def test_ids_continue_above_the_shard_base_and_survive_a_snapshot() -> None:
    engine = engine_with(spot_spec(), accounts={"a": {"USD": "1000"}, "b": {"BTC": "1"}})
    first = order_id(place(engine, "a", "BTC-USD", "buy", "0.1", "100"))
    assert first == 1
    configured = one(expect_no_rejection(engine.apply(c.Configure(id_base=BASE))), ev.EngineConfigured)
    assert configured.id_base == BASE
    assert order_id(place(engine, "a", "BTC-USD", "buy", "0.1", "100")) == BASE + 1
    events = place(engine, "b", "BTC-USD", "sell", "0.1", "100")
    assert one(events, ev.OrderAccepted).order_id == BASE + 2
    assert [t.trade_id for t in of_type(events, ev.TradeExecuted)] == [BASE + 1]
    restored = Engine.restore(engine.snapshot())
    assert restored.state_hash() == engine.state_hash() and restored.config.id_base == BASE
    # the same base again (a leader's restart) changes no id; a lower one never moves ids back
    expect_no_rejection(restored.apply(c.Configure(id_base=BASE)))
    expect_no_rejection(restored.apply(c.Configure(id_base=0)))
    assert order_id(place(restored, "a", "BTC-USD", "buy", "0.1", "90")) == BASE + 3


def test_an_id_base_out_of_range_is_refused() -> None:
    engine = Engine()
    before = engine.state_hash()
    for base in (-1, 2**53):
        assert one(engine.apply(c.Configure(id_base=base)), ev.CommandRejected).code is Code.INVALID_REQUEST
    assert engine.state_hash() == before
