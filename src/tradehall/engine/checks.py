"""Pre-trade checks: pure functions run before a command's first change.

A `check_*` function returns the refusal (a `TradehallError` the caller raises) or None; it reads the
state and changes nothing of it (`check_hold` fills in the terms of the order it is given, which is
not yet in the state). The price and hold arithmetic the checks and the mutating steps share lives
here too, so a hold is computed by one formula wherever it is taken.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Final

import msgspec

from tradehall.domain import commands as cmds
from tradehall.domain.enums import CancelReason, OrderSide, Side, StopTrigger
from tradehall.domain.errors import Code, TradehallError, invalid_order, invalid_request
from tradehall.domain.fixedpoint import PPM, ceil_div, decimal_of, decimal_str, parse_decimal, ppm_of
from tradehall.engine.constants import (
    BINARY,
    BOOK_VENUE,
    BUY,
    PENDING_TRIGGER,
    PERP,
    QUOTE_VENUE,
    SELL,
    SPOT,
    STOP_LIMIT_ORDER,
    STOP_ORDER,
    TRAILING_STOP_ORDER,
    TRIGGER_BID_ASK,
    TRIGGER_LAST,
    TRIGGER_MARK,
)
from tradehall.engine.ledger import Account
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.risk import mark_of
from tradehall.engine.state import EngineState

NO: Final = OrderSide.NO


_NUMBERS: Final[dict[Decimal, str]] = {}
"""Normalised text of the Decimals fingerprints have seen (prices and sizes repeat near a market)."""


def _number(value: object) -> str | None:
    """A fingerprint's decimal by value ("0.10" = "0.1"); what is not a decimal, as its text."""
    if value is None:
        return None
    if type(value) is Decimal and value and value.is_finite():  # -0 would normalise to "-0"
        text = _NUMBERS.get(value)
        if text is None:
            text = str(value.normalize())
            if len(_NUMBERS) > 100_000:
                _NUMBERS.clear()
            _NUMBERS[value] = text
        return text
    try:
        return str(parse_decimal(value, "value").normalize())
    except TradehallError:
        return str(value)


def fingerprint(command: cmds.PlaceOrder, trigger: StopTrigger | None) -> bytes:
    """What makes a repeated `client_order_id` "the same order": every parameter, decimals by value
    ("0.10" = "0.1") and the stop's effective trigger source. A short digest keeps the map small."""
    number = _number
    stop_price, take_profit, stop_loss = command.stop_price, command.take_profit, command.stop_loss
    fields: tuple[object, ...] = (
        str(getattr(command, "side")),  # noqa: B009
        str(getattr(command, "type")),  # noqa: B009
        number(command.quantity),
        number(command.price),
        None if stop_price is None else number(stop_price),
        str(getattr(command, "time_in_force")),  # noqa: B009
        command.expire_at,
        bool(command.post_only),
        bool(command.reduce_only),
        None if trigger is None else str(trigger),
        None if take_profit is None else number(take_profit),
        None if stop_loss is None else number(stop_loss),
    )
    trail_percent, trail_price = command.trail_percent, command.trail_price
    activation = command.activation_price
    if trail_percent is not None or trail_price is not None or activation is not None:
        # appended only when set: older fingerprints stay valid
        fields += (number(trail_percent), number(trail_price), number(activation))
    order_class = getattr(command, "order_class")  # noqa: B009
    stop_loss_limit = command.stop_loss_limit
    if order_class is not None or stop_loss_limit is not None:  # likewise
        fields += (None if order_class is None else str(order_class), number(stop_loss_limit))
    return hashlib.blake2b(msgspec.msgpack.encode(fields), digest_size=8).digest()


# --- prices and triggers ---------------------------------------------------------------------


def price_of(market: Market, value: object, what: str) -> int:
    """A command's price in ticks (raises: not on the grid, not positive, outside a binary's range)."""
    terms = market.terms
    price = terms.ticks_of(value, what)
    if price <= 0:
        raise invalid_order(f"{what} must be positive")
    if market.kind is BINARY and price >= terms.payout_ticks:
        raise invalid_order(f"{what} of a binary market must be between 0 and 1 exclusive")
    return price


def order_price(market: Market, requested: OrderSide, value: object, what: str) -> int:
    """An order's price as the book sees it: a NO at q is a YES sell at 1 - q."""
    price = price_of(market, value, what)
    if requested is NO:
        return market.terms.payout_ticks - price
    return price


def default_trigger(market: Market) -> StopTrigger:
    return TRIGGER_BID_ASK if market.venue is QUOTE_VENUE else TRIGGER_LAST


def stated_trigger(market: Market, command: cmds.PlaceOrder) -> StopTrigger | None:
    """The trigger source a placement asks for, the venue's default for a stop (not yet checked)."""
    if getattr(command, "trigger") is not None:  # noqa: B009
        return getattr(command, "trigger")  # type: ignore[no-any-return]  # noqa: B009
    if getattr(command, "type") in (STOP_ORDER, STOP_LIMIT_ORDER, TRAILING_STOP_ORDER):  # noqa: B009
        return default_trigger(market)
    return None


