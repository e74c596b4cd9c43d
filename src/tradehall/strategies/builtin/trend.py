"""Trend following: a fast moving average crossing a slow one.

A cross is a change of sign of (fast - slow) against the last non-zero difference, so a touch
(fast == slow) is not a cross and a cross through a touch is counted once, on the bar that leaves it.
"""

from __future__ import annotations

from tradehall.domain.errors import invalid_request
from tradehall.strategies.base import Strategy
from tradehall.strategies.indicators import EMA, SMA
from tradehall.strategies.params import Param
from tradehall.strategies.types import Action, Bar, Signal


class _Crossover(Strategy):
    parameters = {
        "fast": Param(int, 10, min=1, description="bars of the fast average"),
        "slow": Param(int, 30, min=2, description="bars of the slow average"),
    }

    def check_params(self) -> None:
        if self.params["fast"] >= self.params["slow"]:  # type: ignore[operator]
            raise invalid_request("parameter 'fast' must be below 'slow'")

    def setup(self) -> None:
        self._fast = self._average(int(self.params["fast"]))
        self._slow = self._average(int(self.params["slow"]))
        self._last_difference: float | None = None

    def _average(self, period: int) -> SMA | EMA:
        raise NotImplementedError

    @property
    def warmup(self) -> int:
        return int(self.params["slow"]) + 1

    def on_bar(self, market: str, bar: Bar) -> Signal | None:
        fast = self._fast.update(bar.close)
        slow = self._slow.update(bar.close)
        if fast is None or slow is None:
            return None
        difference = fast - slow
        last = self._last_difference
        if difference != 0 or last is None:
            self._last_difference = difference
        if last is None:
            return None
        if last < 0 < difference:
            return self.signal(market, Action.BUY, 1.0, bar.close, "fast average crossed above slow",
                               fast=fast, slow=slow)
        if last > 0 > difference:
            return self.signal(market, Action.SELL, 1.0, bar.close, "fast average crossed below slow",
                               fast=fast, slow=slow)
        return None


class SmaCrossover(_Crossover):
    """Buy when the fast simple moving average crosses above the slow one, sell when it crosses below."""

    name = "sma_crossover"

    def _average(self, period: int) -> SMA:
        return SMA(period)


class EmaCrossover(_Crossover):
    """Buy when the fast exponential moving average crosses above the slow one, sell when below."""

    name = "ema_crossover"
    parameters = {
        "fast": Param(int, 12, min=1, description="bars of the fast average"),
        "slow": Param(int, 26, min=2, description="bars of the slow average"),
    }

    def _average(self, period: int) -> EMA:
        return EMA(period)
