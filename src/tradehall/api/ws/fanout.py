"""Fan-out of the engine's durable records to the subscribers of public and private channels.

A mixin of the hub (`WebSocketHub`): it reads the hub's registry of channels and pushes one
serialized message per event to every subscriber of a public channel, so the cost of an event is one
serialization plus one queue append per subscriber. Private channels' messages go through
`private` (the REST objects, in journal order per user); an account gets one `account` update per
record that changed it, and a balance change (a fill's cash, funding, a deposit) sends the account's
perp positions again, since it moves their `liquidation_price`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tradehall.api import convert
from tradehall.api.gateway import Gateway
from tradehall.api.ws.connection import Connection
from tradehall.api.ws.private import PrivateFeed
from tradehall.api.ws.snapshots import data_message as _data
from tradehall.domain.events import (
    AccountOpened,
    AccountStatusChanged,
    AssessmentFailed,
    AssessmentPassed,
    AssessmentUpdated,
    BalanceChanged,
    BookChanged,
    MarketStatusChanged,
    MarkPriceUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderTriggered,
    PositionChanged,
    TradeExecuted,
)
from tradehall.domain.fixedpoint import decimal_of, decimal_str
from tradehall.engine import views
from tradehall.journal.records import JournalRecord

_ORDER_EVENTS = (OrderAccepted, OrderFilled, OrderCancelled, OrderExpired, OrderAmended, OrderTriggered)
_ACCOUNT_EVENTS = (
    AccountOpened,
    AccountStatusChanged,
    AssessmentFailed,
    AssessmentPassed,
    AssessmentUpdated,
    BalanceChanged,
)
"""Events that change what `GET /accounts/{id}` shows (with `PositionChanged`): an `account` update."""


def candle_dict(bar: Any, spec: Any) -> dict[str, Any]:
    return {
        "t": convert.rfc3339_ns(bar.start),
        "open": decimal_str(decimal_of(bar.open, spec.tick_size)),
        "high": decimal_str(decimal_of(bar.high, spec.tick_size)),
        "low": decimal_str(decimal_of(bar.low, spec.tick_size)),
        "close": decimal_str(decimal_of(bar.close, spec.tick_size)),
        "volume": decimal_str(decimal_of(bar.volume, spec.lot_size)),
    }


class RecordFanout(PrivateFeed):
    gateway: Gateway
    connections: set[Connection]
    public: dict[str, set[Connection]]
    private: dict[tuple[str, str], set[Connection]]
    from_bus: bool

    # ---- durable records -------------------------------------------------------------------------

    def on_records(self, records: Sequence[JournalRecord]) -> None:
        if not self.public and not self.private:  # no subscriber at all: order entry alone costs nothing here
            return
        for record in records:
            tickers: set[str] = set()
            accounts: dict[str, None] = {}  # in order of first change
            cash_moved: dict[str, None] = {}
            positions_sent: set[tuple[str, str]] = set()
            for event in record.events:
                if isinstance(event, BookChanged):
                    if not self.from_bus:
                        self._book_update(event)
                    tickers.add(event.market)
                elif isinstance(event, TradeExecuted):
                    if not self.from_bus:
                        self._trade(event, record.seq)
                    tickers.add(event.market)
                elif isinstance(event, MarkPriceUpdated | MarketStatusChanged):  # the ticker shows the status
                    tickers.add(event.market)
                elif self.private:
                    changed = self._private(event, record.seq)
                    if changed is not None:
                        accounts[changed] = None
                    if isinstance(event, BalanceChanged):
                        cash_moved[event.account_id] = None
                    elif isinstance(event, PositionChanged):
                        positions_sent.add((event.account_id, event.market))
            for account_id in accounts:  # one `account` update per account and record
                self.account_updates(self._owner(account_id) or "", record.seq, (account_id,))
            for account_id in cash_moved:
                self._liquidation_prices_moved(account_id, record.seq, positions_sent)
            for symbol in tickers:
                self._ticker(symbol, record.seq)

    def _book_update(self, event: BookChanged) -> None:
        channel = f"book:{event.market}"
        subscribers = self.public.get(channel)
        if not subscribers:
            return
        spec = views.spec(self.gateway.engine, event.market)
        if spec is None:
            return
        text = _data(
            channel,
            "update",
            event.sequence,
            {
                "symbol": event.market,
                "bids": convert.levels(event.bids, spec),
                "asks": convert.levels(event.asks, spec),
            },
        )
        for connection in list(subscribers):
            if event.sequence > connection.book_sequence.get(event.market, 0):
                connection.book_sequence[event.market] = event.sequence
                connection.push(text)

    def _trade(self, event: TradeExecuted, seq: int) -> None:
        channel = f"trades:{event.market}"
        subscribers = self.public.get(channel)
        if not subscribers:
            return
        spec = self.gateway.spec(event.market)
        text = _data(
            channel,
            "update",
            seq,
            {
                "id": str(event.trade_id),
                "market": event.market,
                "price": decimal_str(decimal_of(event.price, spec.tick_size)),
                "quantity": decimal_str(decimal_of(event.quantity, spec.lot_size)),
                "side": event.taker_side.value,
                "executed_at": convert.rfc3339_ns(event.ts),
            },
        )
        for connection in list(subscribers):
            connection.push(text)

    def _ticker(self, symbol: str, seq: int) -> None:
        channel = f"ticker:{symbol}"
        subscribers = self.public.get(channel)
        if not subscribers:
            return
        market = self.gateway.market(symbol)
        text = _data(channel, "update", seq, convert.ticker_dict(market, self.gateway.volumes.volume(symbol)))
        for connection in list(subscribers):
            connection.push(text)

    def on_candle(self, market: str, interval: str, bar: Any) -> None:
        channel = f"candles:{market}:{interval}"
        subscribers = self.public.get(channel)
        if not subscribers:
            return
        spec = self.gateway.spec(market)
        text = _data(channel, "update", bar.start, candle_dict(bar, spec))
        for connection in list(subscribers):
            connection.push(text)

    def _liquidation_prices_moved(self, account_id: str, seq: int, sent: set[tuple[str, str]]) -> None:
        """The account's balance changed: its perp positions not already sent in this record are
        sent again with the `liquidation_price` the new balance gives them."""
        owner = self._owner(account_id) or ""
        if not self.private.get((owner, "positions")):
            return
        for position in views.positions(self.gateway.engine, account_id):
            if position.liquidation_price is not None and (account_id, position.market) not in sent:
                self.private_update(owner, "positions", seq, account_id, convert.position_dict(position))

    def _owner(self, account_id: str) -> str | None:
        return views.account_owner(self.gateway.engine, account_id)

    def _private(self, event: Any, seq: int) -> str | None:
        """Queue the messages of one event; returns the account whose `account` object it changed."""
        if isinstance(event, _ORDER_EVENTS):
            owner = self._owner(event.account_id) or ""
            self.order_update(owner, seq, event.account_id, event.order_id, type(event).__name__)
            if isinstance(event, OrderFilled) and self.private.get((owner, "fills")):
                spec = self.gateway.spec(event.market)
                fill = convert.fill_from_event(event, spec, self.gateway.quote_places(spec))
                self.private_update(owner, "fills", seq, event.account_id, fill)
            return None
        if isinstance(event, PositionChanged):
            owner = self._owner(event.account_id) or ""
            if self.private.get((owner, "positions")):
                position = views.position(self.gateway.engine, event.account_id, event.market)
                if position is not None:
                    data = convert.position_dict(position)
                    if position.quantity == 0:
                        data["side"] = "flat"  # gone from GET /positions: the update says so
                    self.private_update(owner, "positions", seq, event.account_id, data)
            return event.account_id
        if isinstance(event, _ACCOUNT_EVENTS):
            return event.account_id
        return None