def trigger_price(market: Market, trigger: StopTrigger | None, side: Side) -> int | None:
    """The price a stop watches now (None: its source has no price yet, so it waits)."""
    if trigger is TRIGGER_LAST:
        return market.last_price
    if trigger is TRIGGER_MARK:
        return mark_of(market)
    return market.best_ask() if side is BUY else market.best_bid()


def check_trigger(
    market: Market, requested: OrderSide, side: Side, trigger: StopTrigger, stop: int
) -> TradehallError | None:
    """Binance's rule: a stop whose trigger source is already at or through it is refused, not
    fired at once at whatever the book holds."""
    terms = market.terms
    reference = trigger_price(market, trigger, side)
    if reference is None or (stop > reference if side is BUY else stop < reference):
        return None
    no = requested is NO  # shown in NO prices, as entered: a NO stop fires as NO rises
    if no:
        stop, reference = terms.payout_ticks - stop, terms.payout_ticks - reference
    rises = side is BUY or no
    source = {TRIGGER_LAST: "last trade price", TRIGGER_MARK: "mark price"}.get(
        trigger, "best ask" if rises else "best bid"
    )
    tick = market.spec.tick_size
    return invalid_order(
        f"a {requested} stop at {decimal_str(decimal_of(stop, tick))} would trigger immediately: the"
        f" {source} is {decimal_str(decimal_of(reference, tick))}, already at or"
        f" {'above' if rises else 'below'} it",
        CancelReason.WOULD_TRIGGER,
    )


def trail_of(market: Market, trail_percent: object, trail_price: object) -> tuple[int | None, int | None]:
    """A trailing stop's trail as (parts per million of the price, ticks): exactly one of the two,
    positive, a percentage below 100 with at most 4 decimals, a price distance on the tick grid."""
    if (trail_percent is None) == (trail_price is None):
        raise invalid_order("a trailing_stop needs exactly one of trail_percent and trail_price")
    if trail_percent is not None:
        percent = parse_decimal(trail_percent, "trail_percent")
        if not 0 < percent < 100:
            raise invalid_order(f"trail_percent must be above 0 and below 100, got {percent}")
        return ppm_of(percent / 100, "trail_percent / 100"), None
    ticks = market.terms.ticks_of(trail_price, "trail_price")
    if ticks <= 0:
        raise invalid_order("trail_price must be positive")
    return None, ticks


