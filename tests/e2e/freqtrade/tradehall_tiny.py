"""A tiny deterministic Freqtrade strategy for the Alpaca surface's test: enter once, exit at once.

Loaded by Freqtrade (its own virtualenv) from this directory, never imported by tradehall's tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from freqtrade.persistence import Trade
from freqtrade.strategy import IStrategy
from pandas import DataFrame


class TradehallTiny(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1m"
    minimal_roi = {"0": 100}  # no ROI exit: custom_exit closes the trade
    stoploss = -0.99
    startup_candle_count = 0
    process_only_new_candles = False
    entered = False

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe.loc[:, "enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe.loc[:, "exit_long"] = 0
        return dataframe

    def confirm_trade_entry(
        self,
        pair: str,
        order_type: str,
        amount: float,
        rate: float,
        time_in_force: str,
        current_time: datetime,
        entry_tag: str | None,
        side: str,
        **kwargs: Any,
    ) -> bool:
        # one trade only: the test checks exactly one entry and one exit
        if TradehallTiny.entered:
            return False
        TradehallTiny.entered = True
        return True

    def custom_exit(
        self,
        pair: str,
        trade: Trade,
        current_time: datetime,
        current_rate: float,
        current_profit: float,
        **kwargs: Any,
    ) -> str | None:
        return "tradehall_done"
