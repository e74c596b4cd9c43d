"""The risk manager: position sizing, the exits sent with every entry, and the drawdown and weekly
target rules that pause or stop trading.

Sizing takes the smallest of what is configured: a fixed `order_quantity`; `max_position_size`, the
notional of one position in the account's currency; and `risk_per_trade`, the fraction of equity lost
if the stop-loss is hit (quantity = equity x risk_per_trade / stop distance). With none configured a
position is 10 % of equity. Every entry carries the settings' stop-loss, take-profit and trailing stop
as the engine's contingent orders (a bracket, plus a trailing stop exit).

`max_drawdown` (a fraction of the equity peak) stops trading for good; `weekly_target` (a fraction
gained since the UTC week's first equity seen) pauses entries until the next UTC week. Exits are
never blocked.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tradehall.domain.errors import invalid_request
from tradehall.strategies.combiner import Decision, MarketState, PortfolioState

WEEK_NS = 7 * 86_400 * 10**9
_EPOCH_MONDAY_NS = 4 * 86_400 * 10**9
"""1970-01-05, the first Monday after the epoch: UTC weeks start on Mondays."""

DEFAULT_POSITION_FRACTION = 0.10


class TradingStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """Fractions are decimal fractions ("0.05" = 5 %); `*_percent` are percentages, as the contract."""

    max_positions: int = 1
    max_position_size: float | None = None
    order_quantity: float | None = None
    risk_per_trade: float | None = None
    stop_loss_percent: float | None = None
    take_profit_percent: float | None = None
    trailing_stop_percent: float | None = None
    max_drawdown: float | None = None
    weekly_target: float | None = None
    allow_short: bool = False

    def __post_init__(self) -> None:
        if self.max_positions < 1:
            raise invalid_request("max_positions must be at least 1")
        for name in (
            "max_position_size",
            "order_quantity",
            "risk_per_trade",
            "stop_loss_percent",
            "take_profit_percent",
            "trailing_stop_percent",
            "max_drawdown",
            "weekly_target",
        ):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise invalid_request(f"{name} must be positive")
        if self.max_drawdown is not None and self.max_drawdown >= 1:
            raise invalid_request("max_drawdown is a fraction below 1 (0.2 = 20 %)")
        if self.stop_loss_percent is not None and self.stop_loss_percent >= 100:
            raise invalid_request("stop_loss_percent is a percentage below 100")
        if self.risk_per_trade is not None and self.stop_loss_percent is None:
            raise invalid_request("risk_per_trade needs stop_loss_percent (the stop distance)")

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> RiskSettings:
        """The risk part of a session's or backtest's settings (decimal strings or numbers)."""
        kwargs: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            value = settings.get(name)
            if value is None:
                continue
            if name == "max_positions":
                kwargs[name] = _number(value, name, int)
            elif name == "allow_short":
                if not isinstance(value, bool):
                    raise invalid_request("allow_short must be a boolean")
                kwargs[name] = value
            else:
                kwargs[name] = _number(value, name, float)
        return cls(**kwargs)


def _number(value: object, name: str, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid_request(f"{name} must be a number")
    try:
        number = float(value)
    except ValueError:
        raise invalid_request(f"{name} must be a number, not {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise invalid_request(f"{name} must be finite")
    if kind is int:
        if not number.is_integer():
            raise invalid_request(f"{name} must be an integer")
        return int(number)
    return number


@dataclass(frozen=True, slots=True)
class Exits:
    stop_loss: float | None
    take_profit: float | None
    trail_percent: float | None


class RiskManager:
    def __init__(self, settings: RiskSettings) -> None:
        self.settings = settings
        self.status = TradingStatus.RUNNING
        self.reason = ""
        self.peak: float | None = None
        self.drawdown = 0.0
        self._week: int | None = None
        self._week_start_equity = 0.0
        self._max_drawdown = settings.max_drawdown
        self._weekly_target = settings.weekly_target

    def on_equity(self, ts: int, equity: float) -> TradingStatus:
        """Track the peak and the week; stop at `max_drawdown`, pause at `weekly_target`."""
        if self.status is TradingStatus.STOPPED:
            return self.status
        peak = self.peak
        if peak is None or equity > peak:
            self.peak = peak = equity
        if self._max_drawdown is not None and peak > 0:
            drawdown = self.drawdown = 1.0 - equity / peak
            if equity <= peak * (1.0 - self._max_drawdown):  # not `drawdown >=`: 1 - 1080/1200 < 0.1
                self.status = TradingStatus.STOPPED
                self.reason = f"max_drawdown: drawdown {drawdown:.6f} reached {self._max_drawdown}"
                return self.status
        if self._weekly_target is not None:
            week = (ts - _EPOCH_MONDAY_NS) // WEEK_NS
            if week != self._week:
                self._week = week
                self._week_start_equity = equity
                if self.status is TradingStatus.PAUSED:
                    self.status, self.reason = TradingStatus.RUNNING, ""
            elif (
                self.status is TradingStatus.RUNNING
                and self._week_start_equity > 0
                and equity >= self._week_start_equity * (1.0 + self._weekly_target)
            ):
                self.status = TradingStatus.PAUSED
                self.reason = f"weekly_target: {self._weekly_target} reached; entries resume next week"
        return self.status

    def exits(self, side: str, price: float) -> Exits:
        s = self.settings
        sign = 1.0 if side == "buy" else -1.0
        stop = None if s.stop_loss_percent is None else price * (1 - sign * s.stop_loss_percent / 100)
        take = None if s.take_profit_percent is None else price * (1 + sign * s.take_profit_percent / 100)
        return Exits(stop, take, s.trailing_stop_percent)

    def size(self, price: float, equity: float, stop_loss: float | None) -> float:
        """The entry quantity (base units) at `price`; 0 when nothing can be risked."""
        s = self.settings
        if price <= 0 or equity <= 0:
            return 0.0
        candidates: list[float] = []
        if s.order_quantity is not None:
            candidates.append(s.order_quantity)
        if s.max_position_size is not None:
            candidates.append(s.max_position_size / price)
        if s.risk_per_trade is not None and stop_loss is not None and stop_loss != price:
            candidates.append(equity * s.risk_per_trade / abs(price - stop_loss))
        if not candidates:
            candidates.append(equity * DEFAULT_POSITION_FRACTION / price)
        return min(candidates)


@dataclass(slots=True)
class RiskLimitValidator:
    """Vetoes entries while the risk manager has paused or stopped trading."""

    risk: RiskManager
    name: str = "risk_limits"

    def check(self, decision: Decision, state: MarketState, portfolio: PortfolioState) -> str | None:
        if decision.opening and self.risk.status is not TradingStatus.RUNNING:
            return f"trading {self.risk.status.value}: {self.risk.reason}"
        return None
