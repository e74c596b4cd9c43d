"""What the trading monitor reads from the engine (re-exported by `views`): plain reads, no changes."""

from __future__ import annotations

from tradehall.domain.enums import AccountStatus
from tradehall.engine.engine import Engine
from tradehall.engine.valuation import value_account


def least_assessment_headroom_ppm(engine: Engine) -> int | None:
    """The least headroom of any running assessment: (equity - floor) / floor in parts per million,
    the floor being the higher of its daily and total floors; None when no assessment runs."""
    least: int | None = None
    for account in engine.accounts.values():
        state = account.assessment
        if state is None or account.status != AccountStatus.ACTIVE:
            continue
        floor = max(state.daily_floor, state.total_floor)
        if floor <= 0:
            continue
        equity = value_account(account, engine.markets, engine.spot_market_for).equity
        headroom = (equity - floor) * 1_000_000 // floor
        if least is None or headroom < least:
            least = headroom
    return least
