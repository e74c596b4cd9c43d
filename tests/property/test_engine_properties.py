"""Hypothesis properties of the engine: invariants, the reference-book oracle, determinism, snapshots."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine_support.streams import check_invariants, command_streams, finishing_commands, setup_commands
from tradehall.domain import commands as c
from tradehall.domain.enums import SelfTradePrevention
from tradehall.engine import Engine
from tradehall.engine.book_reference import ReferenceBook

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STP_MODES = st.sampled_from(list(SelfTradePrevention))


def run(engine: Engine, commands: list[c.Command], check: bool = False) -> list[object]:
    produced: list[object] = []
    for command in commands:
        produced.append(engine.apply(command))
        if check:
            check_invariants(engine)
    return produced


@SETTINGS
@given(stream=command_streams(), finish=finishing_commands(), stp=STP_MODES)
def test_invariants_hold_after_every_command(
    stream: list[c.Command], finish: list[c.Command], stp: SelfTradePrevention
) -> None:
    engine = Engine()
    run(engine, setup_commands(stp))
    run(engine, stream + finish, check=True)


@SETTINGS
@given(stream=command_streams(), finish=finishing_commands(), stp=STP_MODES)
def test_fast_book_and_reference_book_produce_identical_events(
    stream: list[c.Command], finish: list[c.Command], stp: SelfTradePrevention
) -> None:
    fast, reference = Engine(), Engine(book_factory=ReferenceBook)
    commands = setup_commands(stp) + stream + finish
    assert run(fast, commands) == run(reference, commands)
    for symbol, market in fast.markets.items():
        assert market.book.depth() == reference.markets[symbol].book.depth()


@SETTINGS
@given(stream=command_streams())
def test_same_commands_give_the_same_events_and_state_hash(stream: list[c.Command]) -> None:
    first, second = Engine(), Engine()
    commands = setup_commands() + stream
    assert run(first, commands) == run(second, commands)
    assert first.state_hash() == second.state_hash()


@SETTINGS
@given(stream=command_streams(min_size=2), data=st.data())
def test_restored_snapshot_continues_exactly_like_the_original(
    stream: list[c.Command], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(stream)))
    original = Engine()
    run(original, setup_commands() + stream[:cut])
    restored = Engine.restore(original.snapshot())
    assert restored.state_hash() == original.state_hash()
    check_invariants(restored)
    assert run(restored, stream[cut:]) == run(original, stream[cut:])
    assert restored.state_hash() == original.state_hash()
