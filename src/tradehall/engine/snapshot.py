"""Snapshots: the whole engine state as canonically ordered msgpack (equal states, equal bytes)."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from tradehall.domain.enums import (
    AccountKind,
    AccountStatus,
    CostBasis,
    MarketStatus,
    TradingState,
    TransferStatus,
)
from tradehall.domain.market import MarketSpec
from tradehall.domain.tiers import TierSpec
from tradehall.engine.checks import default_trigger
from tradehall.engine.config import EngineConfig
from tradehall.engine.constants import BUY, PENDING_TRIGGER, PERP, QUOTE_VENUE
from tradehall.engine.ledger import Account, Balance
from tradehall.engine.markets import Market
from tradehall.engine.order_record import OrderRecord
from tradehall.engine.orders import order_of, record_of
from tradehall.engine.risk import AssessmentState
from tradehall.engine.state import EngineState, Route, Transfer

SNAPSHOT_VERSION: Final = 2
"""2: positions keep their exact cost fraction and life cash flow, markets clearing's P&L since flat,
and a linear fee's accrued numerator is over PPM x the notional's denominator (the exact notional).
Version 1 snapshots still load (`load_state` converts them)."""
READABLE_VERSIONS: Final = (1, 2)


def snapshot_state(state: EngineState) -> dict[str, Any]:
    accounts = []
    for account_id in sorted(state.accounts):
        a = state.accounts[account_id]
        accounts.append(
            [
                a.account_id,
                a.owner,
                a.kind,
                a.currency,
                a.cost_basis,
                a.tier,
                a.status,
                a.trading_state,
                sorted([c, b.total, b.held] for c, b in a.balances.items()),
                sorted(a.leverage.items()),
                None if a.assessment is None else [a.assessment.tier, a.assessment.snapshot()],
                None if a.status_reason is None else list(a.status_reason),
            ]
        )
    markets = []
    for symbol in sorted(state.markets):
        m = state.markets[symbol]
        positions = [
            [
                p.account_id,
                p.quantity,
                p.cost,
                p.realized,
                p.margin,
                p.reserved_buy,
                p.reserved_sell,
                None if p.lots is None else [list(lot) for lot in p.lots],
                p.cost_rem,
                p.cost_den,
                p.flow,
            ]
            for _, p in sorted(m.positions.items())
        ]
        markets.append(
            {
                "spec": m.spec,
                "status": m.status,
                "book_sequence": m.book_sequence,
                "last_price": m.last_price,
                "mark_price": m.marks.price,
                "positions": positions,
                "quote": [m.quote.bids, m.quote.asks, m.quote.ts],
                "delayed": [o.order_id for o in m.quote.delayed],
                "intervals": sorted([a, low, high] for a, (low, high) in m.marks.interval_of.items()),
                "next_funding_ts": m.marks.next_funding_ts,
                "clearing_pnl": m.clearing_pnl,
            }
        )
    return {
        "version": SNAPSHOT_VERSION,
        "config": state.config,
        "now": state.now,
        "next_order_id": state.next_order_id,
        "next_trade_id": state.next_trade_id,
        "priority": state.priority,
        "accounts": accounts,
        "markets": markets,
        "orders": [record_of(order) for _, order in sorted(state.orders.items())],
        "client_order_ids": sorted([a, c, i] for (a, c), i in state.client_order_ids.items()),
        "client_order_fingerprints": sorted(
            [a, c, f] for (a, c), f in state.client_order_fingerprints.items()
        ),
        # a smart order is kept while one of its children is open (one that ended is forgotten here)
        "routes": [
            [r.parent_id, r.account_id, r.children]
            for _, r in sorted(state.routes.items())
            if any(child in state.orders for child in r.children)
        ],
        "transfers": [
            [t.transfer_id, t.side, t.account_id, t.currency, t.amount, t.peer, t.status, t.reason]
            for _, t in sorted(state.transfers.items())
        ],
    }


def decode(data: bytes) -> tuple[EngineConfig, dict[str, Any]]:
    """The snapshot's config (to build the engine with) and its raw state."""
    raw: dict[str, Any] = msgspec.msgpack.decode(data)
    if raw.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"unsupported snapshot version {raw.get('version')}")
    return msgspec.convert(raw["config"], EngineConfig), raw


