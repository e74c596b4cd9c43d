"""Valuation: the one place that says what an account is worth.

equity = cash in the account's currency
       + holdings of other assets (a spot market's base) x that market's price, in the account's currency
       + perp positions' unrealised P&L (their margin never left the cash balance)
       + binary positions' contracts at the price (their cost left the cash balance when bought).

The price of a market is its mark, else its last trade, else the mid of its book (or quotes). Every
figure is an integer of the account currency's minor units, each term rounded on its own (holdings
down, positions half to even), so the engine's rules, the API and the read models agree to the unit.
The engine's rules (`Engine._equity`), the API (`engine.views.account_valuation`) and anything else
that shows equity call these functions; nothing else computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tradehall.engine.constants import PERP, SPOT
from tradehall.engine.ledger import Account
from tradehall.engine.markets import Market
from tradehall.engine.positions import Position
from tradehall.engine.risk import maintenance_of


def valuation_price(market: Market) -> int | None:
    """Mark, else last trade, else the mid of the best bid and ask (None: no price at all yet)."""
    if market.mark_price is not None:
        return market.mark_price
    if market.last_price is not None:
        return market.last_price
    bid, ask = market.best_bid(), market.best_ask()
    if bid is not None and ask is not None:
        return (bid + ask) // 2
    return None


def position_value(market: Market, position: Position) -> int:
    """What a perp or binary position adds to equity, in quote minor units (spot: see `holding_value`).

    Perp: its unrealised P&L. Binary: YES contracts at the price, NO contracts at payout - price;
    without any price yet a binary position counts at its cost."""
    quantity = position.quantity
    if quantity == 0:
        return 0
    price = valuation_price(market)
    notional = market.notional
    if market.kind is PERP:
        return 0 if price is None else notional.round(quantity * price - position.cost)
    if price is None:
        if quantity > 0:
            return notional.round(position.cost)
        return notional.round(-quantity * market.payout_ticks + position.cost)
    if quantity > 0:
        return notional.round(quantity * price)
    return notional.round(-quantity * (market.payout_ticks - price))


def unrealized_of(market: Market, position: Position) -> int:
    """A position's unrealised P&L at the price, in quote minor units (0 without a price)."""
    price = valuation_price(market)
    if position.quantity == 0 or price is None:
        return 0
    return market.notional.round(position.quantity * price - position.cost)


def holding_value(market: Market, base_minor: int) -> int:
    """`base_minor` minor units of a spot market's base at its price, in its quote's minor units,
    rounded down (0 without a price: nothing to convert at)."""
    price = valuation_price(market)
    if price is None or base_minor == 0:
        return 0
    notional = market.notional
    return (base_minor * price * notional.num) // (notional.den * market.base_per_lot)


SpotLookup = Callable[[str, str], Market | None]
"""(asset, currency) -> the spot market that prices `asset` in `currency`, or None."""


@dataclass(frozen=True, slots=True)
class Valuation:
    """An account's worth in minor units of its currency (see the module's formula)."""

    currency: str
    cash: int
    holdings: int
    positions: int
    unrealized_pnl: int
    realized_pnl: int
    maintenance: int

    @property
    def equity(self) -> int:
        return self.cash + self.holdings + self.positions


def value_account(account: Account, markets: Mapping[str, Market], spot_market: SpotLookup) -> Valuation:
    """The account's valuation at the current prices. Positions and holdings in markets that do not
    settle in the account's currency are left out (there is no price to convert them at)."""
    currency = account.currency
    cash_balance = account.balances.get(currency)
    cash = 0 if cash_balance is None else cash_balance.total
    holdings = 0
    for asset, balance in account.balances.items():
        total = balance.total
        if asset == currency or total == 0:
            continue
        market = spot_market(asset, currency)
        if market is not None:
            holdings += holding_value(market, total)
    value = unrealized = realized = maintenance = 0
    for symbol, position in account.positions.items():
        market = markets[symbol]
        if market.spec.quote != currency:
            continue
        realized += position.realized
        if position.quantity == 0:
            continue
        unrealized += unrealized_of(market, position)
        if market.kind is SPOT:
            continue  # the holding itself is in `holdings`, from the balance
        value += position_value(market, position)
        maintenance += maintenance_of(market, position)
    return Valuation(
        currency=currency,
        cash=cash,
        holdings=holdings,
        positions=value,
        unrealized_pnl=unrealized,
        realized_pnl=realized,
        maintenance=maintenance,
    )
