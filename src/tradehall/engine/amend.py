"""Amend: a resting order keeps its priority when it only shrinks at the same price; otherwise it is
replaced (checked first as if the old order were gone) and executes again. An untriggered stop takes
new terms and keeps waiting."""

from __future__ import annotations

from typing import Final

from tradehall.domain import commands as cmds
from tradehall.domain.enums import CancelReason
from tradehall.domain.errors import Code, TradehallError, invalid_order
from tradehall.engine.checks import (
    check_quantity,
    check_trigger,
    hold_amount,
    im_ppm,
    order_price,
    trail_of,
    trailing_stop_price,
    would_cross,
)
from tradehall.engine.constants import (
    PENDING_TRIGGER,
    QUOTE_VENUE,
    SIMPLE_CLASS,
    STOP_LIMIT_ORDER,
    STOP_ORDER,
    TRAILING_STOP_ORDER,
)
from tradehall.engine.contingent_checks import check_amend
from tradehall.engine.intake import OrderDesk
from tradehall.engine.ledger import Account
from tradehall.engine.lifecycle import replacement
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order

AMENDED_TO_FILLED: Final = CancelReason.AMENDED_TO_FILLED


class Amend(OrderDesk):
    def amend_order(self, command: cmds.AmendOrder) -> None:
        state = self._state
        order = self.owned_order(command.order_id, command.account_id)
        market = self._markets[order.market]
        account = self._accounts[order.account_id]
        if not market.open_for_orders:
            raise TradehallError(Code.MARKET_CLOSED, f"market {market.symbol} is {market.status}")
        retrail = command.trail_percent is not None or command.trail_price is not None
        if command.price is None and command.quantity is None and command.stop_price is None and not retrail:
            raise invalid_order("an amend needs a price, a quantity, a stop_price or a trail")
        if order.status is PENDING_TRIGGER:
            self.amend_stop(order, account, market, command)
            return
        if order.order_class is not SIMPLE_CLASS and command.quantity is not None:
            refusal = check_amend(self._orders, market, order, None, None, quantity_given=True)
            if refusal is not None:
                raise refusal
        if command.stop_price is not None or retrail:
            what = "stop_price" if command.stop_price is not None else "trail"
            if order.type in (STOP_ORDER, STOP_LIMIT_ORDER, TRAILING_STOP_ORDER):
                raise TradehallError(
                    Code.CONFLICT, f"order {order.order_id} has triggered: its {what} no longer moves"
                )
            raise invalid_order(f"a {order.type} order has no {what}")
        new_quantity = order.quantity
        if command.quantity is not None:
            new_quantity = market.terms.lots_of(command.quantity)
            if new_quantity <= 0:
                raise invalid_order("quantity must be positive")
            if market.terms.max_lots is not None and new_quantity > market.terms.max_lots:
                raise invalid_order(f"quantity is above the maximum {market.spec.max_quantity}")
        new_price = order.price
        if command.price is not None:
            new_price = order_price(market, order.requested_side, command.price, "price")
        assert new_price is not None
        if order.order_class is not SIMPLE_CLASS:
            refusal = check_amend(self._orders, market, order, new_price, None, quantity_given=False)
            if refusal is not None:
                raise refusal
        if new_quantity <= order.filled:
            state.books_touched.add(market.symbol)
            self._lifecycle.unrest(order, market)
            self._lifecycle.close(order, account, market, AMENDED_TO_FILLED)
            self._stops.trigger(market)
            state.emit_book_changes(market)
            return
        new_remaining = new_quantity - order.filled
        if new_price == order.price and new_remaining <= order.remaining:
            self.shrink(order, account, market, new_quantity, new_remaining)
            return
        if order.post_only and would_cross(market, order.side, new_price):
            raise invalid_order("post_only order would take liquidity")
        # Losing priority: check the new terms against the account as if the order were gone.
        trial = replacement(order, new_price, new_quantity, new_remaining)
        self._holds.check_replacement(trial, order, account, market)
        # The replacement is a new object: the old one may still sit in its level's queue (lazy deletion).
        state.books_touched.add(market.symbol)
        self._lifecycle.unrest(order, market)
        self._holds.release(order, account, market)
        trial.updated_ts = state.now
        self._orders[order.order_id] = trial
        account.open_orders[order.order_id] = trial
        self._holds.take(trial, account, market)
        self._state.events.append(self._lifecycle.amended(trial, priority_lost=True))
        if market.venue is QUOTE_VENUE:
            self._quote.execute(trial, account, market, new_price)
        else:
            self._book.execute(trial, account, market, new_price)
        self._stops.trigger(market)
        state.emit_book_changes(market)

    def shrink(
        self, order: Order, account: Account, market: Market, new_quantity: int, new_remaining: int
    ) -> None:
        """Same price, fewer lots: the order keeps its place and holds only what its rest can cost."""
        released_cover = max(0, order.covered - new_remaining)
        if market.venue is QUOTE_VENUE or not order.in_book:
            order.remaining = new_remaining
        else:
            self._state.books_touched.add(market.symbol)
            market.book.reduce(order, new_remaining)
        order.covered -= released_cover
        self._holds.adjust_reservation(order, market, -released_cover)
        order.quantity = new_quantity
        new_hold = min(
            order.hold,
            hold_amount(
                market, order.side, order.price, new_remaining, order.covered, im_ppm(account, market)
            ),
        )
        self._state.ledger.adjust_held(account, order.hold_currency, new_hold - order.hold)
        order.hold = new_hold
        order.updated_ts = self._state.now
        self._state.events.append(self._lifecycle.amended(order, priority_lost=False))
        self._state.emit_book_changes(market)

    def amend_stop(self, order: Order, account: Account, market: Market, command: cmds.AmendOrder) -> None:
        """An untriggered stop takes a new stop price, limit price (stop-limit), trail (trailing stop:
        its stop moves to the new trail from the same watermark) or quantity and keeps waiting; a stop
        price its trigger source has already reached is refused like at placement."""
        trailing = order.type is TRAILING_STOP_ORDER
        if command.price is not None and (order.type is STOP_ORDER or trailing):
            raise invalid_order(f"a {order.type} order takes no price")
        trail_ppm, trail_price = order.trail_ppm, order.trail_price
        stop_price = order.stop_price
        if trailing:
            if command.stop_price is not None:
                raise invalid_order("a trailing stop's stop_price follows its watermark: amend its trail")
            if command.trail_percent is not None or command.trail_price is not None:
                trail_ppm, trail_price = trail_of(market, command.trail_percent, command.trail_price)
                if order.hwm is not None:
                    trial_trail = order.copy()
                    trial_trail.trail_ppm, trial_trail.trail_price = trail_ppm, trail_price
                    stop_price = trailing_stop_price(market, trial_trail, order.hwm)
        elif command.trail_percent is not None or command.trail_price is not None:
            raise invalid_order(f"a {order.type} order has no trail")
        elif command.stop_price is not None:
            stop_price = order_price(market, order.requested_side, command.stop_price, "stop_price")
        price = order.price
        if command.price is not None:
            price = order_price(market, order.requested_side, command.price, "price")
        quantity = order.quantity
        if command.quantity is not None:
            quantity = market.terms.lots_of(command.quantity)
            refused = check_quantity(market, quantity)
            if refused is not None:
                raise refused
        assert order.trigger is not None
        if stop_price is not None:  # None: a trailing stop still waiting for its activation
            refusal = check_trigger(market, order.requested_side, order.side, order.trigger, stop_price)
            if refusal is not None:
                raise refusal
        if order.order_class is not SIMPLE_CLASS:
            refusal = check_amend(
                self._orders, market, order, price, stop_price, quantity_given=command.quantity is not None
            )
            if refusal is not None:
                raise refusal
        riding = self._contingent.riding(order)  # its take-profit holds for both: it holds nothing
        trial = order.copy()
        trial.price, trial.stop_price, trial.quantity, trial.remaining = price, stop_price, quantity, quantity
        trial.hold = trial.covered = 0
        if not riding:
            self._holds.check_replacement(trial, order, account, market)
        market.stops.remove(order)  # its sort keys change
        self._holds.release(order, account, market)
        order.price, order.stop_price, order.quantity, order.remaining = price, stop_price, quantity, quantity
        order.trail_ppm, order.trail_price = trail_ppm, trail_price
        order.hold, order.covered = trial.hold, trial.covered
        self._holds.take(order, account, market)
        market.stops.add(order)
        order.updated_ts = self._state.now
        self._state.events.append(self._lifecycle.amended(order, priority_lost=False))
