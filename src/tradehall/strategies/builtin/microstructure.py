"""Microstructure: the order book leaning to one side (book depth, or quoted sizes at the top)."""

from __future__ import annotations

from tradehall.strategies.base import Strategy
from tradehall.strategies.indicators import book_imbalance
from tradehall.strategies.params import Param
from tradehall.strategies.types import Action, QuoteTick, Signal


class BookImbalance(Strategy):
    """Buy when bid size outweighs ask size over the best `depth` levels by `threshold` (imbalance
    (bids - asks) / (bids + asks)), sell when the asks outweigh the bids; fires when the imbalance
    enters the zone. Uses the quote's depth when given, else its top-of-book sizes."""

    name = "book_imbalance"
    parameters = {
        "depth": Param(int, 5, min=1, max=50),
        "threshold": Param(float, 0.3, min=0.0, max=1.0),
    }

    def setup(self) -> None:
        self._depth = int(self.params["depth"])
        self._threshold = float(self.params["threshold"])
        self._zone: dict[str, int] = {}

    def on_quote(self, quote: QuoteTick) -> Signal | None:
        if quote.bids or quote.asks:
            imbalance = book_imbalance(quote.bids, quote.asks, self._depth)
        elif quote.bid_size is not None and quote.ask_size is not None:
            imbalance = book_imbalance([(0.0, quote.bid_size)], [(0.0, quote.ask_size)], 1)
        else:
            imbalance = None
        if imbalance is None:
            return None
        zone = 1 if imbalance >= self._threshold else -1 if imbalance <= -self._threshold else 0
        previous = self._zone.get(quote.market, 0)
        self._zone[quote.market] = zone
        if zone == previous or zone == 0:
            return None
        mid = (quote.bid + quote.ask) / 2 if quote.bid is not None and quote.ask is not None else None
        action = Action.BUY if zone > 0 else Action.SELL
        return self.signal(quote.market, action, min(1.0, abs(imbalance)), mid,
                           f"book imbalance {imbalance:+.3f}", imbalance=imbalance)
