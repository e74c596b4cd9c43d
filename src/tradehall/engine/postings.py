"""Postings: what one fill moves in the ledger and the positions (the book never touches balances).

Every amount is rounded in the venue's favour in the quote's minor unit (credits to a user down,
debits up) and the residue accrues to `system:rounding`: a spot buyer's cash is rounded up and the
seller's down (per order, see `spot_cash`), a fee is the rate x the exact notional rounded up (per
order), a binary opening cost up and closing proceeds down, and perp P&L is posted per position life
as the floor of its exact cumulative amount (`Position.change`); when a perp market has no open
position, what clearing kept of its P&L is swept to `system:rounding` (`sweep_clearing`).

`settle_fill` records the trade and posts both sides; `fill_side` posts one side (position, margin or
binary collateral, fee, consumed hold, order progress, the fill event); `settle_pnl` settles perp P&L
against clearing with the insurance fund covering a loss beyond the balance.
"""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import Liquidity
from tradehall.domain.events import OrderFilled, TradeExecuted
from tradehall.domain.fixedpoint import ceil_div
from tradehall.engine.checks import im_ppm
from tradehall.engine.constants import (
    BUY,
    FILLED,
    MAKER,
    PARTIALLY_FILLED,
    PERP,
    SELL,
    SIMPLE_CLASS,
    SPOT,
    SYSTEM_KIND,
    TAKER,
)
from tradehall.engine.holds import Holds
from tradehall.engine.ledger import (
    SYSTEM_FEES,
    SYSTEM_INSURANCE,
    SYSTEM_PERP_SETTLEMENT,
    SYSTEM_ROUNDING,
    Account,
)
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.state import EngineState

# Event classes bound once: compiled, a `Final` is read from a C static, an imported class from the
# module dict at every construction.
_ORDER_FILLED: Final = OrderFilled
_TRADE_EXECUTED: Final = TradeExecuted


