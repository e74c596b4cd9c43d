"""The quote venue: paper fills against the latest external quote, with slippage and depth.

A book market matches users' orders with each other (`book.OrderBook`). A quote market has no
internal matching: a marketable order takes the external ask (buy) or bid (sell) plus slippage,
walking the quoted depth when the feed gives one; what it takes is remembered until the next quote
replaces the levels, so two orders never fill from the same liquidity. Limit orders rest in a paper
list and fill at their limit price when a later quote crosses them.
"""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import Side
from tradehall.domain.fixedpoint import PPM, ceil_div
from tradehall.engine.constants import (
    BINARY,
    BUY,
)
from tradehall.engine.markets import Market

DEFAULT_SLIPPAGE_PPM: Final = {BINARY: 2_000}
"""0.2 % for prediction markets; 0.1 % for everything else."""
CRYPTO_SLIPPAGE_PPM: Final = 1_000


def slipped(market: Market, side: Side, price: int) -> int:
    """The quoted price moved against the taker by the market's slippage, on the tick grid."""
    slippage = market.terms.slippage_ppm
    result = ceil_div(price * (PPM + slippage), PPM) if side is BUY else price * (PPM - slippage) // PPM
    if market.kind is BINARY:
        return min(max(result, 1), market.terms.payout_ticks - 1)
    return max(result, 1)


def plan_fills(market: Market, side: Side, quantity: int, limit: int | None) -> list[tuple[int, int, int]]:
    """(level index, fill price, lots) an incoming order would take now; changes nothing.

    A limit order takes a level whose quoted price reaches its limit, at the slipped price capped
    at the limit.
    """
    levels = market.quote.asks if side is BUY else market.quote.bids
    plan: list[tuple[int, int, int]] = []
    need = quantity
    for index, (quoted, size) in enumerate(levels):
        if need == 0:
            break
        if limit is not None and (quoted > limit if side is BUY else quoted < limit):
            break
        price = slipped(market, side, quoted)
        if limit is not None:
            price = min(price, limit) if side is BUY else max(price, limit)
        take = need if size is None else min(need, size)
        if take > 0:
            plan.append((index, price, take))
            need -= take
    return plan


def consume(market: Market, side: Side, index: int, lots: int) -> None:
    """Remember liquidity taken at a quoted level until the next quote replaces it."""
    level = (market.quote.asks if side is BUY else market.quote.bids)[index]
    if level[1] is not None:
        level[1] -= lots


def crossing_size(market: Market, side: Side, limit: int) -> int | None:
    """Lots available to a resting limit at its price now (None: as much as it wants; 0: none)."""
    levels = market.quote.asks if side is BUY else market.quote.bids
    total = 0
    for quoted, size in levels:
        if quoted > limit if side is BUY else quoted < limit:
            break
        if size is None:
            return None
        total += size
    return total
