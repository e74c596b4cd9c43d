"""Execution: hand an accepted, held order to its market's venue; the one path that re-holds and
executes an order whose execution was deferred (a fired stop, an order past the venue's latency)."""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import CancelReason
from tradehall.engine.book_venue import BookVenue
from tradehall.engine.constants import LIMIT_ORDER, PENDING_TRIGGER, QUOTE_VENUE, STOP_LIMIT_ORDER
from tradehall.engine.holds import Holds
from tradehall.engine.ledger import Account
from tradehall.engine.lifecycle import Lifecycle
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.quote_venue import QuoteVenue
from tradehall.engine.state import EngineState
from tradehall.engine.venue_base import Venue

UNFUNDED: Final = CancelReason.UNFUNDED


class Execution:
    def __init__(
        self, state: EngineState, holds: Holds, lifecycle: Lifecycle, book: BookVenue, quote: QuoteVenue
    ) -> None:
        self._holds = holds
        self._lifecycle = lifecycle
        self._accounts = state.accounts
        self._book = book
        self._quote = quote

    def execute(self, order: Order, account: Account, market: Market, limit: int | None) -> None:
        """Match an accepted order, settle its fills, then rest it or close it by its time in force."""
        if market.venue is QUOTE_VENUE:
            self._quote.execute(order, account, market, limit)
        else:
            self._book.execute(order, account, market, limit)

    def taking_terms(self, market: Market, order: Order) -> tuple[int | None, int | None]:
        """(price bound, lots) to hold for: a limit's price; for a market order its worst fill and the
        lots that can fill now within its price protection (the rest is cancelled at once, so it
        holds nothing)."""
        if order.type is LIMIT_ORDER or order.type is STOP_LIMIT_ORDER:
            return order.price, None
        if order.status is PENDING_TRIGGER:
            return None, None
        venue: Venue = self._quote if market.venue is QUOTE_VENUE else self._book
        return venue.taking_terms(market, order)

    def rearm(self, order: Order, market: Market, stated_reason: bool) -> None:
        """Hold again at the prices of now and execute; unfunded, the order is cancelled (with the
        refusal's own reason when `stated_reason`, else `unfunded`)."""
        account = self._accounts[order.account_id]
        limit, lots = self.taking_terms(market, order)
        refusal = self._holds.rearm(order, account, market, limit, lots)
        if refusal is not None:
            reason = (refusal.reason or UNFUNDED) if stated_reason else UNFUNDED
            self._lifecycle.close(order, account, market, reason)
            return
        self.execute(order, account, market, limit)
