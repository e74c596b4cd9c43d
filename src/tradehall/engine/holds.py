"""Holds and position reservations of open orders.

Invariant, after every command (checked by `tests/engine_support/streams.check_invariants` in every
property test, and on streams where covered and uncovered orders of one account meet in one match by
`tests/property/test_engine_holds_properties.py`):

- for each account and currency the ledger's `held` equals the sum of `hold` over the account's open
  orders in that currency, plus (perp markets, quote currency) the `margin` of its positions;
- for each position, `reserved_sell` / `reserved_buy` equal the sum of `covered` over the account's
  open sell / buy orders in that market, and never exceed what the position can close;
- every order's `hold` covers what its fills consume: cash, base asset, margin or binary cost of its
  uncovered lots plus its fees, at any price its limit allows. A fill never finds its hold short
  (`EngineState.hold_shortfall` stays 0), so `available` is never negative.

Two rules keep the last one true. A fill that closes more lots than its order covered consumed other
orders' cover: `move_cover` takes that cover from them at once (newest first) and makes them hold for
opening those lots, from the filling order's now unneeded hold first, so one of them filling later in
the same match finds its hold (a reduce-only one among them is cancelled once the match is settled). A
higher margin rate (`SetLeverage`) makes open orders hold their
opening lots' margin at the new rate (`margin_rate_rises`), or the command is refused.
Taking and releasing go through this component only; a fill consumes from the hold in `postings`.
"""

from __future__ import annotations

from tradehall.domain.errors import TradehallError
from tradehall.engine.checks import check_hold, hold_amount, im_ppm
from tradehall.engine.constants import PENDING_TRIGGER, SELL, SPOT
from tradehall.engine.ledger import Account
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.positions import Position
from tradehall.engine.state import EngineState


class Holds:
    def __init__(self, state: EngineState) -> None:
        self._state = state
        self._adjust_held = state.ledger.adjust_held
        self._position = state.position
        self.cover_lost: list[Order] = []
        """Reduce-only orders `move_cover` took cover from during a match: once its fills are settled
        they can no longer only reduce, and `VenueBase.rebalance_reservations` ends them (`reduce_only`),
        as it ends those that lose cover after the match. Drained within the command that fills."""

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

    def move_cover(self, order: Order, account: Account, market: Market, position: Position) -> None:
        """`order`'s fill closed more lots than it covered: lots other open orders of the account on
        the same side had reserved, which the position no longer has. Those orders (newest first, the
        rebalance's order) lose that cover now and hold for opening those lots instead: first from what
        `order` no longer needs (it held them as opening lots), then from the account's free balance.
        Done at the fill, so another of them filling later in the same match finds its hold."""
        if order.side is SELL:
            excess = position.reserved_sell - max(position.quantity, 0)
        else:
            excess = position.reserved_buy - max(-position.quantity, 0)
        if excess <= 0:
            return
        im = im_ppm(account, market) if market.kind is not SPOT else 0
        if order.remaining == 0:
            spare = order.hold
        elif order.price is None:
            spare = 0  # a market order may still need all of it for the rest of this match
        else:
            spare = order.hold - hold_amount(
                market, order.side, order.price, order.remaining, order.covered, im
            )
        siblings = [
            o
            for o in self._state.open_orders_of(account)
            if o.market == market.symbol and o.side is order.side and o is not order and o.covered
        ]
        siblings.reverse()  # newest first
        for sibling in siblings:
            lots = sibling.covered if sibling.covered < excess else excess
            excess -= lots
            limit = sibling.price
            rise = 0
            if limit is not None:
                # its lots before this match's fills (a maker's remaining is lowered by the book first)
                lots_left = sibling.quantity - sibling.filled
                rise = hold_amount(
                    market, sibling.side, limit, lots_left, sibling.covered - lots, im
                ) - hold_amount(market, sibling.side, limit, lots_left, sibling.covered, im)
            sibling.covered -= lots
            self.adjust_reservation(sibling, market, -lots)
            if sibling.reduce_only:
                self.cover_lost.append(sibling)
            moved = min(rise, max(spare, 0))
            if moved:
                spare -= moved
                order.hold -= moved
                sibling.hold += moved
            rest = rise - moved
            if rest > 0:
                self.hold_more(sibling, account, rest)
            if excess == 0:
                break

    def margin_rate_rises(self, account: Account, market: Market, im_after: int) -> list[tuple[Order, int]]:
        """What each open order of `account` in the perp `market` must hold more when its initial
        margin rate becomes `im_after`: the margin of its opening lots at its limit at the new rate
        less at the rate it holds for now (only rises; a lower rate frees the slack when the order
        ends). Waiting stops are held again at the rate of the moment they fire (`rearm`)."""
        im_before = max(market.terms.initial_margin_ppm, account.leverage.get(market.symbol, 0))
        if im_after <= im_before:
            return []
        margin_of = market.terms.margin_of
        rises: list[tuple[Order, int]] = []
        for order in self._state.open_orders_of(account):
            if order.market != market.symbol or order.status is PENDING_TRIGGER or order.price is None:
                continue
            opening = order.remaining - order.covered
            if opening <= 0:
                continue
            cost = order.price * opening
            rise = margin_of(cost, im_after) - margin_of(cost, im_before)
            if rise > 0:
                rises.append((order, rise))
        return rises

    def hold_more(self, order: Order, account: Account, amount: int) -> None:
        order.hold += amount
        self._adjust_held(account, order.hold_currency, amount)

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
