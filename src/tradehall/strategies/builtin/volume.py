"""Volume: a bar trading far more than usual moves in the direction it closed."""

from __future__ import annotations

from tradehall.strategies.base import Strategy
from tradehall.strategies.indicators import VolumeSpike
from tradehall.strategies.params import Param
from tradehall.strategies.types import Action, Bar, Signal


class VolumeSpikeStrategy(Strategy):
    """When a bar's volume is at least `threshold` times the mean of the `period` bars before it, follow
    the bar: buy if it closed up, sell if it closed down; confidence grows with the ratio."""

    name = "volume_spike"
    parameters = {"period": Param(int, 20, min=1), "threshold": Param(float, 3.0, min=1.0)}

    def setup(self) -> None:
        self._spike = VolumeSpike(int(self.params["period"]))
        self._threshold = float(self.params["threshold"])

    @property
    def warmup(self) -> int:
        return int(self.params["period"]) + 1

    def on_bar(self, market: str, bar: Bar) -> Signal | None:
        ratio = self._spike.update(bar.volume)
        if ratio is None or ratio < self._threshold or bar.close == bar.open:
            return None
        confidence = min(1.0, ratio / (2 * self._threshold))
        action = Action.BUY if bar.close > bar.open else Action.SELL
        return self.signal(market, action, confidence, bar.close,
                           f"volume {ratio:.2f}x the {self.params['period']}-bar mean", ratio=ratio)
