"""Contingent orders: brackets, OTO exits and OCO pairs (Alpaca's order classes).

An entry (`bracket`: both exits, `oto`: one) carries its exits' prices. Each of its fills hands the
filled lots to its exits: the first fill places them, later fills grow them, so the exits always
match what the entry bought or sold. An `oco` is an exit-only pair for a position that exists: the
order itself is the take-profit, and its stop-loss is placed with it.

Exits are reduce-only (perp, binary: covered by the position; spot: they hold the base asset they
sell) and one cancels the other. While both wait, the take-profit (a resting limit) holds for the
pair and the stop-loss rides on it holding nothing, so a pair holds once (the larger leg's quantity:
the two are kept equal). A take-profit fill shrinks the stop-loss to the take-profit's rest and ends
it (`oco`) once nothing is left; the stop-loss triggering ends the take-profit (`oco`, Binance's
rule) and then holds for itself, like any stop that fires. Cancelling one exit leaves the other
working on its own.

Fills are posted deep inside matching, and orders end inside loops over many orders, so postings and
lifecycle only note the order (`state.contingent_pending`); `settle` acts on the notes at the next
safe point: before stops are looked at (`Stops.trigger`) and at the end of the command. The checks of a
placement or an amend are pure functions in `contingent_checks.py`.
"""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import CancelReason, Side
from tradehall.engine.checks import check_hold, default_trigger
from tradehall.engine.constants import (
    BRACKET_CLASS,
    BUY,
    FILLED,
    GTC,
    LIMIT_ORDER,
    MARKET_OPEN,
    OCO_CLASS,
    OTO_CLASS,
    PENDING_TRIGGER,
    SELL,
    SPOT,
    STOP_LIMIT_ORDER,
    STOP_ORDER,
)
from tradehall.engine.execution import Execution
from tradehall.engine.holds import Holds
from tradehall.engine.ledger import Account
from tradehall.engine.lifecycle import Lifecycle, new_order
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.state import EngineState

OCO: Final = CancelReason.OCO
USER: Final = CancelReason.USER
UNFUNDED: Final = CancelReason.UNFUNDED


