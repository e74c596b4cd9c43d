"""Candle values shared by market data (which aggregates them) and the store (which merges and keeps them).

They live in the domain so that the store does not import market data: both adapters sit on one layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

INTERVALS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
"""Interval name → width in seconds (windows aligned to the UTC epoch)."""


@dataclass(frozen=True, slots=True)
class Candle:
    """One window's candle (or a part of it, see `tradehall.marketdata.candles`)."""

    market: str
    interval: str
    start_ts: int
    """Window start, ns since the epoch; the window is [start_ts, start_ts + width)."""
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    closed: bool
    open_ts: int = field(default=0, compare=False)
    """Time (ns) of the price that set `open`; `close_ts` likewise for `close` (for merging parts)."""
    close_ts: int = field(default=0, compare=False)


__all__ = ["INTERVALS", "Candle"]
