"""Market status changes and the end of a binary market: settle to an outcome, or void it 50-50."""

from __future__ import annotations

from typing import Final

from tradehall.domain import commands as cmds
from tradehall.domain.enums import CancelReason, MarketStatus, Outcome
from tradehall.domain.errors import Code, TradehallError, invalid_request
from tradehall.domain.events import MarketSettled, MarketStatusChanged, MarketVoided
from tradehall.engine.constants import BINARY, MARKET_OPEN
from tradehall.engine.ledger import SYSTEM_ROUNDING
from tradehall.engine.lifecycle import Lifecycle
from tradehall.engine.markets import Market
from tradehall.engine.orders import is_contingent
from tradehall.engine.state import EngineState, enum_of
from tradehall.engine.stops import Stops

ENDING_REASON: Final = {
    MarketStatus.CLOSED: CancelReason.MARKET_CLOSED,
    MarketStatus.SETTLED: CancelReason.MARKET_SETTLED,
    MarketStatus.CANCELLED: CancelReason.MARKET_VOIDED,
}
"""The statuses that end a market's orders, with the reason they carry."""

HALT_REASON: Final = CancelReason.MARKET_HALTED
"""A halt ends only the contingent orders (`is_contingent`); plain orders and plain stops wait."""


class Settlement:
    def __init__(self, state: EngineState, lifecycle: Lifecycle, stops: Stops) -> None:
        self._state = state
        self._lifecycle = lifecycle
        self._stops = stops
        self._ledger = state.ledger
        self._accounts = state.accounts
        self._dirty_positions = state.dirty_positions

    def change_status(self, market: Market, status: MarketStatus) -> None:
        if status is market.status:
            return
        reason = ENDING_REASON.get(status)
        if reason is not None:
            for order in self._state.market_orders(market.symbol):
                self._lifecycle.cancel(order, market, reason)
        elif status is MarketStatus.HALTED:
            orders = self._state.orders
            for order in self._state.market_orders(market.symbol):
                if is_contingent(order) and order.order_id in orders:
                    self._lifecycle.cancel(order, market, HALT_REASON)
        market.status = status
        self._state.events.append(
            MarketStatusChanged(market=market.symbol, status=status, ts=self._state.now)
        )
        if status is MARKET_OPEN:
            self._stops.trigger(market)  # prices may have passed stops while it was halted

    def binary_market(self, symbol: str) -> Market:
        market = self._state.market(symbol)
        if market.kind is not BINARY:
            raise invalid_request(f"market {symbol} is not a binary market")
        if market.status in (MarketStatus.SETTLED, MarketStatus.CANCELLED):
            raise TradehallError(Code.CONFLICT, f"market {symbol} is already {market.status}")
        return market

    def settle_market(self, command: cmds.SettleMarket) -> None:
        market = self.binary_market(command.market)
        outcome = enum_of(Outcome, getattr(command, "outcome"), "outcome")  # noqa: B009
        self.change_status(market, MarketStatus.SETTLED)
        quote = market.spec.quote
        ledger = self._ledger
        terms = market.terms
        pool = ledger.system_account(terms.collateral_id, quote)
        settle_price = terms.payout_ticks if outcome is Outcome.YES else 0
        payouts: list[tuple[str, int]] = []
        for account_id in sorted(market.positions):
            position = market.positions[account_id]
            if position.quantity == 0:
                continue
            account = self._accounts[account_id]
            wins = (position.quantity > 0) == (outcome is Outcome.YES)
            payout = terms.notional.floor(abs(position.quantity) * terms.payout_ticks) if wins else 0
            ledger.transfer(pool, account, quote, payout)
            position.close_all(position.quantity * settle_price, 1, terms.notional)
            self._dirty_positions[(account_id, market.symbol)] = position
            payouts.append((account_id, payout))
        self._state.events.append(
            MarketSettled(market=market.symbol, outcome=outcome, payouts=tuple(payouts), ts=self._state.now)
        )

    def void_market(self, command: cmds.VoidMarket) -> None:
        """Polymarket's 50-50 resolution: every YES and every NO contract pays half the payout.

        Every open pair put exactly 1.00 into the collateral account, so half a payout per contract on
        each side sums to what it holds; each payout is rounded down to the minor unit (a half unit when
        a contract's payout is odd) and that residue goes to `system:rounding`, leaving the collateral
        at zero. Fees are not refunded. Cash a trader took out by selling stays theirs: nothing is clawed
        back, so no balance can go negative."""
        market = self.binary_market(command.market)
        quote = market.spec.quote
        ledger = self._ledger
        pool = ledger.system_account(market.terms.collateral_id, quote)
        payout_ticks = market.terms.payout_ticks
        notional = market.terms.notional
        refunds = [
            (account_id, notional.floor(abs(position.quantity) * payout_ticks) // 2)
            for account_id, position in sorted(market.positions.items())
            if position.quantity
        ]
        if sum(amount for _, amount in refunds) > pool.balance(quote).total:  # pragma: no cover
            raise TradehallError(Code.CONFLICT, f"the collateral of {market.symbol} does not cover its void")
        self.change_status(market, MarketStatus.CANCELLED)  # cancels its orders, releases holds
        for account_id, amount in refunds:
            position = market.positions[account_id]
            ledger.transfer(pool, self._accounts[account_id], quote, amount)
            # closed at half the payout: the rest of the life's P&L, floored like its payout
            position.close_all(position.quantity * payout_ticks, 2, notional)
            self._dirty_positions[(account_id, market.symbol)] = position
        residue = pool.balance(quote).total
        ledger.transfer(pool, ledger.system_account(SYSTEM_ROUNDING, quote), quote, residue)
        self._state.events.append(
            MarketVoided(market=market.symbol, refunds=tuple(refunds), ts=self._state.now)
        )
