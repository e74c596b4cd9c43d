"""Weighted voting of several strategies' signals into one decision per market, then validators.

Each signal votes +weight x confidence (buy), -weight x confidence (sell) or 0 (hold); the decision's
score is the sum over the weight of the strategies that spoke, in [-1, 1]: buy above 0, sell below,
its confidence the absolute score. A strategy that said nothing does not dilute the others; one that
said hold does. Below `min_confidence` the decision is a hold. A validator may then veto the decision
with a reason, which is recorded with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tradehall.strategies.types import Action, Signal


@dataclass(frozen=True, slots=True)
class MarketState:
    """What validators know of a market at decision time (from the bars and quotes seen so far)."""

    market: str
    ts: int
    price: float
    data_ts: int
    bid: float | None = None
    ask: float | None = None
    bid_depth: float | None = None
    ask_depth: float | None = None
    volume: float | None = None
    volatility: float | None = None
    """Standard deviation of the recent bar-to-bar returns (a fraction)."""


@dataclass(slots=True)
class Decision:
    market: str
    action: Action
    confidence: float
    price: float | None
    ts: int
    signals: list[Signal] = field(default_factory=list)
    reason: str = ""
    vetoed_by: str | None = None
    veto_reason: str | None = None
    opening: bool = False
    """Whether acting on it would open (or add to) a position; set by the trader before validation."""
    order_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "market": self.market,
            "action": self.action.value,
            "confidence": self.confidence,
            "price": self.price,
            "ts": self.ts,
            "reason": self.reason,
            "vetoed_by": self.vetoed_by,
            "veto_reason": self.veto_reason,
            "signals": [s.as_dict() for s in self.signals],
            "client_order_ids": list(self.order_ids),
        }


class PortfolioState(Protocol):
    def open_positions(self) -> int: ...

    def position(self, market: str) -> float: ...


class Validator(Protocol):
    """Returns a veto reason, or None to let the decision through."""

    @property
    def name(self) -> str: ...

    def check(self, decision: Decision, state: MarketState, portfolio: PortfolioState) -> str | None: ...


class Combiner:
    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        min_confidence: float = 0.0,
        validators: Sequence[Validator] = (),
    ) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError("min_confidence is in [0, 1]")
        for name, weight in (weights or {}).items():
            if weight < 0:
                raise ValueError(f"weight of {name!r} is negative")
        self.weights = dict(weights or {})
        self.min_confidence = min_confidence
        self.validators = list(validators)

    def vote(self, market: str, signals: Sequence[Signal], ts: int) -> Decision:
        """The weighted vote alone (no validators)."""
        total = 0.0
        score = 0.0
        price: float | None = None
        weights = self.weights
        for signal in signals:
            weight = weights.get(signal.strategy, 1.0)
            total += weight
            if signal.action is Action.BUY:
                score += weight * signal.confidence
            elif signal.action is Action.SELL:
                score -= weight * signal.confidence
            if price is None and signal.price is not None:
                price = signal.price
        net = score / total if total > 0 else 0.0
        confidence = abs(net)
        if net == 0 or total == 0:
            return Decision(market, Action.HOLD, 0.0, price, ts, list(signals), reason="no majority")
        action = Action.BUY if net > 0 else Action.SELL
        if confidence < self.min_confidence:
            return Decision(
                market,
                Action.HOLD,
                confidence,
                price,
                ts,
                list(signals),
                reason=f"{action.value} at confidence {confidence:.4f} below min_confidence "
                f"{self.min_confidence}",
            )
        reasons = "; ".join(f"{s.strategy}: {s.reason}" for s in signals if s.reason and s.action is action)
        return Decision(market, action, confidence, price, ts, list(signals), reason=reasons)

    def validate(self, decision: Decision, state: MarketState, portfolio: PortfolioState) -> Decision:
        """The first validator that objects vetoes the decision; its name and reason are recorded."""
        if decision.action is Action.HOLD:
            return decision
        for validator in self.validators:
            reason = validator.check(decision, state, portfolio)
            if reason is not None:
                decision.vetoed_by = validator.name
                decision.veto_reason = reason
                break
        return decision
