"""A session's settings and strategy list, validated once at the edge (`POST /sessions`, the CLI).

Units follow the contract: a field ending in `_percent` is a percentage ("2" = 2 %); `max_drawdown`
and `weekly_target` are decimal fractions ("0.05" = 5 %); `max_position_size` is the notional of one
position in the account's currency; `min_confidence` is in [0, 1]. Every refusal is `invalid_request`
naming the field, so the API answers 400 with a stable code and nothing is created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tradehall.domain.errors import invalid_request
from tradehall.domain.fixedpoint import decimal_str

DEFAULT_INTERVAL_SECONDS = 45
MAX_INTERVAL_SECONDS = 7 * 86_400
ORDER_TYPES = ("market", "limit")
MAX_STRATEGIES = 16
MAX_MARKETS = 32

_SETTING_NAMES = frozenset(
    {
        "interval_seconds",
        "event_driven",
        "order_type",
        "max_positions",
        "max_position_size",
        "min_confidence",
        "stop_loss_percent",
        "take_profit_percent",
        "trailing_stop_percent",
        "max_drawdown",
        "weekly_target",
        "order_quantity",
        "risk_per_trade",
        "allow_short",
    }
)


@dataclass(frozen=True, slots=True)
class SessionSettings:
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    """A trading cycle every N seconds of engine time; ignored when `event_driven`."""
    event_driven: bool = False
    """A cycle per durable batch of prices of the session's markets instead of a fixed interval."""
    order_type: str = "market"
    max_positions: int = 1
    max_position_size: Decimal | None = None
    min_confidence: Decimal = Decimal(0)
    stop_loss_percent: Decimal | None = None
    take_profit_percent: Decimal | None = None
    trailing_stop_percent: Decimal | None = None
    max_drawdown: Decimal | None = None
    """From the session's peak equity; reaching it stops the session (`status_reason: max_drawdown`)."""
    weekly_target: Decimal | None = None
    """Gain since the start of the UTC week (Monday); reaching it pauses entries until the next week."""
    order_quantity: Decimal | None = None
    """A fixed entry quantity in base units (sizing takes the smallest of the configured rules)."""
    risk_per_trade: Decimal | None = None
    """Fraction of equity lost if the stop-loss is hit; needs `stop_loss_percent`."""
    allow_short: bool = False
    """Whether a sell signal while flat opens a short (perp and binary markets)."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form the API shows and the store keeps (decimals as strings)."""

        def text(value: Decimal | None) -> str | None:
            return None if value is None else decimal_str(value)

        return {
            "interval_seconds": self.interval_seconds,
            "event_driven": self.event_driven,
            "order_type": self.order_type,
            "max_positions": self.max_positions,
            "max_position_size": text(self.max_position_size),
            "min_confidence": text(self.min_confidence),
            "stop_loss_percent": text(self.stop_loss_percent),
            "take_profit_percent": text(self.take_profit_percent),
            "trailing_stop_percent": text(self.trailing_stop_percent),
            "max_drawdown": text(self.max_drawdown),
            "weekly_target": text(self.weekly_target),
            "order_quantity": text(self.order_quantity),
            "risk_per_trade": text(self.risk_per_trade),
            "allow_short": self.allow_short,
        }


@dataclass(frozen=True, slots=True)
class StrategyEntry:
    """One strategy of a session: its registered name, its vote's weight and its parameters."""

    name: str
    weight: Decimal
    parameters: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weight": decimal_str(self.weight), "parameters": dict(self.parameters)}


def _decimal(raw: Mapping[str, Any], name: str, *, low: Decimal, high: Decimal | None, open_low: bool) -> Any:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise invalid_request(f"settings.{name} must be a decimal string")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise invalid_request(f"settings.{name} must be a decimal string, not {value!r}") from None
    if not number.is_finite():
        raise invalid_request(f"settings.{name} must be finite")
    if number < low or (open_low and number == low) or (high is not None and number > high):
        bound = f"in ({low}, {high}]" if open_low else f"in [{low}, {high}]"
        if high is None:
            bound = f"above {low}" if open_low else f"at least {low}"
        raise invalid_request(f"settings.{name} must be {bound}, not {value!r}")
    return number


