"""Close-outs: the engine ends positions itself (liquidation below maintenance, an assessment's end).

Quote venue: one paper fill against a system account at a price. Book venue: an IOC order that trades
against the book no further than the protection band beyond the best opposite price; whatever the
book cannot absorb there is taken over by the insurance fund at the mark, which is a transfer, not a
trade (public trades and candles only ever show real matches).
"""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import CancelReason, FillOrigin, Side
from tradehall.domain.events import PositionLiquidated, PositionTakenOver
from tradehall.domain.fixedpoint import PPM, ceil_div
from tradehall.engine.book_venue import BookVenue
from tradehall.engine.constants import (
    BINARY,
    BUY,
    GTC,
    IOC,
    LIMIT_ORDER,
    MAKER,
    MARKET_ORDER,
    PERP,
    QUOTE_VENUE,
    SELL,
    SPOT,
    TAKER,
)
from tradehall.engine.ledger import SYSTEM_INSURANCE, Account
from tradehall.engine.lifecycle import Lifecycle, new_order
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.postings import Postings
from tradehall.engine.quote_venue import QuoteVenue
from tradehall.engine.risk import mark_of
from tradehall.engine.state import EngineState
from tradehall.engine.stops import Stops
from tradehall.engine.valuation import valuation_price
from tradehall.engine.venues import slipped

CLOSE_OUT_PROTECTION_PPM: Final = 50_000
"""A close-out on a book trades no further than 5 % beyond the best opposite price when its market
has no `price_protection` of its own; the rest is taken over by the insurance fund at the mark."""
LIQUIDATION: Final = CancelReason.LIQUIDATION


