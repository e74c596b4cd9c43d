"""Backtests: recorded data replayed through a real engine with the strategies of a live session."""

from tradehall.strategies.backtest.config import BacktestSettings, FillModel, StrategyChoice, spec_for_data
from tradehall.strategies.backtest.data import Ohlcv, load_ohlcv, load_recording, ohlcv_from_rows
from tradehall.strategies.backtest.runner import Backtest, BacktestResult

__all__ = [
    "Backtest",
    "BacktestResult",
    "BacktestSettings",
    "FillModel",
    "Ohlcv",
    "StrategyChoice",
    "load_ohlcv",
    "load_recording",
    "ohlcv_from_rows",
    "spec_for_data",
]
