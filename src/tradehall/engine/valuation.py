"""Valuation: the one place that says what an account is worth, and when its perp positions go.

equity = cash in the account's currency
       + holdings of other assets (a spot market's base) x that market's price, in the account's currency
       + perp positions' unrealised P&L (their margin never left the cash balance)
       + binary positions' contracts at the price (their cost left the cash balance when bought).

The price of a market is its mark, else its last trade, else the mid of its book (or quotes).

Every term is kept exact, as a fraction over one common denominator (`Valuation.scale`): tick-lots
times a market's notional ratio, a holding's base units over its units per lot, maintenance
margin's ppm. Two things are decided on the exact figures: liquidation (exact equity at or below
exact maintenance, `Valuation.liquidatable`) and the liquidation price (`liquidation_price`, the
first tick at which that becomes true). What is shown, and what the assessment rules compare, is
rounded in the venue's favour in the currency's minor unit: equity, holdings, positions and
unrealised P&L down, maintenance up. An assessment floor or target is a whole number of minor
units, so comparing the floored equity with it decides exactly as the exact equity would.

The engine's rules (`Supervisor`, `limits.equity_of`), the API (`engine.views.account_valuation`,
the positions' views) and anything else that shows equity or a liquidation price call these
functions; nothing else computes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import lcm

from tradehall.domain.fixedpoint import PPM, add_fractions, ceil_div
from tradehall.engine.constants import PERP, SPOT
from tradehall.engine.ledger import Account
from tradehall.engine.markets import Market
from tradehall.engine.positions import Position
from tradehall.engine.risk import mark_of


def valuation_price(market: Market) -> int | None:
    """Mark, else last trade, else the mid of the best bid and ask (None: no price at all yet)."""
    if market.marks.price is not None:
        return market.marks.price
    if market.last_price is not None:
        return market.last_price
    bid, ask = market.best_bid(), market.best_ask()
    if bid is not None and ask is not None:
        return (bid + ask) // 2
    return None


def position_value_exact(market: Market, position: Position) -> tuple[int, int]:
    """What a perp or binary position adds to equity, as (numerator, denominator) of quote minor
    units (spot: see `holding_value`).

    Perp: its unrealised P&L. Binary: YES contracts at the price, NO contracts at payout - price;
    without any price yet a binary position counts at its cost."""
    quantity = position.quantity
    notional = market.terms.notional
    if quantity == 0:
        return 0, 1
    price = valuation_price(market)
    if market.kind is PERP:
        if price is None:
            return 0, 1
        num, den = position.pnl_at(price)
        return num * notional.num, den * notional.den
    if price is None:
        ticks = position.cost if quantity > 0 else -quantity * market.terms.payout_ticks + position.cost
    elif quantity > 0:
        ticks = quantity * price
    else:
        ticks = -quantity * (market.terms.payout_ticks - price)
    return ticks * notional.num, notional.den


def position_value(market: Market, position: Position) -> int:
    """`position_value_exact` in quote minor units, rounded down."""
    num, den = position_value_exact(market, position)
    return num // den


def unrealized_of(market: Market, position: Position) -> int:
    """A position's unrealised P&L at the price in quote minor units, rounded down (0 without a price)."""
    price = valuation_price(market)
    if position.quantity == 0 or price is None:
        return 0
    num, den = position.pnl_at(price)
    return (num * market.terms.notional.num) // (den * market.terms.notional.den)


def maintenance_exact(market: Market, position: Position) -> tuple[int, int]:
    """A perp position's maintenance margin, `maintenance_margin` x |notional at the mark|, as
    (numerator, denominator) of quote minor units; (0, 1) for anything else or without a mark."""
    mark = mark_of(market)
    if market.kind is not PERP or position.quantity == 0 or mark is None:
        return 0, 1
    notional = market.terms.notional
    return (
        abs(position.quantity) * mark * notional.num * market.terms.maintenance_margin_ppm,
        notional.den * PPM,
    )


def maintenance_of(market: Market, position: Position) -> int:
    """`maintenance_exact` in quote minor units, rounded up."""
    num, den = maintenance_exact(market, position)
    return ceil_div(num, den)


def holding_value_exact(market: Market, base_minor: int) -> tuple[int, int]:
    """`base_minor` minor units of a spot market's base at its price, as (numerator, denominator) of
    its quote's minor units ((0, 1) without a price: nothing to convert at)."""
    price = valuation_price(market)
    if price is None or base_minor == 0:
        return 0, 1
    notional = market.terms.notional
    return base_minor * price * notional.num, notional.den * market.terms.base_per_lot


def holding_value(market: Market, base_minor: int) -> int:
    """`holding_value_exact` in quote minor units, rounded down."""
    num, den = holding_value_exact(market, base_minor)
    return num // den


