"""Value types only: ids, enums, fixed-point conversions, market specs, commands, events, errors."""

from tradehall.domain import commands, events
from tradehall.domain.enums import (
    AccountKind,
    AccountStatus,
    CancelReason,
    CostBasis,
    FeeModel,
    FillOrigin,
    Liquidity,
    MarketKind,
    MarketStatus,
    OrderSide,
    OrderStatus,
    OrderType,
    Outcome,
    SelfTradePrevention,
    Side,
    StopTrigger,
    TimeInForce,
    TradingState,
    Venue,
)
from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.market import DEFAULT_CURRENCY_DECIMALS, MarketSpec

__all__ = [
    "DEFAULT_CURRENCY_DECIMALS",
    "AccountKind",
    "AccountStatus",
    "CancelReason",
    "Code",
    "CostBasis",
    "FeeModel",
    "FillOrigin",
    "Liquidity",
    "MarketKind",
    "MarketSpec",
    "MarketStatus",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "Outcome",
    "SelfTradePrevention",
    "Side",
    "StopTrigger",
    "TimeInForce",
    "TradehallError",
    "TradingState",
    "Venue",
    "commands",
    "events",
]