def _integer(raw: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = raw.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_request(f"settings.{name} must be an integer")
    if not low <= value <= high:
        raise invalid_request(f"settings.{name} must be in [{low}, {high}], not {value}")
    return value


def parse_settings(raw: Mapping[str, Any] | None) -> SessionSettings:
    """The settings from their JSON form; unknown names are refused (a typo must not pass silently)."""
    raw = raw or {}
    unknown = sorted(set(raw) - _SETTING_NAMES)
    if unknown:
        raise invalid_request(f"unknown setting(s) {unknown}")
    event_driven = raw.get("event_driven", False)
    if not isinstance(event_driven, bool):
        raise invalid_request("settings.event_driven must be a boolean")
    allow_short = raw.get("allow_short", False)
    if not isinstance(allow_short, bool):
        raise invalid_request("settings.allow_short must be a boolean")
    order_type = raw.get("order_type") or "market"
    if order_type not in ORDER_TYPES:
        raise invalid_request(f"settings.order_type must be one of {list(ORDER_TYPES)}, not {order_type!r}")
    hundred = Decimal(100)
    one = Decimal(1)
    zero = Decimal(0)
    confidence = _decimal(raw, "min_confidence", low=zero, high=one, open_low=False)
    settings = SessionSettings(
        interval_seconds=_integer(raw, "interval_seconds", DEFAULT_INTERVAL_SECONDS, 1, MAX_INTERVAL_SECONDS),
        event_driven=event_driven,
        order_type=order_type,
        max_positions=_integer(raw, "max_positions", 1, 1, 1000),
        max_position_size=_decimal(raw, "max_position_size", low=zero, high=None, open_low=True),
        min_confidence=zero if confidence is None else confidence,
        stop_loss_percent=_decimal(raw, "stop_loss_percent", low=zero, high=hundred, open_low=True),
        take_profit_percent=_decimal(raw, "take_profit_percent", low=zero, high=None, open_low=True),
        trailing_stop_percent=_decimal(raw, "trailing_stop_percent", low=zero, high=hundred, open_low=True),
        max_drawdown=_decimal(raw, "max_drawdown", low=zero, high=one, open_low=True),
        weekly_target=_decimal(raw, "weekly_target", low=zero, high=None, open_low=True),
        order_quantity=_decimal(raw, "order_quantity", low=zero, high=None, open_low=True),
        risk_per_trade=_decimal(raw, "risk_per_trade", low=zero, high=one, open_low=True),
        allow_short=allow_short,
    )
    if settings.risk_per_trade is not None and settings.stop_loss_percent is None:
        raise invalid_request("settings.risk_per_trade needs stop_loss_percent (the stop distance)")
    return settings


def parse_strategies(raw: object) -> list[StrategyEntry]:
    """`[{name, weight?, parameters?}, ...]`: at least one, names checked by the caller's registry."""
    if not isinstance(raw, list) or not raw:
        raise invalid_request("strategies must be a non-empty list")
    if len(raw) > MAX_STRATEGIES:
        raise invalid_request(f"at most {MAX_STRATEGIES} strategies per session")
    entries = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise invalid_request(f"strategies[{index}] must be an object")
        unknown = sorted(set(item) - {"name", "weight", "parameters"})
        if unknown:
            raise invalid_request(f"strategies[{index}] has unknown field(s) {unknown}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise invalid_request(f"strategies[{index}].name must be a strategy's name")
        weight_raw = item.get("weight", "1")
        if isinstance(weight_raw, bool) or not isinstance(weight_raw, str | int | float):
            raise invalid_request(f"strategies[{index}].weight must be a positive decimal")
        try:
            weight = Decimal(str(weight_raw))
        except InvalidOperation:
            raise invalid_request(f"strategies[{index}].weight must be a positive decimal") from None
        if not weight.is_finite() or weight <= 0:
            raise invalid_request(f"strategies[{index}].weight must be a positive decimal")
        parameters = item.get("parameters") or {}
        if not isinstance(parameters, Mapping):
            raise invalid_request(f"strategies[{index}].parameters must be an object")
        entries.append(StrategyEntry(name, weight, dict(parameters)))
    return entries


def parse_markets(raw: object) -> list[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(m, str) and m for m in raw):
        raise invalid_request("markets must be a non-empty list of market symbols")
    if len(raw) > MAX_MARKETS:
        raise invalid_request(f"at most {MAX_MARKETS} markets per session")
    if len(set(raw)) != len(raw):
        raise invalid_request("markets must not repeat a symbol")
    return list(raw)
