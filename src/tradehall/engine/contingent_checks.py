"""Checks of contingent orders (brackets, otos, ocos): pure functions run before a command's first
change, returning or raising the refusal (`check_contingent` also puts the checked exits on the order,
which is not yet in the state). The component that places and keeps the exits is `contingent.py`."""

from __future__ import annotations

from typing import Final

from tradehall.domain import commands as cmds
from tradehall.domain.enums import OrderClass, OrderSide
from tradehall.domain.errors import TradehallError, invalid_order
from tradehall.domain.fixedpoint import decimal_of, decimal_str
from tradehall.engine.checks import check_trigger, default_trigger, order_price, would_cross
from tradehall.engine.constants import (
    BRACKET_CLASS,
    BUY,
    FOK,
    IOC,
    LIMIT_ORDER,
    MARKET_ORDER,
    OCO_CLASS,
    OTO_CLASS,
    SELL,
    SIMPLE_CLASS,
    SPOT,
)
from tradehall.engine.ledger import Account
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.risk import mark_of

NO: Final = OrderSide.NO
ORDER_CLASSES: Final[dict[object, OrderClass]] = {member.value: member for member in OrderClass}


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


def check_contingent(
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
        None if limit_value is None else order_price(market, requested, limit_value, "stop_loss limit_price")
    )
    if order_class is OCO_CLASS:
        check_oco(order, market, account, take, stop)
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


def check_amend(
    orders: dict[int, Order],
    market: Market,
    order: Order,
    price: int | None,
    stop_price: int | None,
    quantity_given: bool,
) -> TradehallError | None:
    """A contingent order's amend keeps its exits on their sides; an exit's size follows its entry."""
    if order.order_class is SIMPLE_CLASS:
        return None
    is_exit = order.parent_order_id is not None or order.order_class is OCO_CLASS
    if is_exit:
        if quantity_given:
            return invalid_order("an exit's quantity follows its position; amend its price or cancel it")
        sibling = orders.get(order.oco_with) if order.oco_with is not None else None
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
