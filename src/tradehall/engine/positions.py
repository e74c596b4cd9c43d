"""Positions: signed lots with their entry cost, realised P&L by the account's cost-basis method.

`cost` is the signed entry value in tick-lots (price ticks x lots), exact. Average cost takes the
floor of the proportional cost on a partial reduce (the rest stays in the position, so the P&L
of a whole position's life is exact); FIFO and LIFO consume recorded lots.
"""

from __future__ import annotations

from collections import deque

from tradehall.domain.enums import CostBasis


class Position:
    __slots__ = (
        "account_id",
        "cost",
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
        self.realized = 0
        self.margin = 0
        self.reserved_buy = 0
        self.reserved_sell = 0
        self.lots: deque[list[int]] | None = None if method is CostBasis.AVERAGE else deque()

    def change(self, delta: int, price: int, method: CostBasis) -> tuple[int, int]:
        """Apply a fill of `delta` signed lots at `price` ticks; returns (lots closed, realised tick-lots)."""
        quantity = self.quantity
        if quantity == 0 or (quantity > 0) == (delta > 0):
            self.quantity = quantity + delta
            self.cost += delta * price
            if self.lots is not None:
                self.lots.append([delta, price])
            return 0, 0
        closing = min(abs(delta), abs(quantity))
        sign = 1 if quantity > 0 else -1
        if self.lots is None:
            removed = sign * (abs(self.cost) * closing // abs(quantity))
        else:
            removed = self._take_lots(closing, sign, method)
        realized = sign * closing * price - removed
        self.cost -= removed
        self.quantity = quantity + sign * -closing
        rest = abs(delta) - closing
        if rest:
            opened = -sign * rest
            self.quantity = opened
            self.cost = opened * price
            if self.lots is not None:
                self.lots.clear()
                self.lots.append([opened, price])
        elif self.quantity == 0:
            self.cost = 0
        return closing, realized

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
