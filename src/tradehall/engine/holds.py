"""Holds and position reservations of open orders.

Invariant (checked after every command by the property tests): for each account and currency the
ledger's `held` equals the sum of the `hold` of the account's open orders in that currency plus the
margin of its perp positions, and for each position `reserved_buy` / `reserved_sell` equal the sum of
`covered` over its open buy / sell orders. Taking and releasing go through this component only;
a fill consumes from the hold in `postings`.
"""

from __future__ import annotations

from tradehall.domain.errors import TradehallError
from tradehall.engine.checks import check_hold
from tradehall.engine.constants import SELL, SPOT
from tradehall.engine.ledger import Account
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.state import EngineState


class Holds:
    def __init__(self, state: EngineState) -> None:
        self._state = state
        self._adjust_held = state.ledger.adjust_held
        self._position = state.position

    def take(self, order: Order, account: Account, market: Market) -> None:
        """Hold the order's `hold` and reserve its `covered` lots of the position."""
        self._adjust_held(account, order.hold_currency, order.hold)
        if order.covered and market.kind is not SPOT:
            position = self._position(market, account)
            if order.side is SELL:
                position.reserved_sell += order.covered
            else:
                position.reserved_buy += order.covered

    def release(self, order: Order, account: Account, market: Market) -> None:
        """Give back whatever the order still holds and reserves."""
        self._adjust_held(account, order.hold_currency, -order.hold)
        order.hold = 0
        if order.covered:
            position = market.positions[account.account_id]
            if order.side is SELL:
                position.reserved_sell -= order.covered
            else:
                position.reserved_buy -= order.covered
            order.covered = 0

    @staticmethod
    def adjust_reservation(order: Order, market: Market, lots: int) -> None:
        if lots == 0:
            return
        position = market.positions[order.account_id]
        if order.side is SELL:
            position.reserved_sell += lots
        else:
            position.reserved_buy += lots

    def check_replacement(self, trial: Order, order: Order, account: Account, market: Market) -> None:
        """Compute the trial's hold as if `order` were released first; raises without changing anything."""
        balance = account.balance(order.hold_currency)
        position = market.positions.get(account.account_id)
        saved = (
            balance.held,
            position.reserved_sell if position else 0,
            position.reserved_buy if position else 0,
        )
        balance.held -= order.hold
        if position is not None:
            if order.side is SELL:
                position.reserved_sell -= order.covered
            else:
                position.reserved_buy -= order.covered
        try:
            refusal = check_hold(self._state, trial, account, market, trial.price)
        finally:
            balance.held = saved[0]
            if position is not None:
                position.reserved_sell, position.reserved_buy = saved[1], saved[2]
        if refusal is not None:
            raise refusal

    def rearm(
        self, order: Order, account: Account, market: Market, limit: int | None, lots: int | None
    ) -> TradehallError | None:
        """An order whose execution was deferred (a stop that fired, an order that waited for the
        venue's latency) holds again at the prices of now; on a refusal it holds nothing."""
        self.release(order, account, market)
        refusal = check_hold(self._state, order, account, market, limit, lots)
        if refusal is not None:
            order.covered = 0
            order.hold = 0
            return refusal
        self.take(order, account, market)
        return None
