"""Assessments: an assessment account's status events, its end (pass or fail) and the reset schedule."""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import AccountStatus, CancelReason
from tradehall.domain.events import (
    AccountStatusChanged,
    AssessmentFailed,
    AssessmentPassed,
    AssessmentUpdated,
)
from tradehall.domain.tiers import TierSpec
from tradehall.engine.closeouts import CloseOuts
from tradehall.engine.constants import TRADING_HALTED
from tradehall.engine.ledger import SYSTEM_VENUE, Account
from tradehall.engine.lifecycle import Lifecycle
from tradehall.engine.limits import equity_of
from tradehall.engine.risk import next_reset_ts
from tradehall.engine.state import EngineState

ASSESSMENT_ENDED: Final = CancelReason.ASSESSMENT_ENDED
FAILED: Final = AccountStatus.FAILED


class Assessments:
    def __init__(self, state: EngineState, lifecycle: Lifecycle, closeouts: CloseOuts) -> None:
        self._state = state
        self._lifecycle = lifecycle
        self._closeouts = closeouts
        self._markets = state.markets
        self._accounts = state.accounts
        # the tiers of every assessment account ever opened, and each tier's next reset with the
        # time it was computed from: an account opening costs its tier, not a scan of every account
        self._tiers: dict[str, TierSpec] | None = None
        self._next_reset: dict[str, tuple[TierSpec, int, int]] = {}

    def end(self, account: Account, status: AccountStatus, rule: str, equity: int, level: int) -> None:
        """A breach fails the account, the target passes it: orders cancelled, positions closed, halted."""
        state = self._state
        markets = self._markets
        for order in state.open_orders_of(account):
            self._lifecycle.cancel(order, markets[order.market], ASSESSMENT_ENDED)
        for symbol in sorted(account.positions):
            position = account.positions[symbol]
            market = markets[symbol]
            if position.quantity == 0:
                continue
            price = self._closeouts.closing_price(market, position.quantity)
            self._closeouts.close_out(
                market, account, position.quantity, price, SYSTEM_VENUE, status.value, ASSESSMENT_ENDED
            )
        now = state.now
        account.status = status
        account.trading_state = TRADING_HALTED
        account.status_reason = (rule, equity, level, now)
        final_equity, _ = equity_of(state, account)
        assessment = account.assessment
        assert assessment is not None
        if status is FAILED:
            self._state.events.append(
                AssessmentFailed(account_id=account.account_id, rule=rule, equity=equity, floor=level, ts=now)
            )
        else:
            self._state.events.append(
                AssessmentPassed(
                    account_id=account.account_id,
                    equity=final_equity,
                    target=level,
                    trading_days=assessment.trading_days,
                    ts=now,
                )
            )
        self._state.events.append(
            AccountStatusChanged(
                account_id=account.account_id,
                status=status,
                trading_state=TRADING_HALTED,
                reason=rule,
                ts=now,
                value=equity,
                limit=level,
            )
        )

    def emit(self, account: Account, equity: int) -> None:
        assessment = account.assessment
        assert assessment is not None
        self._state.events.append(
            AssessmentUpdated(
                account_id=account.account_id,
                equity=equity,
                peak_equity=assessment.peak_equity,
                day_start_balance=assessment.day_start_balance,
                daily_floor=assessment.daily_floor,
                total_floor=assessment.total_floor,
                trading_days=assessment.trading_days,
                ts=self._state.now,
            )
        )

    def schedule_resets(self, opened: TierSpec | None = None, rebuild: bool = False) -> None:
        """The next daily reset of any tier in use; `opened` is the tier of an account just opened,
        `rebuild` reads the tiers from every account again (after a restore)."""
        state = self._state
        tiers = self._tiers
        if tiers is None or rebuild:
            tiers = self._tiers = {
                a.assessment.tier.name: a.assessment.tier for a in self._accounts.values() if a.assessment
            }
        if opened is not None:
            tiers[opened.name] = opened
        now = state.now
        cache = self._next_reset
        soonest: int | None = None
        for name, tier in tiers.items():
            known = cache.get(name)
            if known is not None and known[0] is tier and known[1] <= now < known[2]:
                at = known[2]  # the first reset after any time in [from, at) is `at`
            else:
                at = next_reset_ts(tier, now)
                cache[name] = (tier, now, at)
            if soonest is None or at < soonest:
                soonest = at
        state.next_reset = soonest
