"""Supervisor: mark-to-market evaluation of accounts (liquidation and assessment rules on equity).

After each command every account whose balance or position changed is evaluated once; a mark
evaluates only the accounts whose mark interval it leaves (`EngineConfig.incremental_marks`).
"""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import AccountStatus
from tradehall.engine.assessments import Assessments
from tradehall.engine.closeouts import CloseOuts
from tradehall.engine.constants import ACCOUNT_ACTIVE, PERP, SPOT, SYSTEM_KIND
from tradehall.engine.ledger import Account
from tradehall.engine.limits import equity_of
from tradehall.engine.markets import Market
from tradehall.engine.risk import (
    UNBOUNDED_HIGH,
    UNBOUNDED_LOW,
    mark_interval,
    mark_of,
    tier_day_index,
)
from tradehall.engine.state import EngineState
from tradehall.engine.valuation import maintenance_of, value_account

FAILED: Final = AccountStatus.FAILED
PASSED: Final = AccountStatus.PASSED


class Supervisor:
    def __init__(self, state: EngineState, closeouts: CloseOuts, assessments: Assessments) -> None:
        self._state = state
        self._closeouts = closeouts
        self._assessments = assessments
        self._ledger = state.ledger
        self._accounts = state.accounts
        self._markets = state.markets
        self._dirty_positions = state.dirty_positions

    def mark_to_market(self, market: Market) -> None:
        mark = mark_of(market)
        if mark is None:
            return
        if self._state.config.incremental_marks:
            account_ids = market.marks.accounts_to_evaluate(mark)
        else:
            account_ids = sorted(a for a, p in market.positions.items() if p.quantity != 0)
        accounts = self._accounts
        for account_id in account_ids:
            self.evaluate(accounts[account_id], on_mark=True)

    def evaluate_touched(self) -> None:
        """After a command: every account whose balance or position changed is checked once, also
        those a close-out touched on the way (its fills against the book move other accounts)."""
        if not self._dirty_positions and not self._ledger.totals_changed:
            return  # only holds moved: equity is unchanged
        dirty = self._dirty_positions
        ledger = self._ledger
        accounts = self._accounts
        evaluated: set[str] = set()
        while True:
            touched = {a for a, _ in ledger.pending_changes() if accounts[a].watched}
            touched.update(a for a, _ in dirty if accounts[a].watched)
            touched -= evaluated
            if not touched:
                return
            for account_id in sorted(touched):
                evaluated.add(account_id)
                self.evaluate(accounts[account_id])

    def evaluate(self, account: Account, on_mark: bool = False) -> None:
        """Liquidation and assessment rules on the account's equity now; then its mark intervals.

        Peak equity moves on every mark only where a rule trails it (intraday trailing); elsewhere it
        is taken at the account's own events (fills, transfers, daily resets), so that a mark touches
        only the accounts whose interval it leaves."""
        if account.kind is SYSTEM_KIND:
            return
        markets = self._markets
        if account.assessment is None and not any(
            p.quantity and markets[s].kind is PERP for s, p in account.positions.items()
        ):
            for symbol in account.positions:  # no rule can fire: forget any interval left from before
                if account.account_id in markets[symbol].marks.interval_of:
                    markets[symbol].marks.set_interval(account.account_id, None)
            return
        state = self._state
        valuation = value_account(account, markets, state.spot_market_for)
        equity, maintenance = valuation.equity, valuation.maintenance
        if valuation.liquidatable:  # exact equity at or below exact maintenance
            self._closeouts.liquidate(account, equity, maintenance)
            equity, maintenance = equity_of(state, account)
        assessment = account.assessment
        if assessment is not None and account.status is ACCOUNT_ACTIVE:
            before = (assessment.peak_equity, assessment.total_floor)
            if not on_mark or assessment.trails_on_marks:
                assessment.observe_equity(equity)
            breach = assessment.breach(equity)
            if breach is not None:
                self._assessments.end(account, FAILED, breach[0], equity, breach[1])
                equity, maintenance = equity_of(state, account)
            elif assessment.passes(equity):
                self._assessments.end(account, PASSED, "profit_target", equity, assessment.target)
                equity, maintenance = equity_of(state, account)
            elif (assessment.peak_equity, assessment.total_floor) != before:
                self._assessments.emit(account, equity)
        self.update_intervals(account, equity, maintenance)

    def update_intervals(self, account: Account, equity: int, maintenance: int) -> None:
        assessment = account.assessment
        lower = upper = None
        if assessment is not None and account.status is ACCOUNT_ACTIVE:
            lower = assessment.floor()
            if assessment.trading_days >= assessment.tier.min_trading_days:
                upper = assessment.target
            if assessment.trails_on_marks:
                upper = assessment.peak_equity if upper is None else min(upper, assessment.peak_equity)
        # what moves with each market's mark: a position's lots, or (spot) the holding of its base
        markets = self._markets
        exposure: dict[str, tuple[Market, int, int, int]] = {}
        for symbol, position in account.positions.items():
            market = markets[symbol]
            lots = position.quantity if market.spec.quote == account.currency else 0
            if market.kind is SPOT:
                lots = 0  # valued as a holding, below
            exposure[symbol] = (market, lots, 1, maintenance - maintenance_of(market, position))
        for asset, balance in account.balances.items():
            if asset == account.currency or not balance.total:
                continue
            spot = self._state.spot_market_for(asset, account.currency)
            if spot is not None:
                exposure[spot.symbol] = (spot, balance.total, spot.terms.base_per_lot, maintenance)
        # Each interval assumes the other markets' marks stay put. With exposure in k markets, each
        # interval gets 1/k of the room to every rule, so that marks moving in several markets at once,
        # each inside its interval, can never together cross a floor, a target or maintenance unseen.
        k = sum(1 for _, quantity, _, _ in exposure.values() if quantity)
        if k > 1:
            if lower is not None and equity > lower:
                lower = equity - (equity - lower) // k
            if upper is not None and upper > equity:
                upper = equity + (upper - equity) // k
        for market, quantity, per_lot, other in exposure.values():
            if quantity == 0:
                if account.account_id in market.marks.interval_of:
                    market.marks.set_interval(account.account_id, None)
                continue
            if k > 1 and equity > maintenance:
                room = equity - maintenance
                other += room - room // k  # the other markets may use the rest of the room
            interval = mark_interval(market, quantity, equity, lower, upper, other, per_lot)
            unbounded = interval == (UNBOUNDED_LOW, UNBOUNDED_HIGH)
            if not unbounded or account.account_id in market.marks.interval_of:
                market.marks.set_interval(account.account_id, None if unbounded else interval)

    def daily_resets(self) -> None:
        """At each tier's reset time: the day's starting balance and the end-of-day trailing floor."""
        state = self._state
        accounts = self._accounts
        for account_id in sorted(accounts):
            account = accounts[account_id]
            assessment = account.assessment
            if assessment is None or account.status is not ACCOUNT_ACTIVE:
                continue
            day = tier_day_index(assessment.tier, state.now)
            if day != assessment.day_index:
                assessment.daily_reset(account.balance(account.currency).total, day)
                equity, _ = equity_of(state, account)
                self._assessments.emit(account, equity)
                self.evaluate(account)
        self._assessments.schedule_resets()
