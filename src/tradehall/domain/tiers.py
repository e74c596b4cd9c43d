"""Prop-firm assessment tiers: configuration in the rule shapes prop firms publish.

Percentages are decimal fractions of the starting balance ("0.05" = 5 %), as GET /tiers shows them.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

import msgspec


class DrawdownMode(StrEnum):
    STATIC = "static"
    EOD_TRAILING = "eod_trailing"
    INTRADAY_TRAILING = "intraday_trailing"


class TierSpec(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    name: str
    starting_balance: Decimal
    currency: str = "USD"
    profit_target: Decimal = Decimal("0.10")
    max_daily_loss: Decimal = Decimal("0.05")
    max_total_loss: Decimal = Decimal("0.10")
    drawdown_mode: DrawdownMode = DrawdownMode.STATIC
    max_risk_per_trade: Decimal | None = None
    max_leverage: Decimal | None = None
    min_trading_days: int = 0
    allowed_markets: tuple[str, ...] | None = None
    daily_reset_time: str = "00:00"
    timezone: str = "Europe/Prague"
    trailing_lock_buffer: Decimal = Decimal("0")


DEFAULT_TIERS: dict[str, TierSpec] = {
    "ftmo-2step-10k": TierSpec(
        name="ftmo-2step-10k",
        starting_balance=Decimal("10000"),
        profit_target=Decimal("0.10"),
        max_daily_loss=Decimal("0.05"),
        max_total_loss=Decimal("0.10"),
        min_trading_days=4,
    ),
    "ftmo-1step-10k": TierSpec(
        name="ftmo-1step-10k",
        starting_balance=Decimal("10000"),
        profit_target=Decimal("0.10"),
        max_daily_loss=Decimal("0.03"),
        max_total_loss=Decimal("0.06"),
        drawdown_mode=DrawdownMode.EOD_TRAILING,
    ),
    "apex-50k": TierSpec(
        name="apex-50k",
        starting_balance=Decimal("50000"),
        profit_target=Decimal("0.06"),
        max_daily_loss=Decimal("1"),
        max_total_loss=Decimal("0.05"),
        drawdown_mode=DrawdownMode.INTRADAY_TRAILING,
        trailing_lock_buffer=Decimal("0.002"),
        timezone="America/New_York",
        daily_reset_time="17:00",
    ),
}
"""Shipped examples; deployments configure their own in tradehall.toml."""
