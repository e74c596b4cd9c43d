"""The built-in strategies, one family per module."""

from tradehall.strategies.builtin.breakout import DonchianBreakout
from tradehall.strategies.builtin.liquidity import LiquiditySweep
from tradehall.strategies.builtin.microstructure import BookImbalance
from tradehall.strategies.builtin.remote import RemoteModel
from tradehall.strategies.builtin.reversion import BollingerReversion, RsiReversion
from tradehall.strategies.builtin.trend import EmaCrossover, SmaCrossover
from tradehall.strategies.builtin.volume import VolumeSpikeStrategy

BUILTIN_STRATEGIES = (
    SmaCrossover,
    EmaCrossover,
    RsiReversion,
    BollingerReversion,
    DonchianBreakout,
    VolumeSpikeStrategy,
    BookImbalance,
    LiquiditySweep,
    RemoteModel,
)

__all__ = [
    "BUILTIN_STRATEGIES",
    "BollingerReversion",
    "BookImbalance",
    "DonchianBreakout",
    "EmaCrossover",
    "LiquiditySweep",
    "RemoteModel",
    "RsiReversion",
    "SmaCrossover",
    "VolumeSpikeStrategy",
]
