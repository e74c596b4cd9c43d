"""Automated trading: strategies, signals, the combiner and risk manager, and backtests.

An adapter around the engine (docs/strategies.md): it reads events and views and sends commands.
The pieces a strategy author uses are re-exported here.
"""

from tradehall.strategies.base import OrderSink, Portfolio, Strategy, StrategyContext
from tradehall.strategies.combiner import Combiner, Decision, MarketState, Validator
from tradehall.strategies.params import Param, resolve
from tradehall.strategies.registry import ENTRY_POINT_GROUP, StrategyRegistry, default_registry
from tradehall.strategies.risk import RiskLimitValidator, RiskManager, RiskSettings, TradingStatus
from tradehall.strategies.trader import Member, Trader
from tradehall.strategies.types import (
    Action,
    Bar,
    FillReport,
    OrderRequest,
    OrderUpdate,
    QuoteTick,
    Signal,
    TradeTick,
)
from tradehall.strategies.validators import (
    FreshnessValidator,
    LiquidityValidator,
    MaxPositionsValidator,
    SpreadValidator,
    VolatilityValidator,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Action",
    "Bar",
    "Combiner",
    "Decision",
    "FillReport",
    "FreshnessValidator",
    "LiquidityValidator",
    "MarketState",
    "MaxPositionsValidator",
    "Member",
    "OrderRequest",
    "OrderSink",
    "OrderUpdate",
    "Param",
    "Portfolio",
    "QuoteTick",
    "RiskLimitValidator",
    "RiskManager",
    "RiskSettings",
    "Signal",
    "SpreadValidator",
    "Strategy",
    "StrategyContext",
    "StrategyRegistry",
    "TradeTick",
    "Trader",
    "TradingStatus",
    "Validator",
    "VolatilityValidator",
    "default_registry",
    "resolve",
]
