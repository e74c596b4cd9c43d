"""Positions: signed lots with their exact entry cost, realised P&L posted by the rounding rule.

`cost` is the signed entry value in tick-lots (price ticks x lots): exactly `cost + cost_rem /
cost_den` (0 <= cost_rem < cost_den). FIFO and LIFO consume recorded lots, so their cost is always
whole (`cost_den` 1). Average cost removes the exact proportional cost on a partial reduce, so the
average entry (cost / quantity) does not move until the position is increased or changes side; the
fraction is kept reduced, and in the rare case its denominator would pass 2**62 it is rounded down
to a multiple of 2**-62 tick-lot (far below any displayed digit; it cannot change a life's total).

Realised P&L follows the rounding rule: a *life* runs from flat to flat (a flip through zero ends
one and starts the next); `flow` is the life's cash flow in tick-lots (sales +, purchases -), so
the life's exact realised P&L is `flow + exact cost` (at flat: `flow` alone, whatever the method).
Every change posts the floor of that amount in the quote's minor units less what the life already
posted (`realized`), so a position opened and closed in many pieces pays exactly the floor of its
total, and each posting is rounded in the venue's favour.
"""

from __future__ import annotations

from collections import deque
from math import gcd
from typing import Final

from tradehall.domain.enums import CostBasis
from tradehall.domain.fixedpoint import Ratio

COST_DENOMINATOR_LIMIT: Final = 1 << 62
"""The largest denominator an average cost's fraction keeps (it fits the journal's 64-bit ints)."""


class Position:
    __slots__ = (
        "account_id",
        "cost",
        "cost_den",
        "cost_rem",
        "flow",
        "lots",
        "margin",
        "market",
        "quantity",
        "realized",
        "reserved_buy",
        "reserved_sell",
    )

    def __init__(self, account_id: str, market: str, method: CostBasis) -> None:
        self.account_id = account_id
        self.market = market
        self.quantity = 0
        self.cost = 0
        self.cost_rem = 0
        self.cost_den = 1
        self.flow = 0
        self.realized = 0  # minor units posted in the current (or, when flat, the last) life
        self.margin = 0
        self.reserved_buy = 0
        self.reserved_sell = 0
        self.lots: deque[list[int]] | None = None if method is CostBasis.AVERAGE else deque()

    def change(self, delta: int, price: int, method: CostBasis, notional: Ratio) -> tuple[int, int]:
        """Apply a fill of `delta` signed lots at `price` ticks.

        Returns (lots closed, realised P&L posted now in minor units); `realized` includes it, unless
        the fill flipped the position (the new life starts at zero)."""
        quantity = self.quantity
        if quantity == 0:
            self.flow = 0
            self.realized = 0
        if quantity == 0 or (quantity > 0) == (delta > 0):
            self.quantity = quantity + delta
            self.cost += delta * price
            self.flow -= delta * price
            if self.lots is not None:
                self.lots.append([delta, price])
            return 0, 0
        closing = min(abs(delta), abs(quantity))
        sign = 1 if quantity > 0 else -1
        keep = abs(quantity) - closing
        self.quantity = sign * keep
        self.flow += sign * closing * price
        if keep == 0:
            self._clear()
        elif self.lots is None:
            self._scale_cost(keep, abs(quantity))
        else:
            self.cost -= self._take_lots(closing, sign, method)
        posted = self._post(notional)
        rest = abs(delta) - closing
        if rest:
            opened = -sign * rest
            self.quantity = opened
            self.cost = opened * price
            self.flow = -opened * price
            self.realized = 0
            if self.lots is not None:
                self.lots.append([opened, price])
        return closing, posted

    def close_all(self, value_num: int, value_den: int, notional: Ratio) -> int:
        """Close the whole position for `value_num / value_den` tick-lots (a binary settlement or a
        void's half payout); returns the realised P&L posted now in minor units."""
        value = self.flow * value_den + value_num  # the life's exact P&L, over value_den
        self.quantity = 0
        self._clear()
        target = (value * notional.num) // (value_den * notional.den)
        posted = target - self.realized
        self.realized = target
        self.flow = 0
        return posted

    def exact_pnl(self) -> tuple[int, int]:
        """The current life's exact realised P&L in tick-lots, as (numerator, denominator)."""
        den = self.cost_den
        return (self.flow + self.cost) * den + self.cost_rem, den

    def pnl_at(self, price: int) -> tuple[int, int]:
        """Unrealised P&L at `price` in tick-lots, exactly, as (numerator, denominator)."""
        den = self.cost_den
        return (self.quantity * price - self.cost) * den - self.cost_rem, den

    def entry_value_up(self) -> int:
        """|exact cost| rounded up to a whole tick-lot (what margins are computed on)."""
        cost = self.cost
        if cost < 0:
            return -cost  # the floor of a negative cost: its magnitude rounded up
        return cost + 1 if self.cost_rem else cost

    def _post(self, notional: Ratio) -> int:
        num, den = self.exact_pnl()
        target = (num * notional.num) // (den * notional.den)
        posted = target - self.realized
        self.realized = target
        return posted

    def _clear(self) -> None:
        self.cost = 0
        self.cost_rem = 0
        self.cost_den = 1
        if self.lots is not None:
            self.lots.clear()

    def _scale_cost(self, keep: int, held: int) -> None:
        """Average cost: what `keep` of `held` lots carry of the exact cost, kept exact (reduced)."""
        num = (self.cost * self.cost_den + self.cost_rem) * keep
        den = self.cost_den * held
        common = gcd(num, den)
        num //= common
        den //= common
        if den > COST_DENOMINATOR_LIMIT:
            num = (num * COST_DENOMINATOR_LIMIT) // den
            den = COST_DENOMINATOR_LIMIT
            common = gcd(num, den)
            num //= common
            den //= common
        self.cost, self.cost_rem = divmod(num, den)
        self.cost_den = den

    def _take_lots(self, closing: int, sign: int, method: CostBasis) -> int:
        lots = self.lots
        assert lots is not None
        removed = 0
        need = closing
        while need:
            lot = lots[0] if method is CostBasis.FIFO else lots[-1]
            take = min(need, abs(lot[0]))
            removed += sign * take * lot[1]
            need -= take
            lot[0] -= sign * take
            if lot[0] == 0:
                if method is CostBasis.FIFO:
                    lots.popleft()
                else:
                    lots.pop()
        return removed
