"""Execution analytics (transaction cost analysis) kept incrementally from the events.

Each accepted order gets an `order_executions` row: the market's mid when it was accepted (before its own
match: the top of book the events reported last), the market's traded notional and quantity at that
moment (so the market's VWAP over the order's life is a difference of two running sums), its fills, its
end, and the markouts of its fills 1 s, 10 s and 60 s later. Definitions (docs/reference.md, "Execution
analytics"), with s = +1 for a buy and -1 for a sell and p the order's average fill price:

- arrival slippage = -s x (p / arrival_mid - 1) x 10^4 bps (tcapy's `arrival` benchmark; cost negative);
- VWAP slippage, the same against the market's trade VWAP from acceptance to the order's end;
- implementation shortfall, the same against the client's `decision_price` (Perold 1988: the price
  when the decision was taken; fees are reported apart);
- a fill's markout at horizon h = s x (mid at fill time + h / fill price - 1) x 10^4 bps, averaged over
  the fills by quantity; null until every fill's horizon has passed.

A horizon is passed when a journal record stamped at or after it arrives: the mid in force then is the
last one reported before that record. The tracker's memory (the tops, the running sums, the orders still
open or awaiting a markout) lives in the projector's mirror: after a projector restart the orders whose
record has not ended are followed again (`resume`), without their VWAP and earlier fills' markouts.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

HORIZONS = (1, 10, 60)
_NS = 1_000_000_000
_BPS = Decimal(10_000)
_CENT = Decimal("0.01")
_TWO = Decimal(2)


def bps(sign: int, price: Decimal, benchmark: Decimal | None) -> Decimal | None:
    """-s x (price / benchmark - 1) x 10^4, to 0.01 bps (None without a benchmark)."""
    if benchmark is None or benchmark == 0:
        return None
    return (-sign * (price / benchmark - 1) * _BPS).quantize(_CENT, ROUND_HALF_EVEN)


@dataclass(slots=True)
class _Market:
    bid: Decimal | None = None
    ask: Decimal | None = None
    traded_notional: Decimal = Decimal(0)
    traded_quantity: Decimal = Decimal(0)

    @property
    def mid(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / _TWO


@dataclass(slots=True)
class _Open:
    """An order being followed: its row, its sign, the market's sums at acceptance, its markouts."""

    row: dict[str, Any]
    sign: int
    sums: _Market
    """Whose running trade sums the VWAP is taken from: the market's, or a smart order's instrument's."""
    start_notional: Decimal
    start_quantity: Decimal
    ended: bool = False
    vwap_known: bool = True
    """False for an order followed again after a projector restart: the sums at its acceptance are lost."""
    fills: list[tuple[Decimal, Decimal, Decimal, int, datetime, str]] = field(default_factory=list)
    markout_sum: list[Decimal] = field(default_factory=lambda: [Decimal(0)] * len(HORIZONS))
    markout_weight: list[Decimal] = field(default_factory=lambda: [Decimal(0)] * len(HORIZONS))
    pending: list[int] = field(default_factory=lambda: [0] * len(HORIZONS))


