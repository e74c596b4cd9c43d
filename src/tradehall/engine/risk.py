"""Risk: the mark of a market, assessment rules, and the mark intervals that keep mark-to-market
incremental (equity, maintenance and the liquidation price are `valuation`'s).

Equity is linear in each market's mark (slope: the signed position in lots x the notional ratio),
so for every (account, market) with a position the engine keeps the interval of marks inside which
no rule can fire: liquidation (equity at or below maintenance), an assessment floor, a new intraday peak,
or the profit target. A mark outside an account's interval makes the engine evaluate that account
exactly; a mark inside touches nothing. The bounds are rounded so that evaluation is early, never late.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from tradehall.domain.fixedpoint import PPM, minor_of
from tradehall.domain.tiers import DrawdownMode, TierSpec
from tradehall.engine.constants import PERP
from tradehall.engine.markets import Market

NS: Final = 1_000_000_000
UNBOUNDED_LOW: Final = -(2**62)
UNBOUNDED_HIGH: Final = 2**62


def mark_of(market: Market) -> int | None:
    return market.marks.price if market.marks.price is not None else market.last_price


class AssessmentState:
    """A prop-firm challenge in progress: its floors move by the tier's drawdown mode."""

    __slots__ = (
        "day_index",
        "day_start_balance",
        "eod_high",
        "initial",
        "last_trading_day",
        "max_daily_loss",
        "max_total_loss",
        "peak_equity",
        "target",
        "tier",
        "total_floor",
        "trading_days",
    )

    def __init__(self, tier: TierSpec, decimals: int, day_index: int) -> None:
        self.tier = tier
        self.initial = minor_of(tier.starting_balance, decimals, "starting_balance")
        self.max_daily_loss = _fraction_of(tier.max_daily_loss, self.initial)
        self.max_total_loss = _fraction_of(tier.max_total_loss, self.initial)
        self.target = self.initial + _fraction_of(tier.profit_target, self.initial)
        self.peak_equity = self.initial
        self.day_start_balance = self.initial
        self.eod_high = self.initial
        self.day_index = day_index
        self.trading_days = 0
        self.last_trading_day = -1
        self.total_floor = self.initial - self.max_total_loss

    @property
    def daily_floor(self) -> int:
        return self.day_start_balance - self.max_daily_loss

    @property
    def trails_on_marks(self) -> bool:
        """Whether marks move this floor: intraday trailing until it reaches its lock."""
        return (
            self.tier.drawdown_mode is DrawdownMode.INTRADAY_TRAILING
            and self.total_floor < self.trailing_lock
        )

    @property
    def trailing_lock(self) -> int:
        return self.initial + _fraction_of(self.tier.trailing_lock_buffer, self.initial)

    def observe_equity(self, equity: int) -> bool:
        """Track the peak; the intraday trailing floor follows it up to its lock. True if anything moved."""
        if equity <= self.peak_equity:
            return False
        self.peak_equity = equity
        if self.tier.drawdown_mode is DrawdownMode.INTRADAY_TRAILING:
            floor = min(equity - self.max_total_loss, self.trailing_lock)
            if floor > self.total_floor:
                self.total_floor = floor
        return True

    def daily_reset(self, balance: int, day_index: int) -> None:
        """At the tier's reset time: the day's starting balance, and the end-of-day trailing floor."""
        self.day_index = day_index
        self.day_start_balance = balance
        if self.tier.drawdown_mode is DrawdownMode.EOD_TRAILING:
            self.eod_high = max(self.eod_high, balance)
            floor = min(max(self.eod_high, self.initial) - self.max_total_loss, self.initial)
            if floor > self.total_floor:  # moved only at the reset, never down, locked at the start
                self.total_floor = floor

    def count_trading_day(self, day_index: int) -> None:
        if day_index != self.last_trading_day:
            self.last_trading_day = day_index
            self.trading_days += 1

    def breach(self, equity: int) -> tuple[str, int] | None:
        """The rule an equity breaks, with its floor; the daily floor is checked first."""
        if self.max_daily_loss and equity < self.daily_floor:
            return "max_daily_loss", self.daily_floor
        if equity < self.total_floor:
            return "max_total_loss", self.total_floor
        return None

    def passes(self, equity: int) -> bool:
        return equity >= self.target and self.trading_days >= self.tier.min_trading_days

    def floor(self) -> int:
        return max(self.daily_floor, self.total_floor) if self.max_daily_loss else self.total_floor

    def snapshot(self) -> list[int]:
        return [
            self.peak_equity,
            self.day_start_balance,
            self.eod_high,
            self.day_index,
            self.trading_days,
            self.last_trading_day,
            self.total_floor,
        ]

    def restore(self, values: list[int]) -> None:
        (
            self.peak_equity,
            self.day_start_balance,
            self.eod_high,
            self.day_index,
            self.trading_days,
            self.last_trading_day,
            self.total_floor,
        ) = values


