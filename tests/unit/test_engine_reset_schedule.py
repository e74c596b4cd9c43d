"""The next daily reset: the soonest of every tier in use, kept per tier as accounts open (no scan of
every account per opening), the same after a restore, and moved on by the commands' own times."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from tests.engine_support import expect_no_rejection
from tradehall.domain import commands as c
from tradehall.domain.enums import AccountKind
from tradehall.domain.tiers import TierSpec
from tradehall.engine import Engine, EngineConfig

PRAGUE = ZoneInfo("Europe/Prague")
NEW_YORK = ZoneInfo("America/New_York")
NS = 1_000_000_000


def at(day: int, hour: int, zone: ZoneInfo = PRAGUE) -> int:
    return int(datetime(2026, 1, day, hour, tzinfo=zone).timestamp()) * NS


def engine_with_tiers() -> Engine:
    tiers = {
        "prague": TierSpec(name="prague", starting_balance=D("10000"), timezone="Europe/Prague"),
        "ny": TierSpec(name="ny", starting_balance=D("10000"), timezone="America/New_York"),
    }
    engine = Engine(EngineConfig(tiers=tiers))
    expect_no_rejection(engine.apply(c.AdvanceTime(ts=at(5, 12))))
    return engine


def open_assessment(engine: Engine, account_id: str, tier: str, ts: int | None = None) -> None:
    command = c.OpenAccount(
        account_id=account_id, owner=account_id, kind=AccountKind.ASSESSMENT, tier=tier, ts=ts or 0
    )
    expect_no_rejection(engine.apply(command))


def test_no_assessment_no_reset() -> None:
    engine = engine_with_tiers()
    expect_no_rejection(engine.apply(c.OpenAccount(account_id="a", owner="a")))
    assert engine.state.next_reset is None


def test_the_soonest_reset_of_the_tiers_in_use() -> None:
    engine = engine_with_tiers()
    open_assessment(engine, "ny-1", "ny")
    assert engine.state.next_reset == at(6, 0, NEW_YORK)  # midnight in New York, 6 Jan
    open_assessment(engine, "prague-1", "prague")
    assert engine.state.next_reset == at(6, 0)  # Prague's midnight comes six hours earlier
    open_assessment(engine, "ny-2", "ny")
    assert engine.state.next_reset == at(6, 0)


def test_an_opening_after_a_reset_time_schedules_from_its_own_time() -> None:
    engine = engine_with_tiers()
    open_assessment(engine, "prague-1", "prague")
    assert engine.state.next_reset == at(6, 0)
    # a later command carries the clock past that reset: the schedule is computed anew from it
    open_assessment(engine, "prague-2", "prague", ts=at(6, 3))
    assert engine.state.next_reset == at(7, 0)


def test_restore_keeps_the_schedule() -> None:
    engine = engine_with_tiers()
    open_assessment(engine, "ny-1", "ny")
    open_assessment(engine, "prague-1", "prague")
    restored = Engine.restore(engine.snapshot())
    assert restored.state.next_reset == engine.state.next_reset == at(6, 0)
    open_assessment(restored, "ny-2", "ny", ts=at(6, 3))
    assert restored.state.next_reset == at(6, 0, NEW_YORK)  # Prague's midnight has passed