class Contingent:
    def __init__(self, state: EngineState, holds: Holds, lifecycle: Lifecycle, execution: Execution) -> None:
        self._state = state
        self._holds = holds
        self._lifecycle = lifecycle
        self._execution = execution
        self._orders = state.orders
        self._markets = state.markets
        self._accounts = state.accounts
        self._pending = state.contingent_pending

    # --- placement -----------------------------------------------------------------------

    def attach_stop(self, take_profit: Order, account: Account, market: Market) -> None:
        """An oco's stop-loss, placed right after its take-profit rests: it rides on its hold."""
        if take_profit.order_id not in self._orders or take_profit.remaining == 0:
            return
        stop = self.new_leg(take_profit, account, market, take_profit.side, take_profit.remaining, True)
        stop.parent_order_id = take_profit.order_id
        take_profit.legs = (stop.order_id,)
        self.pair(take_profit, stop)
        self.open_leg(stop, account, market, riding=True)

    # --- exits -----------------------------------------------------------------------------

    def new_leg(
        self, owner: Order, account: Account, market: Market, side: Side, quantity: int, stop: bool
    ) -> Order:
        """An exit of `owner` (an entry, or an oco's take-profit), not yet accepted."""
        state = self._state
        now = state.now
        if stop:
            order_type = STOP_ORDER if owner.stop_loss_limit is None else STOP_LIMIT_ORDER
            leg = new_order(
                state.next_order_id,
                account.account_id,
                market.symbol,
                side,
                order_type,
                GTC,
                quantity,
                quantity,
                owner.stop_loss_limit,
                stop_price=owner.stop_loss,
                status=PENDING_TRIGGER,
                trigger=default_trigger(market),
                reduce_only=market.kind is not SPOT,
                created_ts=now,
                updated_ts=now,
            )
        else:
            leg = new_order(
                state.next_order_id,
                account.account_id,
                market.symbol,
                side,
                LIMIT_ORDER,
                GTC,
                quantity,
                quantity,
                owner.take_profit,
                reduce_only=market.kind is not SPOT,
                created_ts=now,
                updated_ts=now,
            )
        leg.order_class = owner.order_class
        leg.parent_order_id = owner.order_id
        state.next_order_id += 1
        return leg

    @staticmethod
    def pair(take_profit: Order, stop_loss: Order) -> None:
        take_profit.oco_with = stop_loss.order_id
        stop_loss.oco_with = take_profit.order_id

    def open_leg(self, leg: Order, account: Account, market: Market, riding: bool) -> bool:
        """Accept an exit: a rider holds nothing; otherwise it holds like an order of its own (refused:
        it ends at once with the refusal's reason). True when it is working afterwards."""
        state = self._state
        state.events.append(self._lifecycle.accepted(leg))
        if not riding:
            limit = None if leg.status is PENDING_TRIGGER and leg.type is STOP_ORDER else leg.price
            refusal = check_hold(state, leg, account, market, limit)
            if refusal is not None:
                leg.hold = leg.covered = 0
                self._lifecycle.close(leg, account, market, refusal.reason or UNFUNDED)
                return False
            self._holds.take(leg, account, market)
        if leg.status is PENDING_TRIGGER:
            state.register(leg, account)
            market.stops.add(leg)
            return True
        self._execution.execute(leg, account, market, leg.price)
        return leg.order_id in self._orders

    def on_trigger(self, stop: Order, market: Market) -> None:
        """A stop-loss that fires ends its take-profit (`oco`) before it holds for itself."""
        sibling_id = stop.oco_with
        if sibling_id is None:
            return
        stop.oco_with = None
        sibling = self._orders.get(sibling_id)
        if sibling is None:
            return
        sibling.oco_with = None
        self._lifecycle.cancel(sibling, market, OCO)

    # --- after fills and ends ------------------------------------------------------------------

    def settle(self) -> None:
        """Act on the contingent orders that filled or ended: entries hand their new fills to their
        exits, exits keep their sibling in step (or end it, or leave it working alone)."""
        pending = self._pending
        while pending:
            batch = pending[:]
            pending.clear()
            for order in batch:
                if order.parent_order_id is None and (
                    order.order_class is BRACKET_CLASS or order.order_class is OTO_CLASS
                ):
                    self.grow_entry(order)
                elif order.oco_with is not None:
                    self.follow_leg(order)

    def grow_entry(self, entry: Order) -> None:
        delta = entry.filled - entry.legs_quantity
        if delta <= 0:
            return
        entry.legs_quantity = entry.filled
        market = self._markets[entry.market]
        if market.status is not MARKET_OPEN:
            return
        account = self._accounts[entry.account_id]
        orders = self._orders
        live = [orders[i] for i in entry.legs if i in orders]
        if live:
            for leg in live:
                self.grow_leg(leg, delta, account, market)
            return
        side = SELL if entry.side is BUY else BUY
        take_profit: Order | None = None
        if entry.take_profit is not None:
            take_profit = self.new_leg(entry, account, market, side, delta, False)
            entry.legs += (take_profit.order_id,)
            if not self.open_leg(take_profit, account, market, riding=False):
                if take_profit.status is FILLED:
                    return  # filled at once: nothing left for a stop-loss to protect
                take_profit = None
        if entry.stop_loss is not None:
            quantity = delta if take_profit is None else take_profit.remaining
            stop = self.new_leg(entry, account, market, side, quantity, True)
            entry.legs += (stop.order_id,)
            if take_profit is not None:
                self.pair(take_profit, stop)
            self.open_leg(stop, account, market, riding=take_profit is not None)

    def grow_leg(self, leg: Order, delta: int, account: Account, market: Market) -> None:
        """An exit takes `delta` more lots (its entry filled more); a rider just grows."""
        state = self._state
        now = state.now
        if leg.status is PENDING_TRIGGER:
            holds_alone = leg.type is STOP_LIMIT_ORDER and not self.riding(leg)
            if holds_alone:
                self._holds.release(leg, account, market)
            leg.quantity += delta
            leg.remaining += delta
            leg.updated_ts = now
            if holds_alone:
                refusal = check_hold(state, leg, account, market, leg.price)
                if refusal is not None:
                    leg.hold = leg.covered = 0
                    self._lifecycle.cancel(leg, market, UNFUNDED)
                    return
                self._holds.take(leg, account, market)
            state.events.append(self._lifecycle.amended(leg, priority_lost=False))
            return
        # resting or waiting for latency: a new object (the book deletes lazily), behind the queue
        grown = leg.copy()
        grown.quantity, grown.remaining = leg.quantity + delta, leg.remaining + delta
        grown.hold = grown.covered = 0
        grown.in_book = False
        state.books_touched.add(market.symbol)
        self._lifecycle.unrest(leg, market)
        self._holds.release(leg, account, market)
        self._orders[leg.order_id] = grown
        account.open_orders[leg.order_id] = grown
        refusal = check_hold(state, grown, account, market, grown.price)
        if refusal is not None:
            grown.hold = grown.covered = 0
            self._lifecycle.close(grown, account, market, UNFUNDED)
            return
        self._holds.take(grown, account, market)
        grown.updated_ts = now
        state.events.append(self._lifecycle.amended(grown, priority_lost=True))
        self._execution.execute(grown, account, market, grown.price)

    def follow_leg(self, leg: Order) -> None:
        """Keep a pair in step after one exit filled or ended."""
        orders = self._orders
        sibling_id = leg.oco_with
        assert sibling_id is not None
        sibling = orders.get(sibling_id)
        if sibling is None or sibling.oco_with != leg.order_id:
            return
        market = self._markets[leg.market]
        if leg.order_id in orders and orders[leg.order_id] is leg:
            if sibling.remaining > leg.remaining:  # the rider shrinks to the holder's rest
                cut = sibling.remaining - leg.remaining
                sibling.quantity -= cut
                sibling.remaining -= cut
                sibling.updated_ts = self._state.now
                self._state.events.append(self._lifecycle.amended(sibling, priority_lost=False))
            return
        if leg.order_id in orders:
            return  # replaced by a grown copy: that one is the leg now
        sibling.oco_with = None
        leg.oco_with = None
        if leg.status is FILLED:
            self._lifecycle.cancel(sibling, market, OCO)
            return
        reason = leg.cancel_reason
        if reason is not USER:
            self._lifecycle.cancel(sibling, market, reason or OCO)
            return
        # cancelling one exit leaves the other working alone; its entry places no more of that kind
        parent = orders.get(leg.parent_order_id) if leg.parent_order_id is not None else None
        if parent is not None and parent.parent_order_id is None and parent.order_class is not OCO_CLASS:
            if leg.type is LIMIT_ORDER:
                parent.take_profit = None
            else:
                parent.stop_loss = None
                parent.stop_loss_limit = None
        if sibling.status is PENDING_TRIGGER and sibling.type is STOP_LIMIT_ORDER:
            account = self._accounts[sibling.account_id]
            refusal = check_hold(self._state, sibling, account, market, sibling.price)
            if refusal is not None:
                sibling.hold = sibling.covered = 0
                self._lifecycle.cancel(sibling, market, UNFUNDED)
                return
            self._holds.take(sibling, account, market)

    def riding(self, leg: Order) -> bool:
        """A waiting stop-loss whose take-profit holds for both."""
        return leg.oco_with is not None and leg.oco_with in self._orders and leg.status is PENDING_TRIGGER
