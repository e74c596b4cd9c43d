"""`Engine.replaying`: recovery applies the journal without building the events nobody reads there
(balance, position and book summaries, trades, fills, order ends). The state must not notice: the
same random command streams through an engine in replay mode and one in normal mode give the same
`state_hash` after every command, and once replay ends the two engines answer alike."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine_support.streams import command_streams, finishing_commands, setup_commands
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import SelfTradePrevention
from tradehall.engine import Engine

SPOT = "BTC-USD"
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    stream=command_streams(),
    finish=finishing_commands(),
    stp=st.sampled_from(list(SelfTradePrevention)),
    cut=st.integers(min_value=0, max_value=200),
)
def test_replay_mode_leaves_the_same_state_at_every_step(
    stream: list[c.Command], finish: list[c.Command], stp: SelfTradePrevention, cut: int
) -> None:
    commands = setup_commands(stp) + stream + finish
    cut = min(cut, len(commands))
    normal, replayed = Engine(), Engine()
    with replayed.replaying():
        for step, command in enumerate(commands[:cut]):
            normal.apply(command)
            replayed.apply(command)
            assert replayed.state_hash() == normal.state_hash(), f"step {step}: {command!r}"
    assert not replayed.state.replaying
    for step, command in enumerate(commands[cut:], start=cut):  # after the replay: the same answers
        assert replayed.apply(command) == normal.apply(command), f"step {step}: {command!r}"
    assert replayed.state_hash() == normal.state_hash()


def test_replay_mode_builds_no_summaries_but_keeps_refusals() -> None:
    engine = Engine()
    for command in setup_commands():
        engine.apply(command)
    buy = c.PlaceOrder(account_id="a", market=SPOT, side="buy", quantity=D("0.01"), price=D("100"))
    sell = c.PlaceOrder(account_id="b", market=SPOT, side="sell", quantity=D("0.01"), price=D("100"))
    normal = Engine.restore(engine.snapshot())
    with engine.replaying():
        engine.apply(buy)
        events = engine.apply(sell)
        refused = engine.apply(c.CancelOrder(order_id=10**9))
    normal.apply(buy)
    full = normal.apply(sell)
    kinds = {type(event) for event in full}
    assert {ev.TradeExecuted, ev.OrderFilled, ev.BalanceChanged, ev.BookChanged} <= kinds
    assert not {type(event) for event in events} & {
        ev.TradeExecuted,
        ev.OrderFilled,
        ev.BalanceChanged,
        ev.BookChanged,
        ev.PositionChanged,
    }
    assert [type(event) for event in refused] == [ev.CommandRejected]
    assert engine.state_hash() == normal.state_hash()