def trailing_stop_price(market: Market, order: Order, watermark: int) -> int:
    """The stop a trailing stop's watermark gives: a sell's high less the trail, a buy's low plus it.

    A percentage trail is rounded to the tick toward the market (a sell's stop up, a buy's down), so
    the stop is never further away than the trail asks, and kept at least one tick from the watermark.
    A binary NO order trails in NO prices (as entered), so its percentage is of the NO price."""
    terms = market.terms
    trail = order.trail_price
    if order.side is BUY:
        if trail is not None:
            return watermark + trail
        assert order.trail_ppm is not None
        return max(watermark * (PPM + order.trail_ppm) // PPM, watermark + 1)
    if trail is not None:
        return watermark - trail
    assert order.trail_ppm is not None
    if order.requested_side is NO:  # a NO buy: it trails the NO low, its stop above it
        low = terms.payout_ticks - watermark
        return terms.payout_ticks - max(low * (PPM + order.trail_ppm) // PPM, low + 1)
    return min(ceil_div(watermark * (PPM - order.trail_ppm), PPM), watermark - 1)


def check_activation(
    market: Market, requested: OrderSide, side: Side, trigger: StopTrigger, activation: int
) -> TradehallError | None:
    """Binance's rule: a sell trailing stop activates above the current trigger price, a buy below;
    an activation price the trigger source has already reached is refused (with no price yet, it waits)."""
    terms = market.terms
    reference = trigger_price(market, trigger, side)
    if reference is None or (activation > reference if side is SELL else activation < reference):
        return None
    no = requested is NO
    if no:
        activation, reference = terms.payout_ticks - activation, terms.payout_ticks - reference
    above = side is SELL and not no
    tick = market.spec.tick_size
    return invalid_order(
        f"a {requested} trailing stop's activation_price must be {'above' if above else 'below'} the"
        f" current trigger price {decimal_str(decimal_of(reference, tick))}, got"
        f" {decimal_str(decimal_of(activation, tick))}",
        CancelReason.WOULD_TRIGGER,
    )


def check_quantity(market: Market, quantity: int) -> TradehallError | None:
    """The bounds of a new order's (or a re-sized stop's) quantity in lots: positive, within min and max."""
    terms = market.terms
    if quantity <= 0:
        return invalid_order("quantity must be positive")
    if quantity < terms.min_lots:
        return invalid_order(f"quantity is below the minimum {market.spec.min_quantity}")
    if terms.max_lots is not None and quantity > terms.max_lots:
        return invalid_order(f"quantity is above the maximum {market.spec.max_quantity}")
    return None


def would_cross(market: Market, side: Side, price: int) -> bool:
    if market.venue is BOOK_VENUE:
        return market.book.would_cross(side, price)
    if side is BUY:
        best = market.best_ask()
        return best is not None and price >= best
    best = market.best_bid()
    return best is not None and price <= best


def check_mark_band(market: Market, mark: int) -> TradehallError | None:
    """A book market's mark must lie within `mark_band` of its book while the book has both sides
    (one bad tick must not decide an account); with an empty or one-sided book there is no band."""
    if market.venue is not BOOK_VENUE:
        return None
    bid, ask = market.book.best_bid(), market.book.best_ask()
    if bid is None or ask is None:
        return None
    band = market.terms.mark_band_ppm
    if bid * (PPM - band) <= mark * PPM <= ask * (PPM + band):
        return None
    spec = market.spec
    low = decimal_of(bid, spec.tick_size) * (1 - spec.mark_band)
    high = decimal_of(ask, spec.tick_size) * (1 + spec.mark_band)
    return invalid_request(
        f"mark {decimal_str(decimal_of(mark, spec.tick_size))} is outside the band "
        f"[{decimal_str(low.normalize())}, {decimal_str(high.normalize())}]: "
        f"{decimal_str((spec.mark_band * 100).normalize())} % beyond the book's bid and ask"
    )


def check_quote_fresh(state: EngineState, market: Market) -> TradehallError | None:
    if market.quote.ts is None:
        return TradehallError(Code.MARKET_DATA_UNAVAILABLE, f"no quote for {market.symbol} yet")
    max_age = market.terms.quote_max_age_ns
    if max_age is None:
        max_age = state.config.quote_max_age_ms * 1_000_000
    if state.now - market.quote.ts > max_age:
        return TradehallError(Code.MARKET_DATA_UNAVAILABLE, f"the quote for {market.symbol} is stale")
    return None


# --- holds -------------------------------------------------------------------------------------


def im_ppm(account: Account, market: Market) -> int:
    """The account's initial margin rate on a perp market: the market's, or higher by its leverage."""
    return max(market.terms.initial_margin_ppm, account.leverage.get(market.symbol, 0))


def hold_amount(market: Market, side: Side, limit: int | None, quantity: int, covered: int, im: int) -> int:
    """The most `quantity` lots at `limit` can cost: cash or margin for the uncovered lots, plus fees."""
    terms = market.terms
    if market.kind is SPOT and side is SELL:
        return quantity * terms.base_per_lot
    if limit is None:
        return 0
    worst = limit
    if side is SELL:  # a selling taker fills at bids up to the best one
        best_bid = market.best_bid()
        if best_bid is not None and best_bid > worst:
            worst = best_bid
    opening = quantity - covered
    if market.kind is SPOT:
        cash = terms.notional.ceil(limit * quantity)
    elif market.kind is PERP:
        # +1: the position's margin is rounded up once more when the fills join it
        cash = terms.margin_of(worst * opening, im) + 1 if opening else 0
    elif side is BUY:
        cash = terms.notional.ceil(limit * opening)
    else:
        cash = terms.notional.ceil((terms.payout_ticks - limit) * opening)
    return cash + terms.fee_bound(quantity, worst)


def check_hold(
    state: EngineState,
    order: Order,
    account: Account,
    market: Market,
    limit: int | None,
    lots: int | None = None,
) -> TradehallError | None:
    """Set the (not yet held) order's hold terms; the refusal when the account cannot afford them.

    `lots`: hold for only that many (a market order's fillable part)."""
    side = order.side
    terms = market.terms
    quantity = order.remaining if lots is None else min(lots, order.remaining)
    if order.status is PENDING_TRIGGER and (order.type is STOP_ORDER or order.type is TRAILING_STOP_ORDER):
        order.hold_currency = terms.quote
        return None  # a stop market order is checked when it triggers, at the prices of that moment
    if market.kind is SPOT:
        order.hold_currency = terms.quote if side is BUY else terms.base
    else:
        order.hold_currency = terms.quote
        position = market.positions.get(account.account_id)
        free = 0
        if position is not None:
            if side is SELL:
                free = max(0, position.quantity - position.reserved_sell)
            else:
                free = max(0, -position.quantity - position.reserved_buy)
        order.covered = min(quantity, free)
        if order.reduce_only and order.covered < quantity:
            return invalid_order("reduce_only order would increase the position", CancelReason.REDUCE_ONLY)
    order.hold = hold_amount(market, side, limit, quantity, order.covered, im_ppm(account, market))
    need = order.hold
    available = account.available(order.hold_currency)
    if need > available:
        money = state.money
        return TradehallError(
            Code.INSUFFICIENT_BALANCE,
            f"the order needs {money(need, order.hold_currency)}, "
            f"{money(available, order.hold_currency, bare=True)} available",
        )
    return None
