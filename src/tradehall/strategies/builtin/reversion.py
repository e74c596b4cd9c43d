"""Mean reversion: RSI leaving its bands, or the close stepping outside its Bollinger bands.

Signals fire on the bar that enters the zone (not on every bar inside it); the confidence grows with
how far into the zone the value went.
"""

from __future__ import annotations

from tradehall.domain.errors import invalid_request
from tradehall.strategies.base import Strategy
from tradehall.strategies.indicators import RSI, Bollinger
from tradehall.strategies.params import Param
from tradehall.strategies.types import Action, Bar, Signal


def _clamp(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


class RsiReversion(Strategy):
    """Buy when RSI falls below `oversold`, sell when it rises above `overbought`."""

    name = "rsi_reversion"
    parameters = {
        "period": Param(int, 14, min=2),
        "oversold": Param(float, 30.0, min=0, max=100),
        "overbought": Param(float, 70.0, min=0, max=100),
    }

    def check_params(self) -> None:
        if self.params["oversold"] >= self.params["overbought"]:  # type: ignore[operator]
            raise invalid_request("parameter 'oversold' must be below 'overbought'")

    def setup(self) -> None:
        self._rsi = RSI(int(self.params["period"]))
        self._low = float(self.params["oversold"])
        self._high = float(self.params["overbought"])
        self._previous: float | None = None

    @property
    def warmup(self) -> int:
        return int(self.params["period"]) + 1

    def on_bar(self, market: str, bar: Bar) -> Signal | None:
        rsi = self._rsi.update(bar.close)
        previous, self._previous = self._previous, rsi
        if rsi is None or previous is None:
            return None
        if rsi < self._low <= previous:
            confidence = _clamp(0.5 + (self._low - rsi) / (2 * self._low)) if self._low else 1.0
            return self.signal(market, Action.BUY, confidence, bar.close, f"RSI {rsi:.2f} below {self._low}",
                               rsi=rsi)
        if rsi > self._high >= previous:
            room = 100 - self._high
            confidence = _clamp(0.5 + (rsi - self._high) / (2 * room)) if room else 1.0
            return self.signal(market, Action.SELL, confidence, bar.close,
                               f"RSI {rsi:.2f} above {self._high}", rsi=rsi)
        return None


class BollingerReversion(Strategy):
    """Buy when the close falls below the lower band, sell when it rises above the upper band."""

    name = "bollinger_reversion"
    parameters = {
        "period": Param(int, 20, min=2),
        "k": Param(float, 2.0, min=0.1, max=10, description="band width in standard deviations"),
    }

    def setup(self) -> None:
        self._bands = Bollinger(int(self.params["period"]), float(self.params["k"]))
        self._inside = True

    @property
    def warmup(self) -> int:
        return int(self.params["period"])

    def on_bar(self, market: str, bar: Bar) -> Signal | None:
        bands = self._bands.update(bar.close)
        if bands is None:
            return None
        lower, middle, upper = bands
        close = bar.close
        was_inside = self._inside
        self._inside = lower <= close <= upper
        if not was_inside or self._inside:
            return None
        half_width = upper - middle
        depth = abs(close - middle) / half_width - 1 if half_width > 0 else 1.0
        confidence = _clamp(0.5 + depth)
        if close < lower:
            return self.signal(market, Action.BUY, confidence, close, "close below the lower band",
                               lower=lower, middle=middle, upper=upper)
        return self.signal(market, Action.SELL, confidence, close, "close above the upper band",
                           lower=lower, middle=middle, upper=upper)