def load_state(state: EngineState, raw: dict[str, Any]) -> None:
    """Fill a fresh engine's state from a decoded snapshot (the reset schedule is the caller's)."""
    config = state.config
    state.now = raw["now"]
    state.next_order_id = raw["next_order_id"]
    state.next_trade_id = raw["next_trade_id"]
    state.priority = raw["priority"]
    for raw_account in raw["accounts"]:
        (
            account_id,
            owner,
            kind,
            currency,
            cost_basis,
            tier,
            status,
            trading_state,
            balances,
            leverage,
            assessment,
        ) = raw_account[:11]
        account = Account(account_id, owner, AccountKind(kind), currency, CostBasis(cost_basis), tier)
        reason = raw_account[11] if len(raw_account) > 11 else None  # absent in older snapshots
        if reason is not None:
            account.status_reason = (reason[0], reason[1], reason[2], reason[3])
        account.status = AccountStatus(status)
        account.trading_state = TradingState(trading_state)
        for currency_code, total, held in balances:
            account.balances[currency_code] = Balance(total, held)
        account.leverage = dict(leverage)
        if assessment is not None:
            tier_spec = msgspec.convert(assessment[0], TierSpec)
            account.assessment = AssessmentState(tier_spec, config.decimals(tier_spec.currency), 0)
            account.assessment.restore(assessment[1])
        state.accounts[account_id] = account
    delayed: dict[str, list[int]] = {}
    for raw_market in raw["markets"]:
        spec = msgspec.convert(raw_market["spec"], MarketSpec)
        market = Market(spec, config.currency_decimals, state.book_factory())
        market.status = MarketStatus(raw_market["status"])
        market.book_sequence = raw_market["book_sequence"]
        market.last_price = raw_market["last_price"]
        market.marks.price = raw_market["mark_price"]
        market.quote.bids, market.quote.asks, market.quote.ts = raw_market["quote"]
        market.marks.next_funding_ts = raw_market["next_funding_ts"]
        market.clearing_pnl = raw_market.get("clearing_pnl", 0)
        for row in raw_market["positions"]:
            account_id, quantity, cost, realized, margin, reserved_buy, reserved_sell, lots = row[:8]
            position = state.position(market, state.accounts[account_id])
            position.quantity, position.cost, position.realized = quantity, cost, realized
            if len(row) > 8:
                position.cost_rem, position.cost_den, position.flow = row[8], row[9], row[10]
            else:  # version 1: the life's history is unknown; a new one starts at the current cost
                position.flow, position.realized = -cost, 0
            if quantity and market.kind is PERP:
                state.accounts[account_id].open_perps += 1
                market.open_lots += abs(quantity)
            position.margin, position.reserved_buy, position.reserved_sell = (
                margin,
                reserved_buy,
                reserved_sell,
            )
            if lots is not None and position.lots is not None:
                position.lots.extend([list(lot) for lot in lots])
        for account_id, low, high in raw_market["intervals"]:
            market.marks.set_interval(account_id, (low, high))
        delayed[spec.symbol] = raw_market["delayed"]
        state.markets[spec.symbol] = market
    restored = [order_of(msgspec.convert(raw_order, OrderRecord)) for raw_order in raw["orders"]]
    if raw["version"] == 1:  # a linear fee's numerator was over PPM (of the floored notional)
        for order in restored:
            market = state.markets[order.market]
            if not market.terms.quadratic:
                order.fee_accrued *= market.terms.notional.den
    for order in sorted(restored, key=lambda o: o.priority):
        account = state.accounts[order.account_id]
        market = state.markets[order.market]
        state.register(order, account)
        if order.status is PENDING_TRIGGER and order.trigger is None:  # a snapshot from before triggers
            order.trigger = default_trigger(market)
        if order.status is PENDING_TRIGGER:
            market.stops.add(order)
        elif order.in_book and market.venue is QUOTE_VENUE:
            (market.quote.paper_bids if order.side is BUY else market.quote.paper_asks).add(order)
        elif order.in_book:
            order.in_book = False
            market.book.add(order)
    for symbol, order_ids in delayed.items():
        state.markets[symbol].quote.delayed = [state.orders[order_id] for order_id in order_ids]
    for market in state.markets.values():
        market.book.take_changes()
    for account_id, client_order_id, order_id in raw["client_order_ids"]:
        state.client_order_ids[(account_id, client_order_id)] = order_id
    for account_id, client_order_id, fingerprint in raw.get("client_order_fingerprints", ()):
        state.client_order_fingerprints[(account_id, client_order_id)] = fingerprint
    for parent_id, account_id, children in raw.get("routes", ()):
        state.routes[parent_id] = Route(parent_id, account_id, list(children))
    for transfer_id, side, account_id, currency, amount, peer, status, reason in raw.get("transfers", ()):
        state.transfers[transfer_id] = Transfer(
            transfer_id, side, account_id, currency, amount, peer, TransferStatus(status), reason
        )
