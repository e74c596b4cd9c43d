"""The book venue: orders match against the market's order book (price-time priority, STP)."""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import CancelReason, Side
from tradehall.engine.book import Fill
from tradehall.engine.constants import BUY, FOK, SPOT
from tradehall.engine.ledger import Account
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.venue_base import Venue

SELF_TRADE: Final = CancelReason.SELF_TRADE
FOK_UNFILLED: Final = CancelReason.FOK_UNFILLED


class BookVenue(Venue):
    def execute(self, order: Order, account: Account, market: Market, limit: int | None) -> None:
        if order.time_in_force is FOK and (
            limit is None
            or market.book.fillable(order.side, limit, order.remaining, account.account_id, market.terms.stp)[
                0
            ]
            < order.remaining
        ):
            self._lifecycle.close(order, account, market, FOK_UNFILLED)
            return
        if limit is not None:
            taker_stopped, filled = self.take(order, account, market, limit)
        else:
            taker_stopped, filled = False, False
        if order.remaining == 0:
            return
        if taker_stopped:
            self._lifecycle.close(order, account, market, SELF_TRADE)
        else:
            self.rest_or_close(order, account, market, limit, filled)

    def take(self, order: Order, account: Account, market: Market, limit: int) -> tuple[bool, bool]:
        """Match `order` up to `limit`, cancel the makers self-trade prevention removed, settle the
        fills and rebalance reservations: (the taker was stopped by STP, something filled)."""
        fills: list[Fill] = []
        stp_cancelled: list[Order] = []
        self._state.books_touched.add(market.symbol)
        _, taker_stopped = market.book.match(
            order.side, limit, order.remaining, account.account_id, market.terms.stp, fills, stp_cancelled
        )
        # the methods called through their components, not bound once before the loop: compiled,
        # that is a direct native call, and a bound method would be built on every take
        for maker in stp_cancelled:
            self._lifecycle.cancel(maker, market, SELF_TRADE, in_book=False)
        for maker, quantity, price in fills:
            self._postings.settle_fill(market, maker, order, account, quantity, price)
        if fills and market.kind is not SPOT:
            self.rebalance_reservations(
                market, {maker.account_id for maker, _, _ in fills} | {account.account_id}
            )
        return taker_stopped, bool(fills)

    def taking_terms(self, market: Market, order: Order) -> tuple[int | None, int | None]:
        fillable, worst = market.book.fillable(
            order.side,
            market.protection_limit(order.side),
            order.remaining,
            order.account_id,
            market.terms.stp,
        )
        return worst, fillable

    def liquidity_left(self, market: Market, side: Side) -> bool:
        return (market.book.best_ask() if side is BUY else market.book.best_bid()) is not None
