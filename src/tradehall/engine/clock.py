"""Time: what `AdvanceTime` brings due (expiries, market close times, daily resets, latency
queues, scheduled funding)."""

from __future__ import annotations

from heapq import heappop
from typing import Final

from tradehall.domain import commands as cmds
from tradehall.domain.enums import CancelReason, MarketStatus
from tradehall.domain.events import OrderExpired
from tradehall.engine.constants import EXPIRED, MARKET_OPEN
from tradehall.engine.funding import Funding
from tradehall.engine.holds import Holds
from tradehall.engine.lifecycle import Lifecycle
from tradehall.engine.marks import MarketData
from tradehall.engine.risk import mark_of
from tradehall.engine.settlement import Settlement
from tradehall.engine.state import EngineState
from tradehall.engine.stops import Stops
from tradehall.engine.supervisor import Supervisor

EXPIRED_REASON: Final = CancelReason.EXPIRED
HALTED: Final = MarketStatus.HALTED
CLOSED: Final = MarketStatus.CLOSED


class Clock:
    def __init__(
        self,
        state: EngineState,
        holds: Holds,
        stops: Stops,
        settlement: Settlement,
        supervisor: Supervisor,
        market_data: MarketData,
        funding: Funding,
    ) -> None:
        self._state = state
        self._holds = holds
        self._stops = stops
        self._settlement = settlement
        self._supervisor = supervisor
        self._market_data = market_data
        self._funding = funding
        self._orders = state.orders
        self._markets = state.markets
        self._accounts = state.accounts

    def advance_time(self, command: cmds.AdvanceTime) -> None:
        state = self._state
        now = state.now
        markets = self._markets
        expiries = state.expiries
        expired_in: set[str] = set()
        while expiries and expiries[0][0] <= now:
            _, order_id = heappop(expiries)
            order = self._orders.get(order_id)
            if order is None or order.expire_at is None or order.expire_at > now:
                continue
            market = markets[order.market]
            state.books_touched.add(market.symbol)
            Lifecycle.unrest(order, market)
            account = self._accounts[order.account_id]
            self._holds.release(order, account, market)
            order.status = EXPIRED
            order.cancel_reason = EXPIRED_REASON
            order.updated_ts = now
            expired_in.add(market.symbol)
            state.unregister(order, account)
            self._state.events.append(
                OrderExpired(
                    order_id=order.order_id,
                    account_id=order.account_id,
                    market=order.market,
                    filled_quantity=order.filled,
                    ts=now,
                )
            )
        for symbol in sorted(expired_in):  # an expiry can move the touch that bid_ask stops watch
            self._stops.trigger(markets[symbol])
        for market in markets.values():
            close_time = market.spec.close_time
            if close_time is not None and close_time <= now and market.status in (MARKET_OPEN, HALTED):
                self._settlement.change_status(market, CLOSED)
        if state.next_reset is not None and now >= state.next_reset:
            self._supervisor.daily_resets()
        for symbol in sorted(markets):
            market = markets[symbol]
            if market.quote.delayed and market.status is MARKET_OPEN:
                self._market_data.quote_venue_tick(market)
            interval = market.terms.funding_interval_ns
            if not interval or not market.terms.funding_rate_e8 or mark_of(market) is None:
                continue
            if market.marks.next_funding_ts is None:
                market.marks.next_funding_ts = (now // interval + 1) * interval
                continue
            if now >= market.marks.next_funding_ts:
                self._funding.pay(market, market.terms.funding_rate_e8)  # once, however many intervals passed
                market.marks.next_funding_ts = (now // interval + 1) * interval
