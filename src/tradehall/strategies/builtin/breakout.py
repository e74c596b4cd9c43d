"""Breakout: the close leaves the Donchian channel of the bars before it."""

from __future__ import annotations

from tradehall.strategies.base import Strategy
from tradehall.strategies.indicators import Donchian
from tradehall.strategies.params import Param
from tradehall.strategies.types import Action, Bar, Signal


class DonchianBreakout(Strategy):
    """Buy when the close breaks above the highest high of the previous `period` bars, sell when it
    breaks below their lowest low."""

    name = "donchian_breakout"
    parameters = {"period": Param(int, 20, min=1)}

    def setup(self) -> None:
        self._channel = Donchian(int(self.params["period"]))

    @property
    def warmup(self) -> int:
        return int(self.params["period"]) + 1

    def on_bar(self, market: str, bar: Bar) -> Signal | None:
        upper, lower = self._channel.upper, self._channel.lower  # of the bars before this one
        self._channel.update(bar.high, bar.low)
        if upper is None or lower is None:
            return None
        if bar.close > upper:
            return self.signal(market, Action.BUY, 1.0, bar.close, f"close above the {upper} channel high",
                               upper=upper, lower=lower)
        if bar.close < lower:
            return self.signal(market, Action.SELL, 1.0, bar.close, f"close below the {lower} channel low",
                               upper=upper, lower=lower)
        return None
