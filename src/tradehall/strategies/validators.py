"""Validators that may veto a combined decision, each with a stable name and a readable reason.

Spread, liquidity and volatility guard entries only: an exit is never refused for a wide market (the
position's own stop-loss would fill there anyway). Data freshness guards both: acting on stale data is
acting blind. Max positions and the risk manager's state guard entries.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradehall.strategies.combiner import Decision, MarketState, PortfolioState


@dataclass(frozen=True, slots=True)
class SpreadValidator:
    max_spread: float
    """(ask - bid) / mid above which an entry is refused (a fraction)."""
    name: str = "spread"

    def check(self, decision: Decision, state: MarketState, portfolio: PortfolioState) -> str | None:
        if not decision.opening or state.bid is None or state.ask is None:
            return None
        mid = (state.bid + state.ask) / 2
        spread = (state.ask - state.bid) / mid if mid > 0 else float("inf")
        if spread > self.max_spread:
            return f"spread {spread:.6f} above {self.max_spread}"
        return None


@dataclass(frozen=True, slots=True)
class LiquidityValidator:
    min_volume: float | None = None
    """Base volume of the last bar below which an entry is refused."""
    min_depth: float | None = None
    """Quoted size on the side an entry takes, below which it is refused."""
    name: str = "liquidity"

    def check(self, decision: Decision, state: MarketState, portfolio: PortfolioState) -> str | None:
        if not decision.opening:
            return None
        if self.min_volume is not None and state.volume is not None and state.volume < self.min_volume:
            return f"volume {state.volume} below {self.min_volume}"
        if self.min_depth is not None:
            depth = state.ask_depth if decision.action.value == "buy" else state.bid_depth
            if depth is not None and depth < self.min_depth:
                return f"quoted depth {depth} below {self.min_depth}"
        return None


@dataclass(frozen=True, slots=True)
class VolatilityValidator:
    max_volatility: float
    """Standard deviation of recent bar returns above which an entry is refused."""
    name: str = "volatility"

    def check(self, decision: Decision, state: MarketState, portfolio: PortfolioState) -> str | None:
        if decision.opening and state.volatility is not None and state.volatility > self.max_volatility:
            return f"volatility {state.volatility:.6f} above {self.max_volatility}"
        return None


@dataclass(frozen=True, slots=True)
class FreshnessValidator:
    max_age_seconds: float
    name: str = "data_freshness"

    def check(self, decision: Decision, state: MarketState, portfolio: PortfolioState) -> str | None:
        age = (state.ts - state.data_ts) / 1e9
        if age > self.max_age_seconds:
            return f"market data {age:.3f} s old, more than {self.max_age_seconds} s"
        return None


@dataclass(frozen=True, slots=True)
class MaxPositionsValidator:
    max_positions: int
    name: str = "max_positions"

    def check(self, decision: Decision, state: MarketState, portfolio: PortfolioState) -> str | None:
        if not decision.opening or portfolio.position(decision.market) != 0:
            return None
        held = portfolio.open_positions()
        if held >= self.max_positions:
            return f"{held} open position(s), max_positions {self.max_positions}"
        return None
