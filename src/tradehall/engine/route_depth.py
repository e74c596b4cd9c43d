"""The smart router's depth: each eligible venue's executable levels keyed by all-in cost, merged and
walked in whole venue lots (`routing.Router.decide` makes the checks and turns the walk into a plan).

A decision first builds only each venue's share of the order and half again, and walks those levels
as long as it stays below every level left out; when it does not, every level is built and walked,
so the split never depends on the cut (`tests/unit/test_engine_routing.py` checks it against the
full walk on random books).
"""

from __future__ import annotations

from decimal import Decimal
from operator import itemgetter
from typing import Any, Final

from tradehall.domain.enums import Side
from tradehall.domain.fixedpoint import PPM
from tradehall.engine.constants import BUY, QUOTE_VENUE
from tradehall.engine.markets import Market

Level = tuple[int, int, int, int | None]
"""A level of the merged depth: (all-in cost key, lower is better; venue index; level number; lots,
None for as much as wanted)."""
COST: Final = itemgetter(0)
NO_BOUND: Final = 1 << 256
"""Above any price: a buy without a limit is bounded by nothing."""


def walk_levels(levels: list[Level], lots: list[int], need: int) -> tuple[list[int], list[int], int]:
    """Lots per venue taking `need` common units from `levels` (sorted: cheapest all-in first, ties to
    the venue listed first), the venues in the order the walk first took from them, and what is left
    of `need`. `lots` is each venue's lot in common units; a venue whose lot is larger than what is
    still needed takes nothing more."""
    taken = [0] * len(lots)
    order: list[int] = []
    for _key, index, _level, size in levels:
        lot = lots[index]
        whole = need // lot
        if whole == 0:
            if need == 0:
                break
            continue
        take = whole if size is None or size > whole else size
        if not taken[index]:
            order.append(index)
        taken[index] += take
        need -= take * lot
    return taken, order, need


def _walk_below(
    levels: list[Level], lots: list[int], need: int, bound: int
) -> tuple[list[int], list[int], int] | None:
    """`walk_levels` over levels built only below `bound` (see `venue_levels`' `share_lots`): the same
    result when the walk is done before any level at or above `bound`; None when it is not, so the
    caller builds every level and walks again (the decision never depends on the cut)."""
    taken = [0] * len(lots)
    order: list[int] = []
    for key, index, _level, size in levels:
        if key >= bound:
            return None
        lot = lots[index]
        whole = need // lot
        if whole == 0:
            continue
        take = whole if size is None or size > whole else size
        if not taken[index]:
            order.append(index)
        taken[index] += take
        need -= take * lot
        if not need:
            return taken, order, 0
    return (taken, order, need) if bound == NO_BOUND else None


def plan_split(levels: list[Level], lots: list[int], need: int) -> tuple[list[int], list[int]]:
    """`walk_levels` without what is left: lots per venue and the venues in the order taken."""
    taken, order, _left = walk_levels(levels, lots, need)
    return taken, order


_EXPONENTS: Final[dict[Decimal, tuple[int, int]]] = {}


def exponent_of(step: Decimal) -> tuple[int, int]:
    """A positive decimal step as (integer mantissa, exponent of ten); memoised (steps are few)."""
    found = _EXPONENTS.get(step)
    if found is None:
        _sign, digits, exponent = step.as_tuple()
        assert isinstance(exponent, int)
        found = _EXPONENTS[step] = (int("".join(map(str, digits))), exponent)
    return found


