"""Order lifecycle: the order constructors, acceptance, and ending an order (cancel, close).

`new_order` builds every order the engine makes itself (its closing orders, the system side of a
paper fill or a take-over); `replacement` builds an amend's replacement. A trader's placement is
built in `intake`, directly: it is the hot path, and a keyword-passing wrapper there costs ~5 %.
"""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import (
    CancelReason,
    FillOrigin,
    OrderSide,
    OrderStatus,
    OrderType,
    Side,
    StopTrigger,
    TimeInForce,
)
from tradehall.domain.events import OrderAccepted, OrderAmended, OrderCancelled
from tradehall.engine.constants import (
    BUY,
    CANCELLED,
    OPEN,
    PENDING_TRIGGER,
    QUOTE_VENUE,
    SIMPLE_CLASS,
    TRAILING_STOP_ORDER,
)
from tradehall.engine.holds import Holds
from tradehall.engine.ledger import Account
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.state import EngineState

# Event classes bound once: compiled, a `Final` is read from a C static, an imported class from the
# module dict at every construction.
_ORDER_ACCEPTED: Final = OrderAccepted
_ORDER_CANCELLED: Final = OrderCancelled

ORDER_BUY: Final = OrderSide.BUY
ORDER_SELL: Final = OrderSide.SELL


def new_order(
    order_id: int,
    account_id: str,
    market: str,
    side: Side,
    order_type: OrderType,
    time_in_force: TimeInForce,
    quantity: int,
    remaining: int,
    price: int | None = None,
    *,
    requested_side: OrderSide | None = None,
    stop_price: int | None = None,
    expire_at: int | None = None,
    post_only: bool = False,
    reduce_only: bool = False,
    client_order_id: str | None = None,
    created_ts: int = 0,
    status: OrderStatus = OPEN,
    trigger: StopTrigger | None = None,
    updated_ts: int = 0,
    fee_exempt: bool = False,
    origin: FillOrigin | None = None,
    hold_currency: str = "",
) -> Order:
    """An order as the engine keeps it (`requested_side` defaults to the side itself)."""
    return Order(
        order_id=order_id,
        account_id=account_id,
        market=market,
        side=side,
        requested_side=(ORDER_BUY if side is BUY else ORDER_SELL)
        if requested_side is None
        else requested_side,
        type=order_type,
        time_in_force=time_in_force,
        price=price,
        stop_price=stop_price,
        quantity=quantity,
        remaining=remaining,
        expire_at=expire_at,
        post_only=post_only,
        reduce_only=reduce_only,
        client_order_id=client_order_id,
        created_ts=created_ts,
        status=status,
        trigger=trigger,
        updated_ts=updated_ts,
        fee_exempt=fee_exempt,
        origin=origin,
        hold_currency=hold_currency,
    )


def replacement(order: Order, price: int, quantity: int, remaining: int) -> Order:
    """The order an amend that loses priority puts in place of `order`: its copy on the new terms,
    without what a new order starts without (nothing held, accrued or resting yet, no stop trail); its
    fills, status and stop terms stay, unchanged by the check of its hold."""
    trial = order.copy()
    trial.price, trial.quantity, trial.remaining = price, quantity, remaining
    trial.priority = trial.covered = trial.hold = trial.fee_accrued = 0
    trial.in_book, trial.hold_currency, trial.fee_exempt = False, "", False
    trial.cancel_reason = trial.origin = None
    trial.trail_ppm = trial.trail_price = trial.activation_price = trial.hwm = None
    return trial


class Lifecycle:
    def __init__(self, state: EngineState, holds: Holds) -> None:
        self._state = state
        self._holds = holds
        self._orders = state.orders
        self._accounts = state.accounts
        self._unregister = state.unregister

    def emit_accepted(self, order: Order) -> None:
        """The order's acceptance: its time, and its event unless the engine is replaying."""
        state = self._state
        if state.replaying:
            order.updated_ts = state.now
        else:
            state.events.append(self.accepted(order))

    def accepted(self, order: Order) -> OrderAccepted:
        now = self._state.now
        order.updated_ts = now
        return _ORDER_ACCEPTED(
            order_id=order.order_id,
            account_id=order.account_id,
            market=order.market,
            side=order.side,
            requested_side=order.requested_side,
            type=order.type,
            time_in_force=order.time_in_force,
            quantity=order.quantity,
            price=order.price,
            stop_price=order.stop_price,
            expire_at=order.expire_at,
            post_only=order.post_only,
            reduce_only=order.reduce_only,
            client_order_id=order.client_order_id,
            status=order.status,
            ts=now,
            trigger=order.trigger,
            trail_ppm=order.trail_ppm,
            trail_price=order.trail_price,
            activation_price=order.activation_price,
            hwm=order.hwm,
            order_class=order.order_class,
            parent_order_id=order.parent_order_id,
            take_profit=order.take_profit,
            stop_loss=order.stop_loss,
            stop_loss_limit=order.stop_loss_limit,
        )

    def amended(self, order: Order, priority_lost: bool) -> OrderAmended:
        """An amend's event on the order's new terms, now; an untriggered stop's also carries its stop
        price and trail (both may move)."""
        waiting = order.status is PENDING_TRIGGER
        return OrderAmended(
            order_id=order.order_id,
            account_id=order.account_id,
            market=order.market,
            price=order.price,
            quantity=order.quantity,
            priority_lost=priority_lost,
            ts=self._state.now,
            stop_price=order.stop_price if waiting else None,
            trail_ppm=order.trail_ppm if waiting else None,
            trail_price=order.trail_price if waiting else None,
        )

    def close(self, order: Order, account: Account, market: Market, reason: CancelReason) -> None:
        """End an order that is not (or no longer) in the book: release its hold, emit the cancel."""
        self._holds.release(order, account, market)
        now = self._state.now
        order.status = CANCELLED
        order.cancel_reason = reason
        order.updated_ts = now
        if order.order_id in self._orders:
            self._unregister(order, account)
        if order.order_class is not SIMPLE_CLASS:
            self._state.contingent_pending.append(order)  # its sibling or entry may need to follow
        if self._state.replaying:
            return
        self._state.events.append(
            _ORDER_CANCELLED(
                order_id=order.order_id,
                account_id=order.account_id,
                market=order.market,
                filled_quantity=order.filled,
                reason=reason,
                ts=now,
                stop_price=order.stop_price if order.type is TRAILING_STOP_ORDER else None,
                hwm=order.hwm,
            )
        )

    def cancel(self, order: Order, market: Market, reason: CancelReason, in_book: bool = True) -> None:
        if in_book:
            self._state.books_touched.add(market.symbol)
            self.unrest(order, market)
        self.close(order, self._accounts[order.account_id], market, reason)

    @staticmethod
    def unrest(order: Order, market: Market) -> None:
        """Take an open order out of wherever it waits: book, paper list, latency queue or stops."""
        if order.status is PENDING_TRIGGER:
            market.stops.remove(order)
        elif order.in_book:
            if market.venue is QUOTE_VENUE:
                (market.quote.paper_bids if order.side is BUY else market.quote.paper_asks).remove(order)
                order.in_book = False
            else:
                market.book.remove(order)
        elif order in market.quote.delayed:
            market.quote.delayed.remove(order)
