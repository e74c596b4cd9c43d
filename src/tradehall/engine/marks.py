"""Market data into the engine: marks and quotes, and what a new quote does on a quote venue."""

from __future__ import annotations

from typing import Any

from tradehall.domain import commands as cmds
from tradehall.domain.errors import invalid_request
from tradehall.domain.events import MarkPriceUpdated, QuoteUpdated
from tradehall.domain.fixedpoint import parse_decimal
from tradehall.engine.checks import check_mark_band, price_of
from tradehall.engine.constants import MARKET_OPEN, QUOTE_VENUE
from tradehall.engine.execution import Execution
from tradehall.engine.markets import Market
from tradehall.engine.quote_venue import QuoteVenue
from tradehall.engine.state import EngineState
from tradehall.engine.stops import Stops
from tradehall.engine.supervisor import Supervisor


def _descending(level: list[Any]) -> Any:
    return -level[0]


def _ascending(level: list[Any]) -> Any:
    return level[0]


class MarketData:
    def __init__(
        self,
        state: EngineState,
        execution: Execution,
        quote: QuoteVenue,
        stops: Stops,
        supervisor: Supervisor,
    ) -> None:
        self._state = state
        self._execution = execution
        self._quote_venue = quote
        self._stops = stops
        self._supervisor = supervisor

    def mark_price(self, command: cmds.MarkPrice) -> None:
        state = self._state
        market = state.market(command.market)
        price = price_of(market, command.price, "price")
        refusal = check_mark_band(market, price)
        if refusal is not None:
            raise refusal
        market.marks.price = price
        self._state.events.append(MarkPriceUpdated(market=market.symbol, price=price, ts=state.now))
        self._supervisor.mark_to_market(market)
        self._stops.trigger(market)

    def quote(self, command: cmds.Quote) -> None:
        state = self._state
        market = state.market(command.market)
        bids = self.quote_levels(market, command.bids, command.bid, command.bid_size, "bid")
        asks = self.quote_levels(market, command.asks, command.ask, command.ask_size, "ask")
        if len(bids) > 1:
            bids.sort(key=_descending)
        if len(asks) > 1:
            asks.sort(key=_ascending)
        last = price_of(market, command.last, "last") if command.last is not None else None
        if bids and asks and bids[0][0] > asks[0][0]:
            raise invalid_request("a quote's bid is above its ask")
        if bids and asks:
            mark = (bids[0][0] + asks[0][0]) // 2
        elif last is not None:
            mark = last
        elif bids or asks:
            mark = (bids or asks)[0][0]
        else:
            raise invalid_request("a quote needs a bid, an ask or a last price")
        refusal = check_mark_band(market, mark)
        if refusal is not None:
            raise refusal
        now = state.now
        quote = market.quote
        quote.bids, quote.asks = bids, asks
        quote.ts = now
        on_quote_venue = market.venue is QUOTE_VENUE
        if last is not None and on_quote_venue:
            market.last_price = last
        market.marks.price = mark
        events = state.events
        symbol = market.symbol
        events.append(
            QuoteUpdated(
                market=symbol,
                bid=bids[0][0] if bids else None,
                ask=asks[0][0] if asks else None,
                last=last,
                source=command.source,
                ts=now,
            )
        )
        events.append(MarkPriceUpdated(market=symbol, price=mark, ts=now))
        if on_quote_venue and market.status is MARKET_OPEN:
            self.quote_venue_tick(market)
        self._supervisor.mark_to_market(market)
        self._stops.trigger(market)  # mark stops; last stops after any close-out fills

    @staticmethod
    def quote_levels(
        market: Market, levels: tuple[tuple[Any, Any], ...], top: Any, top_size: Any, what: str
    ) -> list[list[Any]]:
        """Quoted levels as [ticks, lots or None]; sizes are floored to whole lots (feeds quote any size)."""
        if not levels:  # a feed's top of book: one level, most often without a size
            if top is None:
                return []
            if top_size is None:
                return [[price_of(market, top, what), None]]
        raw = list(levels) if levels else [(top, top_size)]
        result: list[list[Any]] = []
        for price, size in raw:
            lots = None
            if size is not None:
                amount = parse_decimal(size, f"{what} size")
                if amount < 0:
                    raise invalid_request(f"a quoted {what} size is negative")
                lots = int(amount // market.spec.lot_size)
            result.append([price_of(market, price, what), lots])
        return result

    def quote_venue_tick(self, market: Market) -> None:
        """A new quote: orders waiting for latency fill, resting paper limits it crosses, stops it reaches."""
        if market.quote.delayed:
            now = self._state.now
            terms = market.terms
            due = [o for o in market.quote.delayed if o.created_ts + terms.latency_of(o.order_id) <= now]
            for order in due:
                market.quote.delayed.remove(order)
                self._execution.rearm(order, market, stated_reason=False)
        quote = market.quote
        if quote.paper_bids or quote.paper_asks:
            self._quote_venue.fill_crossed_paper(market)
        self._stops.trigger(market)
