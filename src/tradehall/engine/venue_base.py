"""The one interface of the two venues (book, quote) and the steps they share after taking.

A venue executes an accepted, held order (`execute`), says what a market order may take now
(`taking_terms`) and whether liquidity is left after a market order (`liquidity_left`). The shared
part: rest or close by time in force, the reservation rebalance after fills, and a fill against a
system account.
"""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import CancelReason, Side
from tradehall.engine.checks import hold_amount, im_ppm
from tradehall.engine.constants import (
    BUY,
    FOK,
    GTC,
    IOC,
    LIMIT_ORDER,
    MARKET_ORDER,
    PENDING_TRIGGER,
    QUOTE_VENUE,
    SELL,
    STOP_ORDER,
    TRAILING_STOP_ORDER,
)
from tradehall.engine.holds import Holds
from tradehall.engine.ledger import Account
from tradehall.engine.lifecycle import Lifecycle, new_order
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.postings import Postings
from tradehall.engine.state import EngineState

PRICE_PROTECTION: Final = CancelReason.PRICE_PROTECTION
MARKET_REMAINDER: Final = CancelReason.MARKET_REMAINDER
IOC_REMAINDER: Final = CancelReason.IOC_REMAINDER
REDUCE_ONLY: Final = CancelReason.REDUCE_ONLY
UNFUNDED: Final = CancelReason.UNFUNDED


def by_newest(order: Order) -> int:
    return -order.order_id


class Venue:
    """Base of `BookVenue` and `QuoteVenue`; the venue of a market is chosen once, by its spec."""

    def __init__(self, state: EngineState, holds: Holds, postings: Postings, lifecycle: Lifecycle) -> None:
        self._state = state
        self._holds = holds
        self._postings = postings
        self._lifecycle = lifecycle
        self._ledger = state.ledger
        self._accounts = state.accounts
        self._orders = state.orders
        self._register = state.register

    def execute(self, order: Order, account: Account, market: Market, limit: int | None) -> None:
        """Match an accepted order, settle its fills, then rest it or close it by its time in force."""
        raise NotImplementedError

    def taking_terms(self, market: Market, order: Order) -> tuple[int | None, int | None]:
        """(price bound, lots) to hold for (see `Execution.taking_terms`)."""
        raise NotImplementedError

    def liquidity_left(self, market: Market, side: Side) -> bool:
        """Whether the opposite side still offers something after a market order took what it could
        (then its price protection, not the venue, stopped it)."""
        raise NotImplementedError

    def rest_or_close(
        self, order: Order, account: Account, market: Market, limit: int | None, filled: bool
    ) -> None:
        """After taking: a market or IOC/FOK rest is cancelled; a limit rests (book or paper list)."""
        tif = order.time_in_force
        if order.type is MARKET_ORDER or order.type is STOP_ORDER or order.type is TRAILING_STOP_ORDER:
            cut = market.terms.protection_ppm is not None and self.liquidity_left(market, order.side)
            self._lifecycle.close(order, account, market, PRICE_PROTECTION if cut else MARKET_REMAINDER)
        elif tif is IOC or tif is FOK:
            self._lifecycle.close(order, account, market, IOC_REMAINDER)
        else:
            if limit is not None and filled and order.hold:
                # price improvement while taking: hold only what the resting rest can still cost
                tight = hold_amount(
                    market, order.side, limit, order.remaining, order.covered, im_ppm(account, market)
                )
                if tight < order.hold:
                    self._ledger.adjust_held(account, order.hold_currency, tight - order.hold)
                    order.hold = tight
            state = self._state
            state.priority += 1
            order.priority = state.priority
            if market.venue is QUOTE_VENUE:
                (market.quote.paper_bids if order.side is BUY else market.quote.paper_asks).add(order)
                order.in_book = True
            else:
                state.books_touched.add(market.symbol)
                market.book.add(order)
            if order.order_id not in self._orders:
                self._register(order, account)

    def rebalance_reservations(self, market: Market, account_ids: set[str]) -> None:
        """A position shrunk by an uncovered fill can no longer back every covered lot: the newest
        covering orders lose their cover and hold for opening instead, or are cancelled if unfunded.
        A reduce-only order that lost cover (here, or during the match in `Holds.move_cover`) is
        cancelled (`reduce_only`): it could open a position now."""
        lost = self._holds.cover_lost
        if lost:
            for order in lost:
                if self._orders.get(order.order_id) is order and order.covered < order.remaining:
                    self._lifecycle.cancel(order, self._state.markets[order.market], REDUCE_ONLY)
            lost.clear()
        for account_id in sorted(account_ids):
            position = market.positions.get(account_id)
            if position is None or account_id.startswith("system:"):
                continue
            excess_sell = position.reserved_sell - max(position.quantity, 0)
            excess_buy = position.reserved_buy - max(-position.quantity, 0)
            if excess_sell <= 0 and excess_buy <= 0:
                continue
            account = self._accounts[account_id]
            orders = [
                o for o in account.open_orders.values() if isinstance(o, Order) and o.market == market.symbol
            ]
            orders.sort(key=by_newest)
            for order in orders:
                excess = excess_sell if order.side is SELL else excess_buy
                if excess <= 0 or order.covered == 0:
                    continue
                lots = min(order.covered, excess)
                if order.side is SELL:
                    excess_sell -= lots
                else:
                    excess_buy -= lots
                self._holds.adjust_reservation(order, market, -lots)
                order.covered -= lots
                if order.reduce_only:
                    self._lifecycle.cancel(order, market, REDUCE_ONLY)
                    continue
                limit = order.price if order.status is not PENDING_TRIGGER else None
                need = hold_amount(
                    market, order.side, limit, order.remaining, order.covered, im_ppm(account, market)
                )
                extra = max(0, need - order.hold)
                if extra > account.available(order.hold_currency):
                    self._lifecycle.cancel(order, market, UNFUNDED)
                    continue
                self._ledger.adjust_held(account, order.hold_currency, extra)
                order.hold += extra

    def venue_fill(
        self, market: Market, order: Order, account: Account, lots: int, price: int, counterparty: str
    ) -> None:
        """A fill against a system account (the venue, or the insurance fund taking a liquidation)."""
        other = new_order(
            0,
            counterparty,
            market.symbol,
            SELL if order.side is BUY else BUY,
            LIMIT_ORDER,
            GTC,
            lots,
            0,
            price,
        )
        self._ledger.system_account(counterparty, market.spec.quote)
        self._postings.settle_fill(market, other, order, account, lots, price)
