"""Read-only views of positions and of the venue's own books (its system accounts), split from
`engine.views`, which re-exports every name here: adapters keep importing `engine.views` only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tradehall.domain.enums import AccountKind
from tradehall.domain.market import MarketSpec
from tradehall.engine.engine import Engine
from tradehall.engine.markets import Market
from tradehall.engine.positions import Position
from tradehall.engine.valuation import unrealized_of
from tradehall.engine.valuation import valuation_price as _valuation_price

# ---- positions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position with what showing it needs: signed lots, entry cost (tick-lots), realised and
    unrealised P&L and margin (quote minor units; unrealised rounded down, as `valuation` shows it),
    the market's valuation price and the liquidation price (ticks, `valuation.liquidation_price`)."""

    account_id: str
    market: str
    spec: MarketSpec
    quantity: int
    cost: int
    realized: int
    unrealized_pnl: int
    margin: int
    price: int | None
    payout_ticks: int
    cost_remainder: int
    cost_denominator: int
    quote_places: int
    liquidation_price: int | None


def _position_view(engine: Engine, m: Market, p: Position) -> PositionView:
    return PositionView(
        account_id=p.account_id,
        market=m.symbol,
        spec=m.spec,
        quantity=p.quantity,
        cost=p.cost,
        realized=p.realized,
        unrealized_pnl=unrealized_of(m, p),
        margin=p.margin,
        price=_valuation_price(m),
        payout_ticks=m.terms.payout_ticks,
        cost_remainder=p.cost_rem,
        cost_denominator=p.cost_den,
        quote_places=engine.config.decimals(m.spec.quote),
        liquidation_price=engine.liquidation_price(p.account_id, m.symbol),
    )


def positions(engine: Engine, account_id: str) -> list[PositionView]:
    """The account's positions that are not flat, by market."""
    return [_position_view(engine, engine.markets[p.market], p) for p in engine.positions_of(account_id)]


def position(engine: Engine, account_id: str, symbol: str) -> PositionView | None:
    """The account's position in `symbol`, flat ones included (None: it never had one)."""
    m = engine.markets.get(symbol)
    p = None if m is None else m.positions.get(account_id)
    return None if m is None or p is None else _position_view(engine, m, p)


# ---- the venue's books --------------------------------------------------------------------------

_SYSTEM: Final = AccountKind.SYSTEM
_EXTERNAL: Final = "system:external"  # engine.ledger.SYSTEM_EXTERNAL: the outside world's side of deposits


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
