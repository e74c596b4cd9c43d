"""The batch handlers: each engine event applied to the mirror and to the batch's changes.

Over 400 lines on purpose: one handler per event that has a read model (orders, smart orders and their
children, fills, balances, positions, markets), each beside the ones it shares state with.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog

from tradehall.domain.commands import RouteOrder
from tradehall.domain.enums import (
    Liquidity,
    MarketStatus,
    OrderClass,
    OrderStatus,
    Side,
    Venue,
)
from tradehall.domain.events import (
    AccountOpened,
    AccountStatusChanged,
    AnyEvent,
    AssessmentUpdated,
    BalanceChanged,
    BookChanged,
    FundingPaid,
    MarketCreated,
    MarketSettled,
    MarketStatusChanged,
    MarketVoided,
    MarkPriceUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRouted,
    OrderTriggered,
    PositionChanged,
    PositionTakenOver,
    QuoteUpdated,
    TradeExecuted,
)
from tradehall.domain.fixedpoint import amount_of, decimal_of, trail_percent_of
from tradehall.domain.market import SMART_VENUE, instrument_of, venue_of
from tradehall.journal.records import JournalRecord
from tradehall.store.ledger import ID_SHIFT, SHARD_SHIFT, SYSTEM_PREFIX, MarketMoney, RecordLedger
from tradehall.store.projector.config import ProjectionError
from tradehall.store.projector.mirror import (
    _EXPIRED,
    _LIVE_ORDER_STATUSES,
    _OPEN_AFTER_TRIGGER,
    _ZERO,
    _AccountState,
    _market_state,
    _MarketState,
    _PositionState,
)
from tradehall.store.projector.rows import _BatchRows
from tradehall.store.types import utc_of_ns

log = structlog.get_logger(__name__)
_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED.value


class _Batch(_BatchRows):
    """The changes of one batch: applied to the mirror as they come, written to SQL at the end."""

    # ---- applying events --------------------------------------------------------------------

    def apply(self, record: JournalRecord) -> None:
        self._seq = record.seq
        self._ts = record.ts
        self._record_ledger = RecordLedger()
        self._ledger_index = 0
        self._command = type(record.command).__name__
        tracker = self.mirror.execution
        tracker.advance(record.ts)
        if isinstance(record.command, RouteOrder):  # the smart order's arrival: before its children trade
            instrument = record.command.instrument
            venues = [s for s, m in self.mirror.markets.items() if instrument_of(m.spec) == instrument]
            self._route_start = tracker.route_start(instrument, venues)
        for ev in record.events:
            handler = _HANDLERS.get(type(ev))
            if handler is not None:
                handler(self, ev)

    def _market(self, symbol: str) -> _MarketState:
        market = self.mirror.markets.get(symbol)
        if market is None:
            raise ProjectionError(f"event for unknown market {symbol!r} at seq {self._seq}")
        return market

    def _touch(self, account_id: str) -> None:
        self.touched_accounts[account_id] = (self._seq, self._ts)

    def on_market_created(self, ev: MarketCreated) -> None:
        spec = ev.spec
        places = self.config.currency_decimals.get(spec.quote, self.config.default_currency_decimals)
        self.mirror.markets[spec.symbol] = _market_state(spec, places, spec.status.value, ev.ts)
        self.new_markets.add(spec.symbol)

    def on_market_status(self, ev: MarketStatusChanged) -> None:
        market = self._market(ev.market)
        market.status = ev.status.value
        market.updated_ns = ev.ts
        self.dirty_markets.add(ev.market)

    def _close_positions(self, symbol: str, ts: int) -> None:
        for account_id in self.mirror.accounts_by_market.get(symbol, ()):
            position = self.mirror.positions[(account_id, symbol)]
            position.quantity = 0
            position.cost = 0
            position.cost_rem, position.cost_den = 0, 1
            position.updated_ns = ts
            self.dirty_positions.add((account_id, symbol))
            self._touch(account_id)

    def on_market_settled(self, ev: MarketSettled) -> None:
        market = self._market(ev.market)
        market.status = MarketStatus.SETTLED.value
        market.outcome = ev.outcome.value
        market.updated_ns = ev.ts
        market.settled_ns = ev.ts
        self._record_ledger.settled(market.spec.quote, ev)
        self.dirty_markets.add(ev.market)
        self._close_positions(ev.market, ev.ts)

    def on_market_voided(self, ev: MarketVoided) -> None:
        market = self._market(ev.market)
        market.status = MarketStatus.CANCELLED.value
        market.updated_ns = ev.ts
        market.settled_ns = ev.ts
        self._record_ledger.voided(market.spec.quote, ev)
        self.dirty_markets.add(ev.market)
        self._close_positions(ev.market, ev.ts)

    def on_mark(self, ev: MarkPriceUpdated) -> None:
        market = self._market(ev.market)
        market.mark_price = ev.price
        market.updated_ns = ev.ts
        self.dirty_markets.add(ev.market)
        self.revalued_markets[ev.market] = (self._seq, self._ts)

    def on_trade(self, ev: TradeExecuted) -> None:
        market = self._market(ev.market)
        market.last_price = ev.price
        market.updated_ns = ev.ts
        self.dirty_markets.add(ev.market)
        if market.mark_price is None:
            self.revalued_markets[ev.market] = (self._seq, self._ts)
        self.mirror.execution.on_trade(
            ev.market, market.price(ev.price), market.quantity(ev.quantity), instrument_of(market.spec)
        )
        if market.spec.venue is Venue.BOOK:  # a quote venue's candles come from its feed
            self.candles.add_trade(ev.market, market.price(ev.price), market.quantity(ev.quantity), ev.ts)

    def on_account_opened(self, ev: AccountOpened) -> None:
        self.mirror.accounts[ev.account_id] = _AccountState(
            id=ev.account_id,
            owner=ev.owner,
            kind=ev.kind.value,
            currency=ev.currency,
            cost_basis=ev.cost_basis.value,
            tier=ev.tier,
            status="active",
            trading_state="active",
            created_ns=ev.ts,
            updated_ns=ev.ts,
        )
        self.new_accounts.add(ev.account_id)
        self._touch(ev.account_id)

    def on_assessment(self, ev: AssessmentUpdated) -> None:
        account = self.mirror.accounts.get(ev.account_id)
        if account is None:
            raise ProjectionError(f"assessment of unknown account {ev.account_id!r} at seq {self._seq}")
        places = self.config.currency_decimals.get(account.currency, self.config.default_currency_decimals)
        account.peak_equity = amount_of(ev.peak_equity, places)
        account.updated_ns = ev.ts
        self.dirty_accounts.add(ev.account_id)

    def on_account_status(self, ev: AccountStatusChanged) -> None:
        account = self.mirror.accounts.get(ev.account_id)
        if account is None:
            raise ProjectionError(f"status of unknown account {ev.account_id!r} at seq {self._seq}")
        account.status = ev.status.value
        account.trading_state = ev.trading_state.value
        account.updated_ns = ev.ts
        self.dirty_accounts.add(ev.account_id)

    def on_balance(self, ev: BalanceChanged) -> None:
        key = (ev.account_id, ev.currency)
        previous = self.mirror.balances.get(key)
        if previous is None:
            self.new_balances.add(key)
        if ev.delta and not ev.account_id.startswith(SYSTEM_PREFIX):
            self._ledger_lines(ev, 0 if previous is None else previous[0])
        self.mirror.set_balance(ev.account_id, ev.currency, ev.total, ev.held, self._ts)
        self.dirty_balances.add(key)
        self._touch(ev.account_id)

    def _ledger_lines(self, ev: BalanceChanged, total: int) -> None:
        """The ledger entries of one balance change, with the running balance after each."""
        places = self.config.currency_decimals.get(ev.currency, self.config.default_currency_decimals)
        at = self._utc(self._ts)
        base = self.config.shard_index << SHARD_SHIFT  # 0 on one machine
        for cause in self._record_ledger.entries(ev, self._seq, total, self._command):
            total += cause.amount
            self.ledger.append(
                {
                    "id": base | (self._seq << ID_SHIFT) | self._ledger_index,
                    "account_id": cause.account_id,
                    "currency": cause.currency,
                    "type": cause.type,
                    "amount": amount_of(cause.amount, places),
                    "balance_after": amount_of(total, places),
                    "market": cause.market,
                    "order_id": cause.order_id,
                    "trade_id": cause.trade_id,
                    "at": at,
                }
            )
            self._ledger_index += 1

    def _money(self, market: _MarketState) -> MarketMoney:
        money = market.money
        if money is None:
            spec = market.spec
            base = self.config.currency_decimals.get(spec.base, self.config.default_currency_decimals)
            money = market.money = MarketMoney.of(spec, market.quote_decimals, base)
        return money

    def _held(self, account_id: str, symbol: str) -> int:
        position = self.mirror.positions.get((account_id, symbol))
        return 0 if position is None else position.quantity

    def on_funding(self, ev: FundingPaid) -> None:
        self._record_ledger.funding(self._market(ev.market).spec.quote, ev)

    def on_taken_over(self, ev: PositionTakenOver) -> None:
        money = self._money(self._market(ev.market))
        self._record_ledger.takeover(money, ev, self._held(ev.account_id, ev.market))

    def on_position(self, ev: PositionChanged) -> None:
        self._market(ev.market)
        key = (ev.account_id, ev.market)
        position = self.mirror.positions.get(key)
        if position is None:
            position = self.mirror.positions[key] = _PositionState()
            self.new_positions.add(key)
            self.mirror.accounts_by_market.setdefault(ev.market, set()).add(ev.account_id)
            self.mirror.markets_by_account.setdefault(ev.account_id, set()).add(ev.market)
        position.quantity = ev.quantity
        position.cost = ev.cost
        position.cost_rem, position.cost_den = ev.cost_remainder, ev.cost_denominator
        position.realized_pnl = ev.realized_pnl
        position.margin = ev.margin
        position.updated_ns = self._ts
        position.flat_price = None if ev.quantity else self.mirror.markets[ev.market].valuation_price
        self.dirty_positions.add(key)
        self._touch(ev.account_id)

    def on_order_accepted(self, ev: OrderAccepted) -> None:
        market = self._market(ev.market)
        at = self._utc(ev.ts)
        self.orders[ev.order_id] = {
            "id": str(ev.order_id),
            "client_order_id": ev.client_order_id,
            "account_id": ev.account_id,
            "market": ev.market,
            "side": ev.requested_side.value,
            "engine_side": ev.side.value,
            "type": ev.type.value,
            "time_in_force": ev.time_in_force.value,
            "quantity": market.quantity(ev.quantity),
            "price": None if ev.price is None else market.price(ev.price),
            "stop_price": None if ev.stop_price is None else market.price(ev.stop_price),
            "expire_at": None if ev.expire_at is None else utc_of_ns(ev.expire_at),
            "post_only": ev.post_only,
            "reduce_only": ev.reduce_only,
            "status": ev.status.value,
            "filled_quantity": _ZERO,
            "average_price": None,
            "fees": amount_of(0, market.quote_decimals),  # "0.00" like the engine's, not "0"
            "notional": _ZERO,
            "created_at": at,
            "updated_at": at,
            "cancel_reason": None,
            "trigger": None if ev.trigger is None else ev.trigger.value,
            "trail_percent": None if ev.trail_ppm is None else trail_percent_of(ev.trail_ppm),
            "trail_price": None if ev.trail_price is None else market.price(ev.trail_price),
            "activation_price": None if ev.activation_price is None else market.price(ev.activation_price),
            "hwm": None if ev.hwm is None else market.price(ev.hwm),
            "order_class": ev.order_class.value,
            "parent_order_id": None if ev.parent_order_id is None else str(ev.parent_order_id),
            "take_profit": None if ev.take_profit is None else market.price(ev.take_profit),
            "stop_loss": None if ev.stop_loss is None else market.price(ev.stop_loss),
            "stop_loss_limit": None if ev.stop_loss_limit is None else market.price(ev.stop_loss_limit),
            "venue": None,
            "children": None,
            "decision_price": None,
        }
        self.mirror.open_orders[ev.order_id] = self.orders[ev.order_id]
        self.new_orders.add(ev.order_id)
        self.mirror.execution.on_accepted(
            ev.order_id,
            ev.account_id,
            ev.market,
            venue_of(market.spec),
            ev.client_order_id,
            ev.side is Side.BUY,
            market.quantity(ev.quantity),
            at,
        )

    def _order(self, order_id: int) -> dict[str, Any] | None:
        order = self.orders.get(order_id)
        if order is None:
            order = self.mirror.open_orders.get(order_id)
            if order is None:
                log.warning("projector_unknown_order", order_id=order_id, seq=self._seq)
                return None
            self.orders[order_id] = order
        return order

    def on_order_filled(self, ev: OrderFilled) -> None:
        market = self._market(ev.market)
        price = market.price(ev.price)
        fee = amount_of(ev.fee, market.quote_decimals)
        at = self._utc(ev.ts)
        taker = ev.liquidity is Liquidity.TAKER
        self.fills.append(
            {
                "id": ev.trade_id * 2 + (1 if taker else 0),
                "executed_at": at,
                "trade_id": ev.trade_id,
                "order_id": str(ev.order_id),
                "account_id": ev.account_id,
                "market": ev.market,
                "side": ev.side.value,
                "price": price,
                "quantity": market.quantity(ev.quantity),
                "fee": fee,
                "liquidity": ev.liquidity.value,
                "realized_pnl": amount_of(ev.realized_pnl, market.quote_decimals),
                "origin": None if ev.origin is None else ev.origin.value,
            }
        )
        self.fill_count += 1
        self._touch(ev.account_id)
        self._record_ledger.fill(self._money(market), ev, self._held(ev.account_id, ev.market))
        self.mirror.execution.on_fill(ev.order_id, price, market.quantity(ev.quantity), fee, ev.ts, at)
        if ev.status is OrderStatus.FILLED:
            self.mirror.execution.on_end(ev.order_id, at)
        order = self._order(ev.order_id)
        if order is None:
            return
        filled = market.quantity(ev.filled_quantity)
        notional = order["notional"] + decimal_of(ev.price * ev.quantity, market.tick_lot)
        order["notional"] = notional
        order["fees"] = order["fees"] + fee
        order["filled_quantity"] = filled
        order["average_price"] = (notional / filled) if filled else None
        order["status"] = ev.status.value
        order["updated_at"] = at
        parent = self._smart_parent(order)
        if parent is not None:
            quantity = market.quantity(ev.quantity)
            parent["notional"] += price * quantity
            parent["fees"] += fee
            parent["filled_quantity"] += quantity
            parent["average_price"] = parent["notional"] / parent["filled_quantity"]
            parent["updated_at"] = at
            self._settle_parent(parent, None)

    def _smart_parent(self, order: dict[str, Any]) -> dict[str, Any] | None:
        """The smart order `order` is a child of (a contingent exit's parent is not one)."""
        parent_id = order.get("parent_order_id")
        if parent_id is None:
            return None
        number = int(parent_id)
        parent = self.orders.get(number) or self.mirror.open_orders.get(number)
        if parent is None or parent.get("venue") != SMART_VENUE:
            return None
        self.orders[number] = parent
        return parent

    def _settle_parent(self, parent: dict[str, Any], reason: str | None) -> None:
        """A smart order's status from its children: open while one is, then filled or cancelled."""
        live = False
        for child_id in json.loads(parent["children"] or "[]"):
            child = self.orders.get(child_id) or self.mirror.open_orders.get(child_id)
            if child is not None and child["status"] in _LIVE_ORDER_STATUSES:
                live = True
                break
        filled = parent["filled_quantity"]
        if live:
            parent["status"] = _PARTIALLY_FILLED if filled else _OPEN_AFTER_TRIGGER
        elif filled >= parent["quantity"]:
            parent["status"] = OrderStatus.FILLED.value
        else:
            parent["status"] = OrderStatus.CANCELLED.value
            parent["cancel_reason"] = parent["cancel_reason"] or reason
        if not live:
            self.mirror.execution.on_end(int(parent["id"]), parent["updated_at"])

    def on_book(self, ev: BookChanged) -> None:
        market = self._market(ev.market)
        bid = None if ev.best_bid is None else market.price(ev.best_bid)
        ask = None if ev.best_ask is None else market.price(ev.best_ask)
        self.mirror.execution.on_top(ev.market, bid, ask)

    def on_quote(self, ev: QuoteUpdated) -> None:
        market = self._market(ev.market)
        bid = None if ev.bid is None else market.price(ev.bid)
        ask = None if ev.ask is None else market.price(ev.ask)
        self.mirror.execution.on_top(ev.market, bid, ask)

    def on_order_routed(self, ev: OrderRouted) -> None:
        at = self._utc(ev.ts)
        children = [child.order_id for child in ev.children if child.order_id is not None]
        filled = notional = fees = Decimal(0)
        places = 2
        for child in ev.children:
            places = self._market(child.market).quote_decimals
            break
        for child_id in children:
            if ev.decision_price is not None:
                self.mirror.execution.set_decision(child_id, Decimal(ev.decision_price))
            row = self._order(child_id)
            if row is None:
                continue
            row["parent_order_id"] = str(ev.order_id)
            filled += row["filled_quantity"]
            notional += row["notional"]
            fees += row["fees"]
        parent: dict[str, Any] = {
            "id": str(ev.order_id),
            "client_order_id": ev.client_order_id,
            "account_id": ev.account_id,
            "market": ev.instrument,
            "side": ev.side.value,
            "engine_side": ev.side.value,
            "type": ev.type.value,
            "time_in_force": ev.time_in_force.value,
            "quantity": Decimal(ev.quantity),
            "price": None if ev.price is None else Decimal(ev.price),
            "stop_price": None,
            "expire_at": None,
            "post_only": False,
            "reduce_only": False,
            "status": _OPEN_AFTER_TRIGGER,
            "filled_quantity": filled,
            "average_price": notional / filled if filled else None,
            "fees": fees if children else amount_of(0, places),
            "notional": notional,
            "created_at": at,
            "updated_at": at,
            "cancel_reason": None,
            "trigger": None,
            "trail_percent": None,
            "trail_price": None,
            "activation_price": None,
            "hwm": None,
            "order_class": OrderClass.SIMPLE.value,
            "parent_order_id": None,
            "take_profit": None,
            "stop_loss": None,
            "stop_loss_limit": None,
            "venue": SMART_VENUE,
            "children": json.dumps(children),
            "decision_price": None if ev.decision_price is None else Decimal(ev.decision_price),
        }
        self.orders[ev.order_id] = parent
        self.new_orders.add(ev.order_id)
        start = self._route_start
        self.mirror.execution.on_routed(
            ev.order_id,
            ev.account_id,
            ev.instrument,
            ev.client_order_id,
            ev.side is Side.BUY,
            parent["quantity"],
            at,
            parent["decision_price"],
            start,
            children,
        )
        self._settle_parent(parent, None if ev.reason is None else ev.reason.value)
        if parent["status"] in _LIVE_ORDER_STATUSES:
            self.mirror.open_orders[ev.order_id] = parent

    def _utc(self, ns: int) -> datetime:
        """`utc_of_ns`, remembering the last one: the events of a record share their time."""
        if ns != self._last_ns:
            self._last_ns = ns
            self._last_utc = utc_of_ns(ns)
        return self._last_utc

    def on_order_cancelled(self, ev: OrderCancelled) -> None:
        self._close_order(
            ev.order_id, ev.market, ev.filled_quantity, OrderStatus.CANCELLED.value, ev.ts, ev.reason.value
        )
        if ev.hwm is not None:
            self._trailed(ev.order_id, ev.market, ev.hwm, ev.stop_price)

    def _trailed(self, order_id: int, symbol: str, hwm: int, stop_price: int | None) -> None:
        """A trailing stop's watermark and stop as an event reports them (the engine moves them silently)."""
        order = self._order(order_id)
        if order is None:
            return
        tick = self._market(symbol).spec.tick_size
        order["hwm"] = decimal_of(hwm, tick)
        order["stop_price"] = None if stop_price is None else decimal_of(stop_price, tick)

    def on_order_expired(self, ev: OrderExpired) -> None:
        self._close_order(
            ev.order_id, ev.market, ev.filled_quantity, OrderStatus.EXPIRED.value, ev.ts, _EXPIRED
        )

    def _close_order(
        self, order_id: int, symbol: str, filled: int, status: str, ts: int, reason: str
    ) -> None:
        spec = self._market(symbol).spec
        self.mirror.execution.on_end(order_id, utc_of_ns(ts))
        order = self._order(order_id)
        if order is None:
            return
        order["filled_quantity"] = decimal_of(filled, spec.lot_size)
        order["status"] = status
        order["updated_at"] = utc_of_ns(ts)
        order["cancel_reason"] = reason
        parent = self._smart_parent(order)
        if parent is not None:
            parent["updated_at"] = order["updated_at"]
            self._settle_parent(parent, reason)

    def on_order_amended(self, ev: OrderAmended) -> None:
        spec = self._market(ev.market).spec
        order = self._order(ev.order_id)
        if order is None:
            return
        if ev.price is not None:
            order["price"] = decimal_of(ev.price, spec.tick_size)
        if ev.stop_price is not None:
            order["stop_price"] = decimal_of(ev.stop_price, spec.tick_size)
        if ev.trail_ppm is not None or ev.trail_price is not None:
            order["trail_percent"] = None if ev.trail_ppm is None else trail_percent_of(ev.trail_ppm)
            trail_price = ev.trail_price
            order["trail_price"] = None if trail_price is None else decimal_of(trail_price, spec.tick_size)
        order["quantity"] = decimal_of(ev.quantity, spec.lot_size)
        order["updated_at"] = utc_of_ns(ev.ts)

    def on_order_triggered(self, ev: OrderTriggered) -> None:
        order = self._order(ev.order_id)
        if order is None:
            return
        if order["status"] == OrderStatus.PENDING_TRIGGER.value:
            order["status"] = _OPEN_AFTER_TRIGGER
        order["updated_at"] = utc_of_ns(ev.ts)
        if ev.hwm is not None:
            self._trailed(ev.order_id, ev.market, ev.hwm, ev.stop_price)


_HANDLERS: dict[type[AnyEvent], Callable[[_Batch, Any], None]] = {
    MarketCreated: _Batch.on_market_created,
    MarketStatusChanged: _Batch.on_market_status,
    MarketSettled: _Batch.on_market_settled,
    MarketVoided: _Batch.on_market_voided,
    MarkPriceUpdated: _Batch.on_mark,
    TradeExecuted: _Batch.on_trade,
    AccountOpened: _Batch.on_account_opened,
    AccountStatusChanged: _Batch.on_account_status,
    AssessmentUpdated: _Batch.on_assessment,
    BalanceChanged: _Batch.on_balance,
    PositionChanged: _Batch.on_position,
    OrderAccepted: _Batch.on_order_accepted,
    OrderFilled: _Batch.on_order_filled,
    OrderCancelled: _Batch.on_order_cancelled,
    OrderExpired: _Batch.on_order_expired,
    OrderAmended: _Batch.on_order_amended,
    OrderTriggered: _Batch.on_order_triggered,
    OrderRouted: _Batch.on_order_routed,
    BookChanged: _Batch.on_book,
    QuoteUpdated: _Batch.on_quote,
    FundingPaid: _Batch.on_funding,
    PositionTakenOver: _Batch.on_taken_over,
}
"""Events without a read model of their own have no handler: OrderRejected and CommandRejected
(refusals are not orders), LeverageChanged (BookChanged and QuoteUpdated only give the execution
analytics their top of book: the engine serves books),
PositionLiquidated, AssessmentFailed/Passed (their effects arrive as OrderAccepted,
OrderFilled, PositionChanged, BalanceChanged and AccountStatusChanged events). FundingPaid and
PositionTakenOver only say why balances changed (the ledger's causes)."""
