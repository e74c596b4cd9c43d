"""Read-only views of the engine's state for adapters (API, WebSocket, CLI through the API).

Adapters read what they show through these functions, never by recomputing engine rules: an
account's equity here is the very figure the engine's assessment and margin rules use.
"""

from __future__ import annotations

from tradehall.engine.engine import Engine
from tradehall.engine.markets import Market
from tradehall.engine.valuation import Valuation, value_account
from tradehall.engine.valuation import valuation_price as _valuation_price

__all__ = ["Valuation", "account_valuation", "valuation_price"]


def account_valuation(engine: Engine, account_id: str) -> Valuation:
    """The account's equity and its parts in minor units of its currency (KeyError: no such account)."""
    return value_account(engine.accounts[account_id], engine.markets, engine.spot_market_for)


def valuation_price(market: Market) -> int | None:
    """The price positions and holdings in `market` are valued at: mark, else last, else mid."""
    return _valuation_price(market)
