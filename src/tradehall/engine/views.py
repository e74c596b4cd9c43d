"""Read-only views of the engine's state for adapters (API, WebSocket, CLI through the API).

Adapters read what they show through these functions, never by recomputing engine rules: an
account's equity here is the very figure the engine's assessment and margin rules use.
"""

from __future__ import annotations

from tradehall.domain.enums import AccountKind
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


def currency_places(engine: Engine, currency: str) -> int:
    """Minor-unit decimals of `currency` (the configured ones, else the default)."""
    return engine.config.decimals(currency)


# ---- the venue's books --------------------------------------------------------------------------

_SYSTEM = AccountKind.SYSTEM
_EXTERNAL = "system:external"  # engine.ledger.SYSTEM_EXTERNAL: the outside world's side of deposits


def system_account_balances(engine: Engine) -> list[tuple[str, str, int]]:
    """(name, currency, total in minor units) of every system account per currency it has a balance
    in, sorted: fees, clearing, insurance, binary collateral and `system:external`, so conservation
    can be checked from outside."""
    rows = [
        (a.account_id, currency, balance.total)
        for a in engine.accounts.values()
        if a.kind is _SYSTEM
        for currency, balance in a.balances.items()
    ]
    return sorted(rows)


def money_by_currency(engine: Engine) -> dict[str, tuple[int, int, int]]:
    """Per currency, in minor units: (users' balances, system balances but `system:external`, the
    external account). Double entry makes the three sum to zero: `-external` is what came in from
    outside, deposits less withdrawals."""
    sums: dict[str, list[int]] = {}
    for a in engine.accounts.values():
        slot = 2 if a.account_id == _EXTERNAL else 1 if a.kind is _SYSTEM else 0
        for currency, balance in a.balances.items():
            sums.setdefault(currency, [0, 0, 0])[slot] += balance.total
    return {currency: (s[0], s[1], s[2]) for currency, s in sorted(sums.items())}
