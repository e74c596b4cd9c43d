"""Stops: fire the stop orders whose trigger source has reached them."""

from __future__ import annotations

from tradehall.domain.enums import StopTrigger
from tradehall.domain.events import OrderTriggered
from tradehall.engine.checks import trigger_price
from tradehall.engine.constants import BUY, MARKET_OPEN, OPEN, SELL
from tradehall.engine.execution import Execution
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.state import EngineState, by_order_id

TRIGGER_SOURCES = ((StopTrigger.LAST, 0), (StopTrigger.MARK, 1), (StopTrigger.BID_ASK, 2))
"""Each trigger source with its group in the stop lists (`markets.TRIGGER_RANK`)."""


class Stops:
    def __init__(self, state: EngineState, execution: Execution) -> None:
        self._state = state
        self._execution = execution

    def trigger(self, market: Market) -> None:
        """Fire the stops whose trigger source has reached them (inclusive: >= for buys, <= for
        sells), in order-id order, in the same command as the change that moved the price; again
        while the fired stops move a price further. Only an open market fires stops."""
        stops_buy, stops_sell = market.stops_buy, market.stops_sell
        while (stops_buy or stops_sell) and market.status is MARKET_OPEN:
            triggered: list[Order] = []
            for trigger, rank in TRIGGER_SOURCES:
                if stops_buy:
                    price = trigger_price(market, trigger, BUY)
                    if price is not None:
                        triggered.extend(
                            stops_buy.irange_key((rank,), (rank, price + 1), inclusive=(True, False))
                        )
                if stops_sell:
                    price = trigger_price(market, trigger, SELL)
                    if price is not None:
                        triggered.extend(
                            stops_sell.irange_key((rank, price), (rank + 1,), inclusive=(True, False))
                        )
            if not triggered:
                return
            triggered.sort(key=by_order_id)
            for order in triggered:
                (stops_buy if order.side is BUY else stops_sell).remove(order)
            for order in triggered:
                self.fire(order, market)

    def fire(self, order: Order, market: Market) -> None:
        now = self._state.now
        order.status = OPEN
        order.updated_ts = now
        self._state.events.append(
            OrderTriggered(order_id=order.order_id, account_id=order.account_id, market=order.market, ts=now)
        )
        self._execution.rearm(order, market, stated_reason=True)
