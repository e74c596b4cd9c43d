"""Pre-trade limits: open orders, price band, notional, position size and an assessment tier's rules.

Pure: `check_limits` returns the refusal or None and changes nothing; it runs after the hold check
and before the order's first change (exchange-core's R1 before matching).
"""

from __future__ import annotations

from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.fixedpoint import PPM, ceil_div
from tradehall.engine.checks import im_ppm
from tradehall.engine.constants import BINARY, BUY, PENDING_TRIGGER, PERP, QUOTE_VENUE, SELL
from tradehall.engine.ledger import Account
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.risk import mark_of
from tradehall.engine.state import EngineState
from tradehall.engine.valuation import value_account
from tradehall.engine.venues import plan_fills


def equity_of(state: EngineState, account: Account) -> tuple[int, int]:
    """(equity, maintenance margin) in the account's currency, at the marks (`valuation`)."""
    valuation = value_account(account, state.markets, state.spot_market_for)
    return valuation.equity, valuation.maintenance


def check_limits(
    state: EngineState, order: Order, account: Account, market: Market, limit: int | None
) -> TradehallError | None:
    """Limits checked before anything changes: open orders, price band, notional, position, tier rules."""
    terms = market.terms
    config = state.config
    if len(account.open_orders) >= config.max_open_orders:
        return TradehallError(Code.RISK_LIMIT_EXCEEDED, f"at most {config.max_open_orders} open orders")
    tier_state = account.assessment
    if (
        tier_state is None
        and terms.band_ppm is None
        and terms.max_order_notional is None
        and terms.max_position_lots is None
    ):
        return None  # no limit configured beyond the funds already checked
    reference = mark_of(market)
    if (
        terms.band_ppm is not None
        and order.price is not None
        and reference is not None
        and abs(order.price - reference) * PPM > terms.band_ppm * reference
    ):
        return TradehallError(Code.RISK_LIMIT_EXCEEDED, "price is outside the band around the mark")
    price = limit if limit is not None else reference
    notional = terms.notional.ceil(price * order.quantity) if price is not None else 0
    money = state.money
    if terms.max_order_notional is not None and notional > terms.max_order_notional:
        quote = market.spec.quote
        return TradehallError(
            Code.RISK_LIMIT_EXCEEDED,
            f"the order's notional {money(notional, quote)} is above the market's maximum "
            f"{money(terms.max_order_notional, quote)}",
        )
    position = market.positions.get(account.account_id)
    held = position.quantity if position is not None else 0
    after = held + (order.quantity if order.side is BUY else -order.quantity)
    if (
        terms.max_position_lots is not None
        and abs(after) > abs(held)
        and abs(after) > terms.max_position_lots
    ):
        return TradehallError(Code.POSITION_LIMIT_EXCEEDED, "position would exceed the market's maximum")
    if tier_state is None:
        return None
    tier = tier_state.tier
    if tier.allowed_markets is not None and market.symbol not in tier.allowed_markets:
        return TradehallError(Code.RISK_LIMIT_EXCEEDED, f"market {market.symbol} is not allowed in this tier")
    if price is None:
        return None
    opening = abs(after) > abs(held)
    if tier.max_risk_per_trade is not None and opening:
        risk = order_risk(order, account, market, price)
        allowed = tier_state.initial * tier.max_risk_per_trade
        if risk > allowed:
            return TradehallError(
                Code.RISK_LIMIT_EXCEEDED, "the order risks more than the tier allows per trade"
            )
    equity, _ = equity_of(state, account)
    markets = state.markets
    if tier.max_leverage is not None and market.kind is PERP and opening:
        exposure = notional + sum(
            markets[s].terms.notional.ceil(abs(p.quantity) * (mark_of(markets[s]) or 0))
            for s, p in account.positions.items()
            if p.quantity and markets[s].kind is PERP
        )
        if exposure > equity * tier.max_leverage:
            return TradehallError(
                Code.RISK_LIMIT_EXCEEDED, "the order would exceed the tier's maximum leverage"
            )
    impact = immediate_impact(order, account, market, limit, reference)
    if impact is not None:
        after_equity = equity + impact
        currency = account.currency
        if after_equity < tier_state.total_floor:
            return TradehallError(
                Code.DRAWDOWN_VIOLATION,
                f"the fill would take equity to {money(after_equity, currency)}, below the "
                f"drawdown floor {money(tier_state.total_floor, currency)}",
            )
        if tier_state.max_daily_loss and after_equity < tier_state.daily_floor:
            return TradehallError(
                Code.DAILY_LOSS_LIMIT,
                f"the fill would take equity to {money(after_equity, currency)}, below the "
                f"daily loss floor {money(tier_state.daily_floor, currency)}",
            )
    return None


def order_risk(order: Order, account: Account, market: Market, price: int) -> int:
    """Lots x |price - stop_loss| plus the stop-loss exit's worst taker fee (lots x stop x taker fee)
    with a stop-loss; else the full cost (spot, binary) or margin (perp)."""
    terms = market.terms
    stop = order.stop_loss
    if stop is not None:
        exit_fee = ceil_div(terms.fee_numerator(order.quantity, stop, terms.taker_ppm), terms.fee_denominator)
        return terms.notional.ceil(order.quantity * abs(price - stop)) + exit_fee
    if market.kind is PERP:
        return terms.margin_of(price * order.quantity, im_ppm(account, market))
    if market.kind is BINARY and order.side is SELL:
        return terms.notional.ceil((terms.payout_ticks - price) * order.quantity)
    return terms.notional.ceil(price * order.quantity)


def immediate_impact(
    order: Order, account: Account, market: Market, limit: int | None, reference: int | None
) -> int | None:
    """Equity change of the part that would fill now: (mark - price) x lots per fill, minus fees."""
    terms = market.terms
    if order.status is PENDING_TRIGGER:
        return None
    if market.venue is QUOTE_VENUE:
        fills = [(price, lots) for _, price, lots in plan_fills(market, order.side, order.remaining, limit)]
    else:
        lots, worst = market.book.fillable(order.side, limit, order.remaining, account.account_id, terms.stp)
        fills = [(worst, lots)] if lots and worst is not None else []
    if not fills:
        return None
    mark = reference if reference is not None else fills[0][0]
    sign = 1 if order.side is BUY else -1
    impact = 0
    for price, lots in fills:
        impact += terms.notional.floor(sign * (mark - price) * lots)
        impact -= terms.fee_bound(lots, price)
    return impact