def venue_levels(
    out: list[Level],
    index: int,
    market: Market,
    side: Side,
    limit: int | None,
    tick: int,
    lot: int,
    need: int,
    share_lots: int,
) -> int:
    """Add venue `index`'s executable levels to `out`, best first, up to `need` common units or `limit`:
    all-in cost keys comparable across venues (the fill price in the route's finest tick, `tick` of
    them to one of this venue's, x (PPM +/- taker fee), negated for a sell so lower is better) and lots
    (None: as much as wanted). A quote venue's fill price is its quoted price with the market's slippage,
    capped at the limit, as `venues.plan_fills` fills it.

    Levels stop once they cover `share_lots` (this venue's lots; its part of the order with room to
    spare): the key of the first level left out is returned (`NO_BOUND` when none was), every level
    the walk may take is below it."""
    terms = market.terms
    buy = side is BUY
    append = out.append
    factor = tick * (PPM + terms.taker_ppm) if buy else -tick * (PPM - terms.taker_ppm)
    need_lots = -(-need // lot)  # a venue never takes more than the whole order
    covered = 0
    if market.venue is not QUOTE_VENUE:  # a book's levels: whole sizes, best first
        depth = market.book.side_levels(not buy)
        number = -1
        if buy:
            cap = limit if limit is not None else depth[-1][0] if depth else 0
            for number, (price, size) in enumerate(depth):
                if price > cap:
                    return NO_BOUND
                append((price * factor, index, number, size))
                covered += size
                if covered >= share_lots:
                    break
            else:
                return NO_BOUND
            number += 1  # the first level left out, if any and within the limit, bounds the walk
            if share_lots < need_lots and number < len(depth) and depth[number][0] <= cap:
                return depth[number][0] * factor
            return NO_BOUND
        floor = limit if limit is not None else 0
        for number, (price, size) in enumerate(depth):
            if price < floor:
                return NO_BOUND
            append((price * factor, index, number, size))
            covered += size
            if covered >= share_lots:
                break
        else:
            return NO_BOUND
        number += 1
        if share_lots < need_lots and number < len(depth) and depth[number][0] >= floor:
            return depth[number][0] * factor
        return NO_BOUND
    levels: list[Any] = market.quote.asks if buy else market.quote.bids
    quoted_size: int | None  # not `size`: typed int above, and a quoted size may be None (mypyc)
    number = -1
    # one loop per side, the limit as a bound (no limit: none a price reaches), no tests per level; a
    # level left out bounds the walk by its quoted price's key (those after it, skipped or not, cost more)
    if buy:
        cap = limit if limit is not None else NO_BOUND
        up = PPM + terms.slippage_ppm
        for number, (quoted, quoted_size) in enumerate(levels):
            if quoted > cap:
                return NO_BOUND
            if quoted_size is not None and quoted_size <= 0:
                continue
            fill = -(-quoted * up // PPM)
            append((cap * factor if fill > cap else fill * factor, index, number, quoted_size))
            if quoted_size is None:
                return NO_BOUND
            covered += quoted_size
            if covered >= share_lots:
                break
        else:
            return NO_BOUND
        number += 1
        if share_lots < need_lots and number < len(levels):
            fill = -(-levels[number][0] * up // PPM)
            return cap * factor if fill > cap else fill * factor
        return NO_BOUND
    floor = limit if limit is not None else 0  # a fill is at least 1 tick: no limit bounds nothing
    down = PPM - terms.slippage_ppm
    for number, (quoted, quoted_size) in enumerate(levels):
        if quoted < floor:
            return NO_BOUND
        if quoted_size is not None and quoted_size <= 0:
            continue
        fill = max(quoted * down // PPM, 1)
        append((floor * factor if fill < floor else fill * factor, index, number, quoted_size))
        if quoted_size is None:
            return NO_BOUND
        covered += quoted_size
        if covered >= share_lots:
            break
    else:
        return NO_BOUND
    number += 1
    if share_lots < need_lots and number < len(levels):
        fill = max(levels[number][0] * down // PPM, 1)
        return floor * factor if fill < floor else fill * factor
    return NO_BOUND


def on_tick(price_mantissa: int, price_exp: int, tick: tuple[int, int], side: Side) -> int:
    """The parent's limit (mantissa, exponent) on a venue's tick (mantissa, exponent), never beyond it:
    floored for a buy, ceiled for a sell."""
    mantissa, exp = tick
    base = min(exp, price_exp)
    numerator: int = price_mantissa * 10 ** (price_exp - base)
    denominator: int = mantissa * 10 ** (exp - base)
    return numerator // denominator if side is BUY else -(-numerator // denominator)


def split_depth(
    eligible: list[Market],
    side: Side,
    limits: list[int | None],
    tick_units: list[int],
    lot_units: list[int],
    need: int,
    share: int | None,
) -> tuple[list[int], list[int], int] | None:
    """The walk over the merged levels: lots per venue, venues in the order taken, what is left.
    With a `share` (common units), each venue's levels stop once they cover it and the result is
    None unless the walk ended below every level left out; without, every level is built."""
    levels: list[Level] = []
    bound = NO_BOUND
    for index, market in enumerate(eligible):
        lot = lot_units[index]
        need_lots = -(-need // lot)
        cut = venue_levels(
            levels,
            index,
            market,
            side,
            limits[index],
            tick_units[index],
            lot,
            need,
            need_lots if share is None else min(-(-share // lot), need_lots),
        )
        if cut < bound:
            bound = cut
    # each venue's levels are in order and ties go to the venue listed first, then the level: a stable
    # sort on the cost alone orders them as a sort of the whole tuples would, comparing only ints
    levels.sort(key=COST)
    while True:
        walked = _walk_below(levels, lot_units, need, bound)
        if walked is None:
            return None
        taken = walked[0]
        short = {i for i, lots_taken in enumerate(taken) if 0 < lots_taken < eligible[i].terms.min_lots}
        if not short:
            return walked
        # a venue that would get less than its minimum takes nothing
        levels = [level for level in levels if level[1] not in short]


__all__ = [
    "NO_BOUND",
    "Level",
    "exponent_of",
    "on_tick",
    "plan_split",
    "split_depth",
    "venue_levels",
    "walk_levels",
]
