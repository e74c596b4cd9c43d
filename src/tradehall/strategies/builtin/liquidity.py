"""Liquidity ("smart money"): a sweep of the range's stops that fails.

Below a range's low rest the stop-losses of its longs; a bar that trades through that low (taking
that liquidity) yet closes back inside the range says the sellers who ran the stops found buyers
waiting: buy. The mirror image above the range's high: sell. `min_volume_ratio` asks the sweep bar to
trade at least that multiple of the recent mean volume (1 = no condition beyond the mean).
"""

from __future__ import annotations

from tradehall.strategies.base import Strategy
from tradehall.strategies.indicators import SMA, Donchian
from tradehall.strategies.params import Param
from tradehall.strategies.types import Action, Bar, Signal


class LiquiditySweep(Strategy):
    """Buy a failed sweep below the `lookback`-bar low, sell a failed sweep above its high."""

    name = "liquidity_sweep"
    parameters = {
        "lookback": Param(int, 20, min=2),
        "min_volume_ratio": Param(float, 0.0, min=0.0, description="sweep bar volume / mean volume"),
    }

    def setup(self) -> None:
        lookback = int(self.params["lookback"])
        self._range = Donchian(lookback)
        self._volume = SMA(lookback)
        self._ratio = float(self.params["min_volume_ratio"])

    @property
    def warmup(self) -> int:
        return int(self.params["lookback"]) + 1

    def on_bar(self, market: str, bar: Bar) -> Signal | None:
        high, low = self._range.upper, self._range.lower
        mean_volume = self._volume.value
        self._range.update(bar.high, bar.low)
        self._volume.update(bar.volume)
        if high is None or low is None:
            return None
        if self._ratio > 0 and (mean_volume is None or bar.volume < self._ratio * mean_volume):
            return None
        if bar.low < low and low < bar.close <= high:
            return self.signal(market, Action.BUY, 1.0, bar.close,
                               f"swept the {low} low and closed back inside", swept=low)
        if bar.high > high and low <= bar.close < high:
            return self.signal(market, Action.SELL, 1.0, bar.close,
                               f"swept the {high} high and closed back inside", swept=high)
        return None