class CloseOuts:
    def __init__(
        self,
        state: EngineState,
        lifecycle: Lifecycle,
        postings: Postings,
        book: BookVenue,
        quote: QuoteVenue,
        stops: Stops,
    ) -> None:
        self._state = state
        self._lifecycle = lifecycle
        self._postings = postings
        self._book = book
        self._quote = quote
        self._stops = stops
        self._ledger = state.ledger
        self._accounts = state.accounts
        self._markets = state.markets

    def liquidate(self, account: Account, equity: int, maintenance: int) -> None:
        """Equity below maintenance: cancel its perp orders, close every perp position at the mark."""
        markets = self._markets
        for order in self._state.open_orders_of(account):
            market = markets[order.market]
            if market.kind is PERP:
                self._lifecycle.cancel(order, market, LIQUIDATION)
        for symbol in sorted(account.positions):
            position = account.positions[symbol]
            market = markets[symbol]
            price = mark_of(market)
            if market.kind is not PERP or position.quantity == 0 or price is None:
                continue
            quote = market.spec.quote
            insurance_before = self._ledger.system_account(SYSTEM_INSURANCE, quote).balance(quote).total
            quantity = position.quantity
            self.close_out(
                market,
                account,
                quantity,
                price,
                SYSTEM_INSURANCE,
                "liquidation",
                LIQUIDATION,
                fee_exempt=True,
            )
            insurance_after = self._accounts[SYSTEM_INSURANCE].balance(quote).total
            self._state.events.append(
                PositionLiquidated(
                    account_id=account.account_id,
                    market=symbol,
                    quantity=quantity,
                    price=price,
                    equity=equity,
                    maintenance=maintenance,
                    insurance_paid=insurance_before - insurance_after,
                    ts=self._state.now,
                )
            )

    def engine_order(
        self, market: Market, account: Account, quantity: int, label: str, fee_exempt: bool
    ) -> Order:
        """An accepted order the engine places itself to close `quantity` signed lots of the position."""
        state = self._state
        side = SELL if quantity > 0 else BUY
        order = new_order(
            state.next_order_id,
            account.account_id,
            market.symbol,
            side,
            MARKET_ORDER,
            IOC,
            abs(quantity),
            abs(quantity),
            client_order_id=f"{label}-{state.next_order_id}",
            reduce_only=True,
            fee_exempt=fee_exempt,
            created_ts=state.now,
            origin=FillOrigin.LIQUIDATION if label == "liquidation" else FillOrigin.ASSESSMENT_CLOSE,
            hold_currency=market.spec.quote if market.kind is not SPOT or side is BUY else market.spec.base,
        )
        state.next_order_id += 1
        self._state.events.append(self._lifecycle.accepted(order))
        return order

    def close_out(
        self,
        market: Market,
        account: Account,
        quantity: int,
        price: int | None,
        counterparty: str,
        label: str,
        reason: CancelReason,
        fee_exempt: bool = False,
    ) -> None:
        """Close `quantity` signed lots of a position the engine ends (liquidation, assessment end)."""
        if market.venue is QUOTE_VENUE:
            if price is not None:
                order = self.engine_order(market, account, quantity, label, fee_exempt)
                self._quote.venue_fill(market, order, account, abs(quantity), price, counterparty)
            return
        order = self.engine_order(market, account, quantity, label, fee_exempt)
        limit = self.close_out_limit(market, order.side)
        if limit is not None:
            self._book.take(order, account, market, limit)
        left = order.remaining
        if left:
            self._lifecycle.close(order, account, market, reason)
            mark = valuation_price(market)
            if mark is not None:
                self.take_over(market, account, left if quantity > 0 else -left, mark, reason)
        self._state.emit_book_changes(market)
        self._stops.trigger(market)

    @staticmethod
    def close_out_limit(market: Market, side: Side) -> int | None:
        """The furthest price a close-out may trade at: the market's `price_protection` (else
        CLOSE_OUT_PROTECTION) beyond the best opposite price; None when that side of the book is empty."""
        ppm = (
            market.terms.protection_ppm
            if market.terms.protection_ppm is not None
            else CLOSE_OUT_PROTECTION_PPM
        )
        if side is BUY:
            best = market.book.best_ask()
            if best is None:
                return None
            limit = best * (PPM + ppm) // PPM
            return min(limit, market.terms.payout_ticks - 1) if market.kind is BINARY else limit
        best = market.book.best_bid()
        if best is None:
            return None
        return max(ceil_div(best * (PPM - ppm), PPM), 1)

    def take_over(
        self, market: Market, account: Account, quantity: int, price: int, reason: CancelReason
    ) -> None:
        """`system:insurance` takes `quantity` signed lots of the account's position over at `price`.

        Settled like a fill (P&L, margin, binary collateral, spot cash and base) without fees, but
        it is no trade: no TradeExecuted, no OrderFilled, the last price does not move."""
        lots = abs(quantity)
        side = SELL if quantity > 0 else BUY
        quote = market.spec.quote
        ledger = self._ledger
        fund = ledger.system_account(SYSTEM_INSURANCE, quote)
        closing = new_order(
            0,
            account.account_id,
            market.symbol,
            side,
            MARKET_ORDER,
            IOC,
            lots,
            lots,
            fee_exempt=True,
            hold_currency=quote if market.kind is not SPOT or side is BUY else market.spec.base,
        )
        taking = new_order(
            0,
            SYSTEM_INSURANCE,
            market.symbol,
            BUY if side is SELL else SELL,
            LIMIT_ORDER,
            GTC,
            lots,
            0,
            price,
        )
        notional = market.terms.notional.floor(price * lots)
        if market.kind is SPOT:
            buyer, seller = (fund, account) if side is SELL else (account, fund)
            ledger.transfer(buyer, seller, quote, notional)
            ledger.transfer(seller, buyer, market.spec.base, lots * market.terms.base_per_lot)
        position = self._state.position(market, account)
        realized_before = position.realized
        self._postings.fill_side(market, taking, fund, lots, price, notional, 0, MAKER)
        self._postings.fill_side(market, closing, account, lots, price, notional, 0, TAKER)
        self._state.events.append(
            PositionTakenOver(
                account_id=account.account_id,
                market=market.symbol,
                quantity=quantity,
                price=price,
                pnl=position.realized - realized_before,
                reason=reason.value,
                ts=self._state.now,
            )
        )

    @staticmethod
    def closing_price(market: Market, quantity: int) -> int | None:
        """Where a position closes "at the market": the quote's side with slippage, else the mark."""
        if market.venue is QUOTE_VENUE:
            side = SELL if quantity > 0 else BUY
            levels = market.quote.bids if side is SELL else market.quote.asks
            if levels:
                return slipped(market, side, levels[0][0])
        return mark_of(market)