@dataclass(slots=True)
class ExecutionTracker:
    markets: dict[str, _Market] = field(default_factory=dict)
    following: dict[int, _Open] = field(default_factory=dict)
    instruments: dict[str, _Market] = field(default_factory=dict)
    """Running trade sums over every venue of an instrument listed on several (smart orders' VWAP)."""
    parent_of: dict[int, int] = field(default_factory=dict)
    """A followed smart order's children -> the smart order."""
    due: list[tuple[int, int, int, int, Decimal, Decimal, str]] = field(default_factory=list)
    """(due ns, order id, fill number, horizon index, fill price, fill quantity, the fill's market),
    soonest first."""
    new: set[int] = field(default_factory=set)
    dirty: set[int] = field(default_factory=set)
    finished: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Rows of orders no longer followed this batch (ended, every markout known), still to be written."""
    fill_count: int = 0

    def market(self, symbol: str) -> _Market:
        found = self.markets.get(symbol)
        if found is None:
            found = self.markets[symbol] = _Market()
        return found

    # ---- what the events say --------------------------------------------------------------

    def on_top(self, symbol: str, bid: Decimal | None, ask: Decimal | None) -> None:
        market = self.market(symbol)
        market.bid, market.ask = bid, ask

    def on_trade(self, symbol: str, price: Decimal, quantity: Decimal, instrument: str | None = None) -> None:
        for market in (self.market(symbol), None if instrument is None else self.instrument(instrument)):
            if market is not None:
                market.traded_notional += price * quantity
                market.traded_quantity += quantity

    def instrument(self, instrument: str) -> _Market:
        found = self.instruments.get(instrument)
        if found is None:
            found = self.instruments[instrument] = _Market()
        return found

    def route_start(self, instrument: str, venues: list[str]) -> tuple[Decimal | None, Decimal, Decimal]:
        """Before a smart order is routed: the instrument's consolidated mid (the best bid and the best
        ask over its venues) and its running trade sums."""
        bids = [m.bid for v in venues if (m := self.markets.get(v)) is not None and m.bid is not None]
        asks = [m.ask for v in venues if (m := self.markets.get(v)) is not None and m.ask is not None]
        mid = (max(bids) + min(asks)) / _TWO if bids and asks else None
        sums = self.instrument(instrument)
        return mid, sums.traded_notional, sums.traded_quantity

    def on_routed(
        self,
        parent_id: int,
        account_id: str,
        instrument: str,
        client_order_id: str | None,
        buy: bool,
        quantity: Decimal,
        at: datetime,
        decision_price: Decimal | None,
        start: tuple[Decimal | None, Decimal, Decimal],
        children: list[int],
    ) -> None:
        """A smart order: followed like an order on its instrument, from the state before its routing;
        its children's fills (those of this command already seen, and later ones) are its fills."""
        self.on_accepted(
            parent_id, account_id, instrument, "SMART", client_order_id, buy, quantity, at, decision_price
        )
        parent = self.following[parent_id]
        parent.row["arrival_mid"] = start[0]
        parent.sums = self.instrument(instrument)
        parent.start_notional, parent.start_quantity = start[1], start[2]
        for child_id in children:
            child = self.following.get(child_id)
            if child is None:
                continue
            self.parent_of[child_id] = parent_id
            for price, fill_quantity, fee, ts, fill_at, symbol in child.fills:
                self.on_fill(parent_id, price, fill_quantity, fee, ts, fill_at, symbol)

    def on_accepted(
        self,
        order_id: int,
        account_id: str,
        symbol: str,
        venue: str,
        client_order_id: str | None,
        buy: bool,
        quantity: Decimal,
        at: datetime,
        decision_price: Decimal | None = None,
    ) -> None:
        market = self.market(symbol)
        row: dict[str, Any] = {
            "order_id": str(order_id),
            "account_id": account_id,
            "market": symbol,
            "venue": venue,
            "session": None
            if not client_order_id or "-" not in client_order_id
            else client_order_id.split("-")[0],
            "day": at.astimezone(UTC).date().isoformat(),
            "side": "buy" if buy else "sell",
            "quantity": quantity,
            "filled_quantity": Decimal(0),
            "notional": Decimal(0),
            "fees": Decimal(0),
            "average_price": None,
            "arrival_mid": market.mid,
            "decision_price": decision_price,
            "vwap": None,
            "accepted_at": at,
            "ended_at": None,
            "last_fill_at": None,
            "arrival_slippage_bps": None,
            "vwap_slippage_bps": None,
            "implementation_shortfall_bps": None,
            "markout_1s_bps": None,
            "markout_10s_bps": None,
            "markout_60s_bps": None,
        }
        self.following[order_id] = _Open(
            row, 1 if buy else -1, market, market.traded_notional, market.traded_quantity
        )
        self.new.add(order_id)

    def on_fill(
        self,
        order_id: int,
        price: Decimal,
        quantity: Decimal,
        fee: Decimal,
        ts: int,
        at: datetime,
        symbol: str | None = None,
    ) -> None:
        order = self.following.get(order_id)
        if order is None:
            return
        row = order.row
        symbol = symbol or row["market"]
        order.fills.append((price, quantity, fee, ts, at, symbol))
        row["filled_quantity"] += quantity
        row["notional"] += price * quantity
        row["fees"] += fee
        row["average_price"] = row["notional"] / row["filled_quantity"]
        row["last_fill_at"] = at
        row["arrival_slippage_bps"] = bps(order.sign, row["average_price"], row["arrival_mid"])
        row["implementation_shortfall_bps"] = bps(order.sign, row["average_price"], row["decision_price"])
        self.fill_count += 1
        for index, horizon in enumerate(HORIZONS):
            entry = (ts + horizon * _NS, order_id, self.fill_count, index, price, quantity, symbol)
            heapq.heappush(self.due, entry)
            order.pending[index] += 1
            row[f"markout_{horizon}s_bps"] = None  # until this fill's horizon has passed too
        self.dirty.add(order_id)
        parent = self.parent_of.get(order_id)
        if parent is not None:
            self.on_fill(parent, price, quantity, fee, ts, at, symbol)

    def resume(self, row: dict[str, Any]) -> None:
        """An order still open when the projector stopped: its later fills and end update its row again
        (its VWAP and the markouts of its earlier fills are not known any more and stay null)."""
        order_id = int(row["order_id"])
        market = self.market(row["market"])
        order = _Open(row, 1 if row["side"] == "buy" else -1, market, Decimal(0), Decimal(0))
        order.vwap_known = False
        self.following[order_id] = order

    def set_decision(self, order_id: int, decision_price: Decimal) -> None:
        """A smart order's child takes its parent's decision price."""
        order = self.following.get(order_id)
        if order is None:
            return
        order.row["decision_price"] = decision_price
        if order.row["average_price"] is not None:
            order.row["implementation_shortfall_bps"] = bps(
                order.sign, order.row["average_price"], decision_price
            )
        self.dirty.add(order_id)

    def on_end(self, order_id: int, at: datetime) -> None:
        order = self.following.get(order_id)
        if order is None or order.ended:
            return
        order.ended = True
        row = order.row
        row["ended_at"] = at
        market = order.sums
        quantity = market.traded_quantity - order.start_quantity
        if quantity > 0 and order.vwap_known:
            row["vwap"] = (market.traded_notional - order.start_notional) / quantity
            if row["average_price"] is not None:
                row["vwap_slippage_bps"] = bps(order.sign, row["average_price"], row["vwap"])
        self.dirty.add(order_id)
        self._forget_if_done(order_id, order)

    def advance(self, ts: int) -> None:
        """A record stamped `ts` arrives: every markout due by then takes the mid in force before it."""
        due = self.due
        while due and due[0][0] <= ts:
            _, order_id, _, index, price, quantity, symbol = heapq.heappop(due)
            order = self.following.get(order_id)
            if order is None:
                continue
            mid = self.market(symbol).mid
            if mid is not None:
                order.markout_sum[index] += quantity * order.sign * (mid / price - 1) * _BPS
                order.markout_weight[index] += quantity
            order.pending[index] -= 1
            weight = order.markout_weight[index]
            if order.pending[index] == 0 and weight:
                value = (order.markout_sum[index] / weight).quantize(_CENT, ROUND_HALF_EVEN)
                order.row[f"markout_{HORIZONS[index]}s_bps"] = value
            self.dirty.add(order_id)
            self._forget_if_done(order_id, order)

    def _forget_if_done(self, order_id: int, order: _Open) -> None:
        if order.ended and not any(order.pending):
            self.finished[order_id] = order.row
            del self.following[order_id]
            self.parent_of.pop(order_id, None)

    def take_writes(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The batch's new rows and changed rows (copies: the tracker keeps changing them)."""
        rows = {order_id: order.row for order_id, order in self.following.items()}
        rows.update(self.finished)
        inserts = [dict(rows[i]) for i in sorted(self.new) if i in rows]
        updates = [dict(rows[i]) for i in sorted(self.dirty - self.new) if i in rows]
        self.new.clear()
        self.dirty.clear()
        self.finished.clear()
        return inserts, updates