class Postings:
    def __init__(self, state: EngineState, holds: Holds) -> None:
        self._state = state
        self._holds = holds
        self._ledger = state.ledger
        self._accounts = state.accounts
        self._orders = state.orders
        self._dirty_positions = state.dirty_positions
        self._position = state.position
        self._unregister = state.unregister

    def settle_fill(
        self, market: Market, maker: Order, taker: Order, taker_account: Account, quantity: int, price: int
    ) -> None:
        state = self._state
        trade_id = state.next_trade_id
        state.next_trade_id = trade_id + 1
        market.last_price = price
        maker_account = self._accounts[maker.account_id]
        if not state.replaying:
            self._state.events.append(
                _TRADE_EXECUTED(
                    trade_id=trade_id,
                    market=market.symbol,
                    price=price,
                    quantity=quantity,
                    taker_side=taker.side,
                    maker_order_id=maker.order_id,
                    taker_order_id=taker.order_id,
                    maker_account_id=maker.account_id,
                    taker_account_id=taker.account_id,
                    ts=state.now,
                )
            )
        maker_cash = taker_cash = 0
        if market.kind is SPOT:
            buy, sell = (taker, maker) if taker.side is BUY else (maker, taker)
            buyer, seller = (
                (taker_account, maker_account) if taker.side is BUY else (maker_account, taker_account)
            )
            paid, received = self.spot_cash(market, buy, sell, quantity * price)
            self.exchange_spot(market, buyer, seller, paid, received, quantity)
            maker_cash, taker_cash = (received, paid) if taker.side is BUY else (paid, received)
        self.fill_side(market, maker, maker_account, quantity, price, maker_cash, trade_id, MAKER)
        self.fill_side(market, taker, taker_account, quantity, price, taker_cash, trade_id, TAKER)

    @staticmethod
    def spot_cash(market: Market, buy: Order, sell: Order, tick_lots: int) -> tuple[int, int]:
        """What a spot fill of `tick_lots` costs the buyer and pays the seller, in quote minor units.

        Rounded in the venue's favour once per order, not once per fill: each fill moves the increase
        of the ceiling (buyer) or floor (seller) of the order's exact notional so far, so an order
        pays at most the ceiling of its total (its hold) and receives at least its floor."""
        notional = market.terms.notional
        bought = buy.fills_notional
        sold = sell.fills_notional
        paid = notional.ceil(bought + tick_lots) - notional.ceil(bought)
        received = notional.floor(sold + tick_lots) - notional.floor(sold)
        return paid, received

    def exchange_spot(
        self, market: Market, buyer: Account, seller: Account, paid: int, received: int, lots: int
    ) -> None:
        """The buyer pays `paid` into `system:rounding`, which pays the seller `received`; the base
        currency moves the other way."""
        ledger = self._ledger
        terms = market.terms
        quote = terms.quote
        rounding = ledger.system_account(SYSTEM_ROUNDING, quote)
        ledger.transfer(buyer, rounding, quote, paid)
        ledger.transfer(rounding, seller, quote, received)
        ledger.transfer(seller, buyer, terms.base, lots * terms.base_per_lot)

    def fill_side(
        self,
        market: Market,
        order: Order,
        account: Account,
        quantity: int,
        price: int,
        cash: int,
        trade_id: int,
        liquidity: Liquidity,
    ) -> None:
        """One side of a fill; `cash` is what a spot side paid (buy) or received (sell) in quote minor
        units (unused for other kinds)."""
        terms = market.terms
        ledger = self._ledger
        quote = terms.quote
        kind = market.kind
        if liquidity is TAKER:
            order.remaining -= quantity  # a maker's remaining was already lowered by its book
        position = self._position(market, account)
        used = order.covered if order.covered < quantity else quantity
        if used:
            order.covered -= used
            if order.side is SELL:
                position.reserved_sell -= used
            else:
                position.reserved_buy -= used
        accrued = order.fee_accrued
        ppm = terms.maker_ppm if liquidity is MAKER else terms.taker_ppm
        if account.kind is SYSTEM_KIND or order.fee_exempt:
            ppm = 0  # the venue or the insurance fund taking the other side, or a liquidation
        order.fee_accrued = accrued + terms.fee_numerator(quantity, price, ppm)
        denominator = terms.fee_denominator
        fee = ceil_div(order.fee_accrued, denominator) - ceil_div(accrued, denominator)
        delta = quantity if order.side is BUY else -quantity
        if kind is SPOT and delta < 0:
            # holdings that were deposited rather than bought have no cost basis
            delta = -min(quantity, max(position.quantity, 0))
        before = position.quantity
        closed, realized = (
            position.change(delta, price, account.cost_basis, terms.notional) if delta else (0, 0)
        )
        if kind is PERP:
            after = position.quantity
            if (before == 0) != (after == 0):
                account.open_perps += 1 if before == 0 else -1
            market.open_lots += abs(after) - abs(before)
        self._dirty_positions[(account.account_id, market.symbol)] = position
        consumed = fee
        if kind is SPOT:
            consumed = cash + fee if order.side is BUY else quantity * terms.base_per_lot
        elif kind is PERP:
            margin_before = position.margin
            position.margin = terms.margin_of(position.entry_value_up(), im_ppm(account, market))
            margin_change = position.margin - margin_before
            if margin_change > 0:
                consumed += margin_change
            ledger.adjust_held(account, quote, margin_change)
        else:
            pool = ledger.system_account(terms.collateral_id, quote)
            closing_price = terms.payout_ticks - price if order.side is BUY else price
            opening_price = price if order.side is BUY else terms.payout_ticks - price
            if closed:  # a credit: rounded down (exact while tick x lot is whole minor units)
                ledger.transfer(pool, account, quote, terms.notional.floor(closing_price * closed))
            if quantity - closed:  # a debit: rounded up
                opening_cost = terms.notional.ceil(opening_price * (quantity - closed))
                ledger.transfer(account, pool, quote, opening_cost)
                consumed += opening_cost
        if consumed > order.hold:
            # the engine's own closing orders, take-overs (order id 0) and system accounts hold
            # nothing by design; any other order never, by the holds invariant (holds.py): counted
            if order.order_id and order.origin is None and account.kind is not SYSTEM_KIND:
                self._state.hold_shortfall += consumed - order.hold
            consumed = order.hold
        order.hold -= consumed
        ledger.adjust_held(account, order.hold_currency, -consumed)
        if closed > used and kind is not SPOT:
            # it closed lots other orders of the account had reserved: the cover moves now, before any
            # of them fills in this same match, so each later fill finds its hold
            self._holds.move_cover(order, account, market, position)
        if fee:
            ledger.transfer(account, ledger.system_account(SYSTEM_FEES, quote), quote, fee)
        if kind is PERP:
            if realized:  # after the fee, so a loss floors the balance at zero
                self.settle_pnl(account, quote, realized)
                market.clearing_pnl += realized
            if market.open_lots == 0 and market.clearing_pnl:  # both sides of a trade applied
                self.sweep_clearing(market)
        now = self._state.now
        order.filled += quantity
        order.fills_notional += price * quantity
        order.fees_paid += fee
        order.updated_ts = now
        if order.remaining == 0:
            order.status = FILLED
            if order.hold:  # the bound's slack: what the fills did not consume
                ledger.adjust_held(account, order.hold_currency, -order.hold)
                order.hold = 0
            if order.order_id in self._orders:
                self._unregister(order, account)
        else:
            order.status = PARTIALLY_FILLED
        assessment = account.assessment
        if assessment is not None and abs(position.quantity) > abs(before):
            assessment.count_trading_day(assessment.day_index)
        if order.order_id == 0:
            return  # the venue's side of a paper fill is not an order of anyone's
        if order.order_class is not SIMPLE_CLASS:
            self._state.contingent_pending.append(order)  # its exits follow its fills (contingent)
        if self._state.replaying:
            return
        self._state.events.append(
            _ORDER_FILLED(
                order_id=order.order_id,
                account_id=order.account_id,
                market=market.symbol,
                trade_id=trade_id,
                side=order.side,
                price=price,
                quantity=quantity,
                fee=fee,
                liquidity=liquidity,
                cash=cash if kind is SPOT else None,
                realized_pnl=realized,
                filled_quantity=order.filled,
                status=order.status,
                ts=now,
                origin=order.origin,
            )
        )

    def sweep_clearing(self, market: Market) -> None:
        """With no position open in a perp market its exact P&L sums to zero, so what clearing kept
        of it (each life's P&L posted as a floor) is whole rounding residue: `system:rounding`'s."""
        residue = -market.clearing_pnl
        market.clearing_pnl = 0
        if residue > 0:  # never below zero; only an old snapshot's unknown history could make it so
            ledger = self._ledger
            quote = market.spec.quote
            ledger.transfer(
                ledger.system_account(SYSTEM_PERP_SETTLEMENT, quote),
                ledger.system_account(SYSTEM_ROUNDING, quote),
                quote,
                residue,
            )

    def settle_pnl(self, account: Account, currency: str, pnl: int) -> None:
        """Perp P&L settles against clearing; a loss beyond the balance is paid by the insurance fund."""
        ledger = self._ledger
        clearing = ledger.system_account(SYSTEM_PERP_SETTLEMENT, currency)
        if pnl > 0:
            ledger.transfer(clearing, account, currency, pnl)
            return
        loss = -pnl
        balance = account.balance(currency).total
        covered = min(loss, max(balance, 0))
        ledger.transfer(account, clearing, currency, covered)
        if loss > covered:
            ledger.transfer(
                ledger.system_account(SYSTEM_INSURANCE, currency), clearing, currency, loss - covered
            )
