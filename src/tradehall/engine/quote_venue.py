"""The quote venue: orders fill against an external quote (paper trading), after an optional latency.

Market and marketable orders take the quoted levels with slippage (`venues.plan_fills`); limits that
do not cross rest on the market's paper lists and fill, as makers at their limit, when a later quote
crosses them.
"""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import CancelReason, Side
from tradehall.engine.constants import BUY, FOK, IOC, LIMIT_ORDER, MARKET_ORDER, SELL, SPOT
from tradehall.engine.ledger import SYSTEM_VENUE, Account
from tradehall.engine.lifecycle import new_order
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.venue_base import Venue
from tradehall.engine.venues import consume, crossing_size, plan_fills

FOK_UNFILLED: Final = CancelReason.FOK_UNFILLED


class QuoteVenue(Venue):
    def execute(self, order: Order, account: Account, market: Market, limit: int | None) -> None:
        """Fill against the external quote now (or after the market's latency), then rest or close."""
        delay = market.terms.latency_of(order.order_id)
        if delay and order not in market.quote.delayed and order.created_ts + delay > self._state.now:
            market.quote.delayed.append(order)
            if order.order_id not in self._orders:
                self._register(order, account)
            return
        plan = plan_fills(
            market,
            order.side,
            order.remaining,
            limit if order.type is not MARKET_ORDER else market.protection_limit(order.side),
        )
        if order.time_in_force is FOK and sum(lots for _, _, lots in plan) < order.remaining:
            self._lifecycle.close(order, account, market, FOK_UNFILLED)
            return
        for index, price, lots in plan:
            consume(market, order.side, index, lots)
            self.venue_fill(market, order, account, lots, price, SYSTEM_VENUE)
        if plan and market.kind is not SPOT:
            self.rebalance_reservations(market, {account.account_id})
        if order.remaining:
            self.rest_or_close(order, account, market, limit, bool(plan))

    def taking_terms(self, market: Market, order: Order) -> tuple[int | None, int | None]:
        plan = plan_fills(market, order.side, order.remaining, market.protection_limit(order.side))
        if not plan:
            return None, 0
        prices = [price for _, price, _ in plan]
        best_case = max(prices) if order.side is BUY else min(prices)
        return best_case, sum(taken for _, _, taken in plan)

    def liquidity_left(self, market: Market, side: Side) -> bool:
        levels = market.quote.asks if side is BUY else market.quote.bids
        return any(size is None or size > 0 for _, size in levels)

    def fill_crossed_paper(self, market: Market) -> None:
        """Resting paper limits the new quote crosses fill at their limit, best first."""
        accounts = self._accounts
        for paper, side in ((market.quote.paper_bids, BUY), (market.quote.paper_asks, SELL)):
            while paper:
                order = paper[0]
                assert order.price is not None
                available = crossing_size(market, side, order.price)
                if available == 0:
                    break
                account = accounts[order.account_id]
                take = order.remaining if available is None else min(available, order.remaining)
                levels = market.quote.asks if side is BUY else market.quote.bids
                left = take
                for index, (quoted, size) in enumerate(levels):
                    if left == 0 or (quoted > order.price if side is BUY else quoted < order.price):
                        break
                    part = left if size is None else min(left, size)
                    if part:
                        consume(market, side, index, part)
                        left -= part
                if order.remaining == take:
                    paper.remove(order)
                    order.in_book = False
                self.fill_resting(market, order, account, take)
                if market.kind is not SPOT:
                    self.rebalance_reservations(market, {account.account_id})
                if order.remaining:
                    break

    def fill_resting(self, market: Market, order: Order, account: Account, lots: int) -> None:
        """A resting paper limit fills at its limit price, as the maker."""
        assert order.price is not None
        taker = new_order(
            0,
            SYSTEM_VENUE,
            market.symbol,
            SELL if order.side is BUY else BUY,
            LIMIT_ORDER,
            IOC,
            lots,
            lots,
            order.price,
        )
        venue = self._ledger.system_account(SYSTEM_VENUE, market.spec.quote)
        order.remaining -= lots  # as a book lowers its maker's remaining
        self._postings.settle_fill(market, order, taker, venue, lots, order.price)
