"""What strategies see and say: bars, quotes, trades, fills, order updates, signals, order requests.

Prices and sizes here are floats: indicators are float arithmetic, and a strategy's opinion is not
money. Money stays in the engine; an order request's prices are rounded to the market's tick (and its
quantity to the lot) by whoever sends it to the engine. Times are nanoseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    BUY = "buy"
    SELL = "sell"
    HOLD = "hold"


class Bar:
    """One closed bar: `ts` is its open time, `end` its close time (a strategy sees it at `end`)."""

    __slots__ = ("close", "end", "high", "low", "open", "ts", "volume")

    def __init__(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float, end: int
    ) -> None:
        self.ts = ts
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.end = end

    def __repr__(self) -> str:
        return (
            f"Bar(ts={self.ts}, open={self.open}, high={self.high}, low={self.low}, close={self.close}, "
            f"volume={self.volume}, end={self.end})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bar):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in Bar.__slots__)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class QuoteTick:
    """Top of book with optional depth (price, size) best first; sizes may be unknown (None)."""

    market: str
    ts: int
    bid: float | None
    ask: float | None
    bid_size: float | None = None
    ask_size: float | None = None
    bids: tuple[tuple[float, float | None], ...] = ()
    asks: tuple[tuple[float, float | None], ...] = ()


@dataclass(frozen=True, slots=True)
class TradeTick:
    market: str
    ts: int
    price: float
    quantity: float
    taker_side: str


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order of the strategy's account changed: accepted, triggered, cancelled, expired, rejected."""

    market: str
    ts: int
    status: str
    order_id: int | None
    client_order_id: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FillReport:
    """A fill of the strategy's account, in the market's units (price, quantity, fee as decimals)."""

    market: str
    ts: int
    order_id: int
    side: str
    price: float
    quantity: float
    fee: float
    realized_pnl: float
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's opinion on one market: buy, sell or hold, with a confidence in [0, 1]."""

    market: str
    action: Action
    confidence: float = 1.0
    price: float | None = None
    reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    strategy: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"a signal's confidence is in [0, 1], not {self.confidence}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "market": self.market,
            "action": self.action.value,
            "confidence": self.confidence,
            "price": self.price,
            "reason": self.reason,
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order a strategy or the trader wants sent; exits are the engine's contingent orders.

    `take_profit`/`stop_loss` make it a bracket (the exits are placed when the entry fills, sized to
    it, one cancels the other); `trail_percent` adds a trailing stop exit ("1.5" = 1.5 %).
    """

    market: str
    side: str
    quantity: float
    type: str = "market"
    price: float | None = None
    stop_price: float | None = None
    reduce_only: bool = False
    take_profit: float | None = None
    stop_loss: float | None = None
    trail_percent: float | None = None
    client_order_id: str | None = None
    tag: str = ""
