"""The report's metrics, computed by the project (the tests check them against empyrical).

Definitions (docs/reference.md, "Report metrics"): daily returns are day-over-day changes of
end-of-day equity (UTC days), the first day against the initial balance; `sharpe` = mean / sample
standard deviation x sqrt(365); `sortino` = mean x 365 / (root mean square of the negative returns x
sqrt(365)); `cagr` = growth ^ (365 / days) - 1 over the days with returns; `calmar` = cagr /
max_drawdown; `var_95` and `cvar_95` are the negated historical 5 % value at risk (the 5th percentile,
linearly interpolated) and its expected shortfall (the mean of the worst int((n - 1) x 0.05) + 1
returns), as empyrical computes them; the `_trades` ratios are the same over per-trade returns, not
annualised. Loss-like metrics are positive fractions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

ANNUALIZATION = 365
NS_PER_DAY = 86_400 * 10**9


def daily_returns(initial: float, equity: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """(UTC day start in ns, return) for each day with equity; a point at exactly midnight closes the
    day before it (a bar that ends at 00:00 belongs to the day it traded in)."""
    closes: dict[int, float] = {}
    for ts, value in equity:
        day = (ts - 1) // NS_PER_DAY
        closes[day] = value
    out = []
    previous = initial
    for day in sorted(closes):
        value = closes[day]
        out.append((day * NS_PER_DAY, value / previous - 1.0 if previous else 0.0))
        previous = value
    return out


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def sample_std(values: Sequence[float]) -> float:
    n = len(values)
    if n < 2:
        return math.nan
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (n - 1))


def sharpe(returns: Sequence[float], annualization: float = ANNUALIZATION) -> float:
    std = sample_std(returns)
    if not std or math.isnan(std):
        return math.nan
    return mean(returns) / std * math.sqrt(annualization)


def sortino(returns: Sequence[float], annualization: float = ANNUALIZATION) -> float:
    if not returns:
        return math.nan
    squares = math.fsum(min(r, 0.0) ** 2 for r in returns)
    downside = math.sqrt(squares / len(returns)) * math.sqrt(annualization)
    average = mean(returns) * annualization
    if downside == 0:
        return math.inf if average > 0 else math.nan
    return average / downside


def cagr(returns: Sequence[float], annualization: float = ANNUALIZATION) -> float:
    if not returns:
        return math.nan
    growth = 1.0
    for r in returns:
        growth *= 1.0 + r
    years = len(returns) / annualization
    if growth <= 0:
        return -1.0
    return float(growth ** (1.0 / years)) - 1.0


def value_at_risk(returns: Sequence[float], cutoff: float = 0.05) -> float:
    """The `cutoff` percentile of the returns, linearly interpolated (numpy's default)."""
    if not returns:
        return math.nan
    ordered = sorted(returns)
    position = (len(ordered) - 1) * cutoff
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def conditional_value_at_risk(returns: Sequence[float], cutoff: float = 0.05) -> float:
    if not returns:
        return math.nan
    ordered = sorted(returns)
    index = int((len(ordered) - 1) * cutoff)
    return mean(ordered[: index + 1])


def drawdowns(initial: float, equity: Sequence[tuple[int, float]], start: int
              ) -> tuple[list[tuple[int, float]], float, int]:
    """The drawdown series (a positive fraction below the running peak, the initial balance
    included), its maximum, and the longest time in ns spent below a peak (to recovery, or to the end)."""
    peak = initial
    peak_ts = start
    series = []
    worst = 0.0
    longest = 0
    under = False
    last_ts = start
    for ts, value in equity:
        last_ts = ts
        if value >= peak:
            if under:
                longest = max(longest, ts - peak_ts)
                under = False
            peak, peak_ts = value, ts
            series.append((ts, 0.0))
            continue
        under = True
        drawdown = 1.0 - value / peak if peak > 0 else 0.0
        worst = max(worst, drawdown)
        series.append((ts, drawdown))
    if under:
        longest = max(longest, last_ts - peak_ts)
    return series, worst, longest


def streaks(outcomes: Sequence[bool]) -> tuple[int, int]:
    """The longest runs of True (wins) and of False (losses)."""
    best_win = best_loss = run = 0
    previous: bool | None = None
    for outcome in outcomes:
        run = run + 1 if outcome == previous else 1
        previous = outcome
        if outcome:
            best_win = max(best_win, run)
        else:
            best_loss = max(best_loss, run)
    return best_win, best_loss
