"""Row planning: a batch's changes to the mirror as the rows to insert and update, in write order."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Table

from tradehall.domain.enums import (
    AccountKind,
    MarketKind,
)
from tradehall.domain.fixedpoint import add_fractions, amount_of, average_of, decimal_of
from tradehall.domain.market import BINARY_PAYOUT, instrument_of
from tradehall.store.candles import CandleBuilder
from tradehall.store.ledger import RecordLedger
from tradehall.store.models import (
    Account,
    Balance,
    EquityPoint,
    Fill,
    LedgerEntry,
    Market,
    Order,
    OrderExecution,
    Position,
    table_of,
)
from tradehall.store.projector.config import ProjectorConfig
from tradehall.store.projector.mirror import (
    _ACCOUNT_COLUMNS_MUTABLE,
    _LIVE_ORDER_STATUSES,
    _ORDER_COLUMNS_MUTABLE,
    _POSITION_COLUMNS_MUTABLE,
    _ZERO,
    _AccountState,
    _MarketState,
    _Mirror,
    _PositionState,
    _Write,
)
from tradehall.store.types import utc_of_ns

_EXECUTION_COLUMNS_MUTABLE = (
    "filled_quantity",
    "notional",
    "fees",
    "average_price",
    "decision_price",
    "vwap",
    "ended_at",
    "last_fill_at",
    "arrival_slippage_bps",
    "vwap_slippage_bps",
    "implementation_shortfall_bps",
    "markout_1s_bps",
    "markout_10s_bps",
    "markout_60s_bps",
)


class _BatchRows:
    """What one batch changed, and its rows in write order; `batch._Batch` applies the events to it."""

    def __init__(self, mirror: _Mirror, config: ProjectorConfig) -> None:
        self.mirror = mirror
        self.config = config
        self.fill_count = 0
        self.new_markets: set[str] = set()
        self.dirty_markets: set[str] = set()
        self.new_accounts: set[str] = set()
        self.dirty_accounts: set[str] = set()
        self.new_balances: set[tuple[str, str]] = set()
        self.dirty_balances: set[tuple[str, str]] = set()
        self.new_positions: set[tuple[str, str]] = set()
        self.dirty_positions: set[tuple[str, str]] = set()
        self.revalued_markets: dict[str, tuple[int, int]] = {}
        self.touched_accounts: dict[str, tuple[int, int]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.new_orders: set[int] = set()
        self.fills: list[dict[str, Any]] = []
        self.ledger: list[dict[str, Any]] = []
        self._record_ledger = RecordLedger()
        self._ledger_index = 0
        self._command = ""
        self.candles = CandleBuilder(config.candle_intervals)
        self._seq = 0
        self._ts = 0
        self._last_ns = 0
        self._last_utc = utc_of_ns(0)
        self._route_start: tuple[Decimal | None, Decimal, Decimal] = (None, Decimal(0), Decimal(0))
        """A smart order's consolidated mid and instrument trade sums before its routing."""

    # ---- writing ----------------------------------------------------------------------------

    def fill_times(self) -> list[datetime]:
        """The distinct execution times of the batch's fills (for their monthly partitions)."""
        return sorted({fill["executed_at"] for fill in self.fills})

    def plan(self) -> list[_Write]:
        """The batch's rows, in write order; order rows are copied (the mirror keeps changing them)."""
        mirror = self.mirror
        writes: list[_Write] = []

        def add(
            table: Table,
            rows: list[dict[str, Any]],
            keys: tuple[str, ...] = (),
            columns: tuple[str, ...] = (),
        ) -> None:
            if rows:
                writes.append(_Write(table, rows, keys, columns))

        add(table_of(Market), [self._market_row(symbol) for symbol in sorted(self.new_markets)])
        add(
            table_of(Market),
            [self._market_row(symbol) for symbol in sorted(self.dirty_markets - self.new_markets)],
            ("symbol",),
            ("status", "outcome", "settled_at", "last_price", "mark_price", "updated_at"),
        )
        for symbol, (seq, ts) in self.revalued_markets.items():
            revalued: set[str] = set()
            for account_id in mirror.accounts_by_market.get(symbol, ()):
                if mirror.positions[(account_id, symbol)].quantity != 0:
                    self.dirty_positions.add((account_id, symbol))
                    revalued.add(account_id)
            spec = mirror.markets[symbol].spec
            if spec.kind == MarketKind.SPOT:  # whoever holds its base, bought or deposited
                revalued.update(mirror.holders_of.get(spec.base, ()))
            for account_id in revalued:
                if self.touched_accounts.get(account_id, (0, 0)) < (seq, ts):
                    self.touched_accounts[account_id] = (seq, ts)
        add(table_of(Balance), [self._balance_row(key) for key in sorted(self.new_balances)])
        add(
            table_of(Balance),
            [self._balance_row(key) for key in sorted(self.dirty_balances - self.new_balances)],
            ("account_id", "currency", "shard"),
            ("total", "held", "available", "updated_at"),
        )
        add(table_of(Position), [self._position_row(key) for key in sorted(self.new_positions)])
        add(
            table_of(Position),
            [self._position_row(key) for key in sorted(self.dirty_positions - self.new_positions)],
            ("account_id", "market"),
            _POSITION_COLUMNS_MUTABLE,
        )
        add(table_of(Order), [dict(self.orders[i]) for i in sorted(self.new_orders)])
        add(
            table_of(Order),
            [dict(row) for order_id, row in self.orders.items() if order_id not in self.new_orders],
            ("id",),
            _ORDER_COLUMNS_MUTABLE,
        )
        inserts, updates = mirror.execution.take_writes()
        add(table_of(OrderExecution), inserts)
        add(table_of(OrderExecution), updates, ("order_id",), _EXECUTION_COLUMNS_MUTABLE)
        for order_id, row in self.orders.items():
            if row["status"] not in _LIVE_ORDER_STATUSES:
                mirror.open_orders.pop(order_id, None)
        add(table_of(Fill), self.fills)
        add(table_of(LedgerEntry), self.ledger)
        if not self.config.writes_accounts:
            return writes
        new_accounts, old_accounts, points = self._account_rows()
        add(table_of(Account), new_accounts)
        add(table_of(Account), old_accounts, ("id",), _ACCOUNT_COLUMNS_MUTABLE)
        add(table_of(EquityPoint), points)
        return writes

    def _account_rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        mirror = self.mirror
        interval_ns = int(self.config.equity_interval_seconds * 1_000_000_000)
        new_rows: list[dict[str, Any]] = []
        old_rows: list[dict[str, Any]] = []
        points: list[dict[str, Any]] = []
        for account_id in sorted(set(self.touched_accounts) | self.dirty_accounts | self.new_accounts):
            account = mirror.accounts.get(account_id)
            if account is None:
                continue
            seq, ts = self.touched_accounts.get(account_id, (self._seq, self._ts))
            row = self._account_row(account, ts)
            (new_rows if account_id in self.new_accounts else old_rows).append(row)
            if account_id in self.touched_accounts and (
                account.last_point_ns is None or ts - account.last_point_ns >= interval_ns
            ):
                account.last_point_ns = ts
                points.append(
                    {"account_id": account_id, "seq": seq, "at": utc_of_ns(ts), "equity": row["equity"]}
                )
        return new_rows, old_rows, points

    def _account_row(self, account: _AccountState, ts: int) -> dict[str, Any]:
        mirror = self.mirror
        places = self.config.currency_decimals.get(account.currency, self.config.default_currency_decimals)
        total, held, _ = mirror.balances.get((account.id, account.currency), (0, 0, 0))
        balance = amount_of(total, places)
        # exact sums in minor units of the account's currency, (numerator, denominator), as the engine's
        value, value_den = total, 1
        unrealized, unrealized_den = 0, 1
        realized = _ZERO
        for asset in mirror.assets_of.get(account.id, ()):  # as the engine: every other asset held
            if asset != account.currency:
                spot = mirror.spot_market_for(asset, account.currency)
                if spot is not None:
                    held_value = self._holding_value(account.id, spot, spot.valuation_price)
                    num, den = held_value.scaleb(places).as_integer_ratio()
                    value, value_den = add_fractions(value, value_den, num, den)
        for symbol in sorted(mirror.markets_by_account.get(account.id, ())):
            market = mirror.markets[symbol]
            if market.spec.quote != account.currency:
                continue
            position = mirror.positions[(account.id, symbol)]
            realized += amount_of(position.realized_pnl, market.quote_decimals)
            price = market.valuation_price
            if position.quantity == 0:
                continue
            ratio_num, ratio_den = market.minor_ratio
            if price is not None:
                num, den = _pnl_ticks(position, price)
                unrealized, unrealized_den = add_fractions(
                    unrealized, unrealized_den, num * ratio_num, den * ratio_den
                )
            if market.spec.kind != MarketKind.SPOT:
                num, den = _position_value(market, position, price)
                value, value_den = add_fractions(value, value_den, num * ratio_num, den * ratio_den)
        # shown as the engine's valuation shows them: down to the minor unit
        equity = amount_of(value // value_den, places)
        unrealized_shown = amount_of(unrealized // unrealized_den, places)
        if account.kind == AccountKind.ASSESSMENT.value:
            # The engine's AssessmentUpdated carries the peak its rules use: never second-guess it.
            peak = equity if account.peak_equity is None else account.peak_equity
        else:
            peak = equity if account.peak_equity is None else max(account.peak_equity, equity)
            account.peak_equity = peak
        account.updated_ns = max(account.updated_ns, ts)
        return {
            "id": account.id,
            "owner": account.owner,
            "kind": account.kind,
            "currency": account.currency,
            "cost_basis": account.cost_basis,
            "tier": account.tier,
            "status": account.status,
            "trading_state": account.trading_state,
            "balance": balance,
            "available": amount_of(total - held, places),
            "equity": equity,
            "unrealized_pnl": unrealized_shown,
            "realized_pnl": realized,
            "peak_equity": peak,
            "drawdown": max(_ZERO, peak - equity),
            "created_at": utc_of_ns(account.created_ns),
            "updated_at": utc_of_ns(account.updated_ns),
        }

    def _holding_value(self, account_id: str, market: _MarketState, price: int | None) -> Decimal:
        """The account's balance of a spot market's base at `price`, exactly, in its quote."""
        base = market.spec.base
        total = self.mirror.balances.get((account_id, base), (0, 0, 0))[0]
        if price is None or not total:
            return _ZERO
        places = self.config.currency_decimals.get(base, self.config.default_currency_decimals)
        return amount_of(total, places) * market.price(price)

    def _market_row(self, symbol: str) -> dict[str, Any]:
        market = self.mirror.markets[symbol]
        spec = market.spec
        return {
            "symbol": spec.symbol,
            "instrument": instrument_of(spec),
            "kind": spec.kind.value,
            "venue": spec.venue.value,
            "base": spec.base,
            "quote": spec.quote,
            "tick_size": spec.tick_size,
            "lot_size": spec.lot_size,
            "min_quantity": spec.min_quantity,
            "max_quantity": spec.max_quantity,
            "maker_fee": spec.maker_fee,
            "taker_fee": spec.taker_fee,
            "fee_model": spec.fee_model.value,
            "max_leverage": spec.max_leverage,
            "initial_margin": spec.initial_margin,
            "maintenance_margin": spec.maintenance_margin,
            "status": market.status,
            "outcome": market.outcome,
            "settled_at": None if market.settled_ns is None else utc_of_ns(market.settled_ns),
            "close_time": None if spec.close_time is None else utc_of_ns(spec.close_time),
            "last_price": None
            if market.last_price is None
            else decimal_of(market.last_price, spec.tick_size),
            "mark_price": None
            if market.mark_price is None
            else decimal_of(market.mark_price, spec.tick_size),
            "spec_json": msgspec.json.encode(spec).decode(),
            "created_at": utc_of_ns(market.created_ns),
            "updated_at": utc_of_ns(market.updated_ns),
        }

    def _balance_row(self, key: tuple[str, str]) -> dict[str, Any]:
        total, held, ts = self.mirror.balances[key]
        places = self.config.currency_decimals.get(key[1], self.config.default_currency_decimals)
        return {
            "account_id": key[0],
            "currency": key[1],
            "shard": self.config.shard_index,
            "total": amount_of(total, places),
            "held": amount_of(held, places),
            "available": amount_of(total - held, places),
            "updated_at": utc_of_ns(ts),
        }

    def _position_row(self, key: tuple[str, str]) -> dict[str, Any]:
        position = self.mirror.positions[key]
        market = self.mirror.markets[key[1]]
        spec = market.spec
        quantity = position.quantity
        price = market.valuation_price if quantity else position.flat_price
        average: Decimal | None = None
        if quantity:
            average = average_of(
                position.cost, position.cost_rem, position.cost_den, quantity, market.tick_lot, spec.lot_size
            )
            if market.payout_ticks is not None and quantity < 0:
                average = BINARY_PAYOUT - average
        unrealized = _ZERO
        mark = None if price is None else decimal_of(price, spec.tick_size)
        if quantity and price is not None:
            num, den = _pnl_ticks(position, price)
            ratio_num, ratio_den = market.minor_ratio
            unrealized = amount_of((num * ratio_num) // (den * ratio_den), market.quote_decimals)
            if market.payout_ticks is not None and quantity < 0:
                mark = BINARY_PAYOUT - decimal_of(price, spec.tick_size)  # NO terms, like its entry
        updated = position.updated_ns
        if quantity and key[1] in self.revalued_markets:
            updated = max(updated, self.revalued_markets[key[1]][1])
        return {
            "account_id": key[0],
            "market": key[1],
            "side": _position_side(spec.kind, quantity),
            "quantity": decimal_of(quantity, spec.lot_size),
            "cost": decimal_of(position.cost, market.tick_lot),
            "average_entry_price": average,
            "mark_price": mark,
            "unrealized_pnl": unrealized,
            "realized_pnl": amount_of(position.realized_pnl, market.quote_decimals),
            "margin": amount_of(position.margin, market.quote_decimals),
            "updated_at": utc_of_ns(updated),
        }


def _position_side(kind: MarketKind, quantity: int) -> str:
    if quantity == 0:
        return "flat"
    if kind == MarketKind.BINARY:
        return "yes" if quantity > 0 else "no"
    return "long" if quantity > 0 else "short"


def _pnl_ticks(position: _PositionState, price: int) -> tuple[int, int]:
    """Unrealised P&L at `price` in tick-lots, exactly, as (numerator, denominator): the entry cost is
    cost + cost_rem / cost_den."""
    den = position.cost_den
    return (position.quantity * price - position.cost) * den - position.cost_rem, den


def _position_value(market: _MarketState, position: _PositionState, price: int | None) -> tuple[int, int]:
    """What the position adds to equity, exactly, in tick-lots of the quote currency, as (numerator,
    denominator).

    Perp: only its unrealised P&L (the margin is still in the cash balance). Spot: the holding at the
    price. Binary: YES contracts at the price, NO contracts at payout - price. Without any price yet
    (no mark, no trade) a position counts at its cost, with no P&L.
    """
    quantity = position.quantity
    if market.spec.kind == MarketKind.PERP:
        return (0, 1) if price is None else _pnl_ticks(position, price)
    den = 1 if price is not None else position.cost_den
    value = quantity * price if price is not None else position.cost * den + position.cost_rem
    if market.payout_ticks is not None and quantity < 0:
        return -quantity * market.payout_ticks * den + value, den
    return value, den