def _fraction_of(fraction: Decimal, amount: int) -> int:
    num, den = fraction.as_integer_ratio()
    return amount * num // den


def tier_day_index(tier: TierSpec, ts: int) -> int:
    """The tier's trading day of `ts`: days start at `daily_reset_time` in the tier's time zone."""
    hours, minutes = (int(part) for part in tier.daily_reset_time.split(":"))
    local = datetime.fromtimestamp(ts / NS, ZoneInfo(tier.timezone)) - timedelta(hours=hours, minutes=minutes)
    return local.date().toordinal()


def next_reset_ts(tier: TierSpec, ts: int) -> int:
    """The first daily reset strictly after `ts`, in ns since the epoch."""
    hours, minutes = (int(part) for part in tier.daily_reset_time.split(":"))
    zone = ZoneInfo(tier.timezone)
    local = datetime.fromtimestamp(ts / NS, zone)
    candidate = local.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    while candidate.timestamp() * NS <= ts:
        naive = candidate.replace(tzinfo=None) + timedelta(days=1)
        candidate = naive.replace(tzinfo=zone)
    return int(candidate.astimezone(UTC).timestamp()) * NS


def mark_interval(
    market: Market,
    quantity: int,
    equity: int,
    lower_equity: int | None,
    upper_equity: int | None,
    maintenance_other: int,
    per_lot: int = 1,
) -> tuple[int, int]:
    """(low, high): this account needs evaluation when the market's mark is <= low or >= high.

    `quantity / per_lot` is the signed lots whose value moves with the mark: a position's lots, or
    a spot holding's base minor units over the base units per lot. `lower_equity`: equity below
    which a rule fires (an assessment floor); `upper_equity`: above which something moves (a new
    peak, the target); liquidation (perp) is added here. Equity is taken 2 minor units worse in
    each direction, so rounding can only make evaluation early.
    """
    mark = mark_of(market)
    if quantity == 0 or mark is None:
        return UNBOUNDED_LOW, UNBOUNDED_HIGH
    num, den = market.terms.notional.num, market.terms.notional.den * per_lot
    low, high = UNBOUNDED_LOW, UNBOUNDED_HIGH

    def add(crossing_num: int, crossing_den: int, fires_below: bool) -> None:
        nonlocal low, high
        if crossing_den < 0:
            crossing_num, crossing_den = -crossing_num, -crossing_den
        crossing = crossing_num // crossing_den
        if fires_below:
            low = max(low, crossing + 1)
        else:
            high = min(high, crossing)

    slope = quantity * num  # equity(p) = equity + slope * (p - mark) / den
    if lower_equity is not None:  # fires when equity(p) < lower_equity
        gap = (lower_equity + 2 - equity) * den
        add(mark * slope + gap, slope, fires_below=quantity > 0)
    if upper_equity is not None:  # fires when equity(p) > upper_equity
        gap = (upper_equity - 2 - equity) * den
        add(mark * slope + gap, slope, fires_below=quantity < 0)
    mm = market.terms.maintenance_margin_ppm
    if market.kind is PERP and mm:
        # fires when equity(p) <= other + |q| p num mm / (den PPM) (`Valuation.liquidatable`):
        # p * (slope PPM - |q| num mm) <= (other - equity + 2) den PPM + slope mark PPM, with equity
        # rounded down and `other` up to within a unit: the 2 units keep the bound early
        denominator = slope * PPM - abs(quantity) * num * mm
        numerator = (maintenance_other - equity + 2) * den * PPM + slope * mark * PPM
        if denominator:
            add(numerator, denominator, fires_below=denominator > 0)
    return low, high