SpotLookup = Callable[[str, str], Market | None]
"""(asset, currency) -> the spot market that prices `asset` in `currency`, or None."""


@dataclass(slots=True)
class Valuation:
    """An account's worth in minor units of its currency (see the module's formula and rounding).

    `exact_equity / scale` and `exact_maintenance / scale` are the exact figures; the other fields
    are rounded for people and for the assessment rules: `equity`, `holdings`, `positions` and
    `unrealized_pnl` down, `maintenance` up. Built afresh on every call and never changed (not
    declared frozen only because a frozen dataclass costs several times as much to build, and the
    engine values accounts after every command)."""

    currency: str
    cash: int
    holdings: int
    positions: int
    unrealized_pnl: int
    realized_pnl: int
    maintenance: int
    equity: int
    scale: int
    exact_equity: int
    exact_maintenance: int

    @property
    def liquidatable(self) -> bool:
        """The liquidation rule: perp positions that need maintenance margin, and exact equity at or
        below exact maintenance."""
        return self.exact_maintenance > 0 and self.exact_equity <= self.exact_maintenance


def value_account(account: Account, markets: Mapping[str, Market], spot_market: SpotLookup) -> Valuation:
    """The account's valuation at the current prices. Positions and holdings in markets that do not
    settle in the account's currency are left out (there is no price to convert them at)."""
    currency = account.currency
    cash_balance = account.balances.get(currency)
    cash = 0 if cash_balance is None else cash_balance.total
    holdings, holdings_den = 0, 1
    for asset, balance in account.balances.items():
        total = balance.total
        if asset == currency or total == 0:
            continue
        market = spot_market(asset, currency)
        if market is not None:
            num, den = holding_value_exact(market, total)
            holdings, holdings_den = add_fractions(holdings, holdings_den, num, den)
    values, values_den = 0, 1
    unrealized, unrealized_den = 0, 1
    maintenance, maintenance_den = 0, 1
    realized = 0
    for symbol, position in account.positions.items():
        market = markets[symbol]
        if market.spec.quote != currency:
            continue
        realized += position.realized
        if position.quantity == 0:
            continue
        kind = market.kind
        price = valuation_price(market)
        if price is not None:
            notional = market.terms.notional
            num, den = position.pnl_at(price)
            num, den = num * notional.num, den * notional.den
            unrealized, unrealized_den = add_fractions(unrealized, unrealized_den, num, den)
            if kind is PERP:  # a perp's value is its unrealised P&L
                values, values_den = add_fractions(values, values_den, num, den)
        if kind is PERP:
            num, den = maintenance_exact(market, position)
            maintenance, maintenance_den = add_fractions(maintenance, maintenance_den, num, den)
        elif kind is not SPOT:  # binary; a spot holding is in `holdings`, from the balance
            num, den = position_value_exact(market, position)
            values, values_den = add_fractions(values, values_den, num, den)
    equity, equity_den = add_fractions(cash, 1, holdings, holdings_den)
    equity, equity_den = add_fractions(equity, equity_den, values, values_den)
    scale = equity_den if equity_den % maintenance_den == 0 else lcm(equity_den, maintenance_den)
    return Valuation(
        currency,
        cash,
        holdings // holdings_den,
        values // values_den,
        unrealized // unrealized_den,
        realized,
        -((-maintenance) // maintenance_den),
        equity // equity_den,
        scale,
        equity * (scale // equity_den),
        maintenance * (scale // maintenance_den),
    )


def liquidation_price(valuation: Valuation, market: Market, position: Position) -> int | None:
    """The first tick price at which this perp position's account is liquidated, the other marks
    fixed: long, the exact price where equity meets maintenance floored to the tick; short, ceiled.
    None for anything but a perp position with a mark, or when no price liquidates it.

    Equity and maintenance are both linear in this market's mark p (m: the mark now, S: the scale):
        liquidated  <=>  (p - m) K <= (M - E) den PPM,   K = S num (q PPM - |q| mm)
    with E and M the exact equity and maintenance numerators of `valuation`. K has the sign of q."""
    quantity = position.quantity
    mark = mark_of(market)
    if market.kind is not PERP or quantity == 0 or mark is None:
        return None
    notional = market.terms.notional
    k = (
        valuation.scale
        * notional.num
        * (quantity * PPM - abs(quantity) * market.terms.maintenance_margin_ppm)
    )
    room = (valuation.exact_maintenance - valuation.exact_equity) * notional.den * PPM
    if k > 0:
        price = mark + room // k
    elif k < 0:
        price = mark + ceil_div(-room, -k)
    else:
        return None  # a long with 100 % maintenance: the price does not move the rule
    return price if price > 0 else None
