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
safe point: before stops are looked at (`Stops.trigger`) and at the end of the command.
"""

from __future__ import annotations

import msgspec

from tradehall.domain import commands as cmds
from tradehall.domain.enums import CancelReason, OrderClass, OrderSide, Side
from tradehall.domain.errors import TradehallError, invalid_order
from tradehall.domain.events import OrderAmended
from tradehall.domain.fixedpoint import decimal_of, decimal_str
from tradehall.engine.checks import check_hold, check_trigger, default_trigger, order_price, would_cross
from tradehall.engine.constants import (
    BRACKET_CLASS,
    BUY,
    FILLED,
    FOK,
    GTC,
    IOC,
    LIMIT_ORDER,
    MARKET_OPEN,
    MARKET_ORDER,
    OCO_CLASS,
    OTO_CLASS,
    PENDING_TRIGGER,
    SELL,
    SIMPLE_CLASS,
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
from tradehall.engine.risk import mark_of
from tradehall.engine.state import EngineState

OCO = CancelReason.OCO
ORDER_CLASSES: dict[object, OrderClass] = {member.value: member for member in OrderClass}
NO = OrderSide.NO
USER = CancelReason.USER
UNFUNDED = CancelReason.UNFUNDED


def order_class_of(command: cmds.PlaceOrder) -> OrderClass:
    """The class a placement asks for: stated, or implied by plain `take_profit`/`stop_loss`
    prices on a simple order (both: a bracket, one: an oto)."""
    stated = getattr(command, "order_class")  # noqa: B009
    if stated is not None:
        found = ORDER_CLASSES.get(stated)  # an enum member or its plain string, without Enum.__call__
        if found is None:
            raise invalid_order(f"order_class {stated!r} is not one of {list(ORDER_CLASSES)}")
        if found is not SIMPLE_CLASS:
            return found
    if command.take_profit is not None and command.stop_loss is not None:
        return BRACKET_CLASS
    if command.take_profit is not None or command.stop_loss is not None:
        return OTO_CLASS
    return SIMPLE_CLASS


def check_exit_prices(
    market: Market,
    up: bool,
    reference: int | None,
    take_profit: int | None,
    stop_loss: int | None,
    requested: OrderSide | None = None,
) -> TradehallError | None:
    """Exits on the right sides (`up`: a long position, take-profit above, stop-loss below, in book
    ticks): of each other, and of the entry's price when there is one. A stop-loss at the entry price
    would risk nothing and protect nothing: refused. Messages are in the terms the order was entered
    in (a NO order's in NO prices, where "above" and "below" swap)."""
    tick = market.spec.tick_size
    no = requested is NO

    def shown(ticks: int) -> str:
        return decimal_str(decimal_of(market.terms.payout_ticks - ticks if no else ticks, tick))

    above, below = ("below", "above") if no else ("above", "below")
    if (
        take_profit is not None
        and stop_loss is not None
        and (take_profit <= stop_loss if up else take_profit >= stop_loss)
    ):
        return invalid_order(
            f"take_profit {shown(take_profit)} must be {above if up else below} stop_loss {shown(stop_loss)}"
        )
    if reference is None:
        return None
    if take_profit is not None and (take_profit <= reference if up else take_profit >= reference):
        return invalid_order(
            f"take_profit {shown(take_profit)} must be {above if up else below} the entry price "
            f"{shown(reference)}"
        )
    if stop_loss is not None and (stop_loss >= reference if up else stop_loss <= reference):
        return invalid_order(
            f"stop_loss {shown(stop_loss)} must be {below if up else above} the entry price "
            f"{shown(reference)} (a stop at the entry price protects nothing)"
        )
    return None


def entry_reference(market: Market, order: Order) -> int | None:
    """The price an entry is expected to fill at: its limit, or for a market order the best opposite
    price, else the last trade, else the mark."""
    if order.price is not None:
        return order.price
    best = market.best_ask() if order.side is BUY else market.best_bid()
    if best is not None:
        return best
    if market.last_price is not None:
        return market.last_price
    return mark_of(market)


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

    def check(
        self,
        command: cmds.PlaceOrder,
        order_class: OrderClass,
        order: Order,
        market: Market,
        account: Account,
    ) -> None:
        """Check a contingent placement's exits and put them on the order (raises; changes nothing
        of the state)."""
        take_value, stop_value, limit_value = command.take_profit, command.stop_loss, command.stop_loss_limit
        if order_class is SIMPLE_CLASS:
            if limit_value is not None:
                raise invalid_order("stop_loss limit_price needs a stop_loss stop_price")
            return
        if limit_value is not None and stop_value is None:
            raise invalid_order("stop_loss limit_price needs a stop_loss stop_price")
        if order_class is BRACKET_CLASS or order_class is OCO_CLASS:
            if take_value is None or stop_value is None:
                raise invalid_order(f"an {order_class} order needs take_profit and stop_loss")
        elif take_value is not None and stop_value is not None:
            raise invalid_order("an oto order has one exit: take_profit or stop_loss, not both")
        if order.type is not MARKET_ORDER and order.type is not LIMIT_ORDER:
            raise invalid_order(f"a {order_class} order is a market or limit order, not {order.type}")
        requested = order.requested_side
        take = None if take_value is None else order_price(market, requested, take_value, "take_profit")
        stop = None if stop_value is None else order_price(market, requested, stop_value, "stop_loss")
        limit = (
            None
            if limit_value is None
            else order_price(market, requested, limit_value, "stop_loss limit_price")
        )
        if order_class is OCO_CLASS:
            self.check_oco(order, market, account, take, stop)
            exit_side = order.side
            up = exit_side is SELL
            refusal = check_exit_prices(market, up, None, take, stop, requested)
        else:
            if market.kind is SPOT and order.side is SELL:
                raise invalid_order("on a spot market a contingent entry buys; its exits sell what it bought")
            exit_side = SELL if order.side is BUY else BUY
            up = order.side is BUY
            refusal = check_exit_prices(market, up, entry_reference(market, order), take, stop, requested)
        if refusal is not None:
            raise refusal
        if stop is not None:
            if limit is not None and (limit > stop if up else limit < stop):
                raise invalid_order(
                    f"stop_loss limit_price must be at or {'below' if up else 'above'} its stop_price"
                )
            exit_requested = OrderSide.SELL if exit_side is SELL else OrderSide.BUY
            refusal = check_trigger(market, exit_requested, exit_side, default_trigger(market), stop)
            if refusal is not None:
                raise refusal
        order.order_class = order_class
        order.take_profit = take
        order.stop_loss = stop
        order.stop_loss_limit = limit

    @staticmethod
    def check_oco(order: Order, market: Market, account: Account, take: int | None, stop: int | None) -> None:
        """An oco is an exit pair for a position the account has: the order is its take-profit."""
        if order.type is not LIMIT_ORDER or order.price != take:
            raise invalid_order("an oco order is a limit order at its take_profit limit_price")
        if order.time_in_force is IOC or order.time_in_force is FOK:
            raise invalid_order("an oco order waits for its exits: use gtc, day or gtd")
        assert take is not None
        if would_cross(market, order.side, take):
            raise invalid_order("an oco's take_profit would fill at once; place a limit order instead")
        if market.kind is SPOT:
            held = account.balance(market.spec.base).total if order.side is SELL else 0
            if order.side is BUY or held < order.quantity * market.terms.base_per_lot:
                raise invalid_order(
                    f"an oco exits a position: the account holds too little {market.spec.base} to sell"
                )
            return
        position = market.positions.get(account.account_id)
        open_lots = 0 if position is None else position.quantity
        closing = open_lots if order.side is SELL else -open_lots
        if closing < order.quantity:
            raise invalid_order("an oco exits a position: there is no position of that size to close")
        order.reduce_only = True

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
            state.events.append(self.amended(leg, priority_lost=False))
            return
        # resting or waiting for latency: a new object (the book deletes lazily), behind the queue
        grown = msgspec.structs.replace(
            leg, quantity=leg.quantity + delta, remaining=leg.remaining + delta, hold=0, covered=0
        )
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
        state.events.append(self.amended(grown, priority_lost=True))
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
                self._state.events.append(self.amended(sibling, priority_lost=False))
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

    def amended(self, order: Order, priority_lost: bool) -> OrderAmended:
        return OrderAmended(
            order_id=order.order_id,
            account_id=order.account_id,
            market=order.market,
            price=order.price,
            quantity=order.quantity,
            priority_lost=priority_lost,
            ts=self._state.now,
            stop_price=order.stop_price if order.status is PENDING_TRIGGER else None,
        )

    # --- amends --------------------------------------------------------------------------------

    def check_amend(
        self, order: Order, price: int | None, stop_price: int | None, quantity_given: bool
    ) -> TradehallError | None:
        """A contingent order's amend keeps its exits on their sides; an exit's size follows its entry."""
        if order.order_class is SIMPLE_CLASS:
            return None
        market = self._markets[order.market]
        is_exit = order.parent_order_id is not None or order.order_class is OCO_CLASS
        if is_exit:
            if quantity_given:
                return invalid_order("an exit's quantity follows its position; amend its price or cancel it")
            sibling = self._orders.get(order.oco_with) if order.oco_with is not None else None
            if sibling is None:
                return None
            up = order.side is SELL
            if order.type is LIMIT_ORDER:
                return check_exit_prices(market, up, None, price, sibling.stop_price)
            return check_exit_prices(market, up, None, sibling.price, stop_price)
        if price is None:
            return None
        return check_exit_prices(
            market, order.side is BUY, price, order.take_profit, order.stop_loss, order.requested_side
        )
