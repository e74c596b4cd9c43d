"""What a backtest is given: the strategies, the settings (a session's plus the balance and the bar
length), the fill model's terms, and the market a data file stands for. Each is parsed and checked once,
at the edge (the API's body, the CLI's options): a bad value is an `invalid_request` naming it."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from tradehall.domain.enums import MarketKind, Venue
from tradehall.domain.errors import invalid_request
from tradehall.domain.market import MarketSpec
from tradehall.strategies.backtest.data import Ohlcv
from tradehall.strategies.bars import interval_ns
from tradehall.strategies.combiner import Validator
from tradehall.strategies.risk import RiskLimitValidator, RiskManager, RiskSettings
from tradehall.strategies.validators import (
    FreshnessValidator,
    LiquidityValidator,
    MaxPositionsValidator,
    SpreadValidator,
    VolatilityValidator,
)

DEFAULT_INITIAL_BALANCE = Decimal("10000")


def _decimal(value: object, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise invalid_request(f"{name} must be a decimal number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise invalid_request(f"{name} {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise invalid_request(f"{name} must be finite")
    return number


@dataclass(frozen=True, slots=True)
class FillModel:
    """How the quote venue fills the backtest's orders. None keeps the market's own term.

    `slippage` and fees are fractions; `spread` is quoted around every bar price (half each side);
    `depth` is the fraction of a bar's volume quoted at each of its prices (None: as deep as needed);
    `latency_ms` delays an order before it can fill (at least 1 ms sends it to the next price)."""

    slippage: Decimal | None = None
    taker_fee: Decimal | None = None
    maker_fee: Decimal | None = None
    latency_ms: int | None = None
    spread: Decimal = Decimal("0")
    depth: Decimal | None = None

    @classmethod
    def parse(cls, given: dict[str, Any] | str | None) -> FillModel:
        """From `{"slippage": "0.001", ...}` or `"slippage=0.001,fee=0.001,latency_ms=5"`
        (`fee` sets both fees)."""
        if given is None:
            return cls()
        if isinstance(given, str):
            pairs: dict[str, Any] = {}
            for part in filter(None, (p.strip() for p in given.split(","))):
                key, sep, value = part.partition("=")
                if not sep:
                    raise invalid_request(f"fill model term {part!r} is not key=value")
                pairs[key.strip()] = value.strip()
            given = pairs
        if not isinstance(given, dict):
            raise invalid_request("fill_model must be an object")
        terms: dict[str, Any] = {}
        for key, value in given.items():
            if key == "fee":
                terms["taker_fee"] = terms["maker_fee"] = _decimal(value, "fee")
            elif key in ("slippage", "taker_fee", "maker_fee", "spread", "depth"):
                terms[key] = None if value is None and key == "depth" else _decimal(value, key)
            elif key == "latency_ms":
                latency = _decimal(value, key)
                if latency != latency.to_integral_value() or latency < 0:
                    raise invalid_request("latency_ms must be a whole number of milliseconds, at least 0")
                terms[key] = int(latency)
            else:
                raise invalid_request(
                    f"unknown fill model term {key!r}: slippage, fee, taker_fee, maker_fee, latency_ms, "
                    "spread, depth"
                )
        for key in ("slippage", "taker_fee", "maker_fee", "spread"):
            if key in terms and terms[key] is not None and not Decimal(0) <= terms[key] < 1:
                raise invalid_request(f"{key} is a fraction in [0, 1)")
        if terms.get("depth") is not None and not terms["depth"] > 0:
            raise invalid_request("depth is a positive fraction of the bar's volume")
        return cls(**terms)

    def apply(self, spec: MarketSpec) -> MarketSpec:
        """The market's spec as the backtest's quote-venue market."""
        changes: dict[str, Any] = {"venue": Venue.QUOTE, "price_band": None}
        if self.slippage is not None:
            changes["slippage"] = self.slippage
        if self.taker_fee is not None:
            changes["taker_fee"] = self.taker_fee
        if self.maker_fee is not None:
            changes["maker_fee"] = self.maker_fee
        if self.latency_ms is not None:
            changes["latency_ms"] = self.latency_ms
        return msgspec.structs.replace(spec, **changes)

    def as_dict(self) -> dict[str, Any]:
        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return {
            "slippage": text(self.slippage),
            "taker_fee": text(self.taker_fee),
            "maker_fee": text(self.maker_fee),
            "latency_ms": self.latency_ms,
            "spread": str(self.spread),
            "depth": text(self.depth),
        }


@dataclass(frozen=True, slots=True)
class StrategyChoice:
    name: str
    weight: float = 1.0
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, given: object) -> StrategyChoice:
        if isinstance(given, str):
            return cls(given)
        if not isinstance(given, dict) or not isinstance(given.get("name"), str):
            raise invalid_request("a strategy is {name, weight?, parameters?}")
        weight = given.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float | str):
            raise invalid_request("a strategy's weight is a number")
        try:
            weight_value = float(weight)
        except ValueError:
            raise invalid_request(f"weight {weight!r} is not a number") from None
        if not weight_value >= 0 or weight_value == float("inf"):
            raise invalid_request("a strategy's weight is a finite number, at least 0")
        parameters = given.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise invalid_request("a strategy's parameters are an object")
        unknown = set(given) - {"name", "weight", "parameters"}
        if unknown:
            raise invalid_request(f"unknown strategy field(s) {sorted(unknown)}")
        return cls(given["name"], weight_value, dict(parameters))


@dataclass(frozen=True, slots=True)
class BacktestSettings:
    initial_balance: Decimal = DEFAULT_INITIAL_BALANCE
    interval: str | None = None
    order_type: str = "market"
    min_confidence: float = 0.0
    risk: RiskSettings = field(default_factory=RiskSettings)
    max_spread: float | None = None
    min_volume: float | None = None
    max_volatility: float | None = None
    max_data_age_seconds: float | None = None

    @classmethod
    def parse(cls, given: dict[str, Any] | None) -> BacktestSettings:
        given = dict(given or {})
        if not isinstance(given, dict):
            raise invalid_request("settings must be an object")
        initial = _decimal(given.pop("initial_balance", DEFAULT_INITIAL_BALANCE), "initial_balance")
        if initial <= 0:
            raise invalid_request("initial_balance must be positive")
        interval = given.pop("interval", None)
        if interval is not None:
            if not isinstance(interval, str | int | float):
                raise invalid_request("interval is like '1m'")
            interval_ns(interval)
            interval = str(interval)
        order_type = given.pop("order_type", "market")
        if order_type not in ("market", "limit"):
            raise invalid_request("order_type is market or limit")
        min_confidence = float(_decimal(given.pop("min_confidence", 0), "min_confidence"))
        if not 0 <= min_confidence <= 1:
            raise invalid_request("min_confidence is in [0, 1]")
        guards: dict[str, float | None] = {}
        for name in ("max_spread", "min_volume", "max_volatility", "max_data_age_seconds"):
            value = given.pop(name, None)
            guards[name] = None if value is None else float(_decimal(value, name))
        given.pop("interval_seconds", None)  # a session's cycle; a backtest's bars are its data
        risk = RiskSettings.from_settings(given)
        unknown = set(given) - set(RiskSettings.__dataclass_fields__)
        if unknown:
            raise invalid_request(f"unknown setting(s) {sorted(unknown)}")
        return cls(initial, interval, order_type, min_confidence, risk, **guards)

    def validators(self, risk: RiskManager) -> list[Validator]:
        found: list[Validator] = []
        if self.max_data_age_seconds is not None:
            found.append(FreshnessValidator(self.max_data_age_seconds))
        if self.max_spread is not None:
            found.append(SpreadValidator(self.max_spread))
        if self.min_volume is not None:
            found.append(LiquidityValidator(min_volume=self.min_volume))
        if self.max_volatility is not None:
            found.append(VolatilityValidator(self.max_volatility))
        found.append(MaxPositionsValidator(self.risk.max_positions))
        found.append(RiskLimitValidator(risk))
        return found


def _decimal_places(value: float) -> int:
    text = repr(value)
    if "e" in text or "E" in text:
        return 8
    _, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    return min(len(fraction), 8)


def spec_for_data(symbol: str, data: Ohlcv | None, tick_size: Decimal | None = None,
                  lot_size: Decimal | None = None, kind: MarketKind = MarketKind.SPOT) -> MarketSpec:
    """A spot market for a data file: base and quote from `BASE-QUOTE` (or `BASE/QUOTE`), the tick the
    finest the prices need (at most 8 places), lots of 1e-8."""
    for separator in ("-", "/", "_"):
        if separator in symbol:
            base, _, quote = symbol.partition(separator)
            break
    else:
        base, quote = symbol, "USD"
    if not base or not quote:
        raise invalid_request(f"market {symbol!r} is not BASE-QUOTE")
    if tick_size is None:
        places = 0
        if data is not None:
            for column in (data.open, data.high, data.low, data.close):
                for value in column:
                    places = max(places, _decimal_places(value))
                    if places >= 8:
                        break
        tick_size = Decimal(1).scaleb(-places)
    return MarketSpec(
        symbol=symbol,
        kind=kind,
        base=base.upper(),
        quote=quote.upper(),
        tick_size=tick_size,
        lot_size=lot_size or Decimal("0.00000001"),
        venue=Venue.QUOTE,
        slippage=Decimal("0"),
        latency_ms=1,
        price_protection=None,
    )
