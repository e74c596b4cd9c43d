"""The strategy interface: a class with typed parameters and lifecycle callbacks, and its context.

A strategy turns market data into `Signal`s (return one from a callback, or None for no opinion) and
may also place orders itself through its context (`self.ctx.buy(...)`). It never holds a global: the
context gives it the clock, a read-only view of its account (the portfolio) and an order factory. The
same instance runs in a backtest and in a live session; only the context's implementation differs,
which is why a backtest and a paper session on the same data give the same orders.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

from tradehall.strategies.params import Param, ParamValue, resolve, schema_of
from tradehall.strategies.types import (
    Action,
    Bar,
    FillReport,
    OrderRequest,
    OrderUpdate,
    QuoteTick,
    Signal,
    TradeTick,
)


class Portfolio(Protocol):
    """The strategy's account as it stands, in the account's currency and the markets' base units."""

    def position(self, market: str) -> float:
        """Signed base quantity held (negative: short); 0 when flat."""
        ...

    def entry_price(self, market: str) -> float | None: ...

    def equity(self) -> float: ...

    def cash(self) -> float: ...

    def open_positions(self) -> int:
        """How many markets hold a non-zero position."""
        ...


class OrderSink(Protocol):
    """Where orders go: the backtest's engine or the live service. Returns the client order id."""

    def submit(self, request: OrderRequest) -> str: ...

    def cancel(self, client_order_id: str) -> None: ...

    def cancel_all(self, market: str) -> None:
        """Cancel the account's open orders in `market` (a position's exits, before it is closed)."""
        ...


class StrategyContext:
    """Clock, portfolio view and order factory handed to every strategy of a run or session."""

    __slots__ = ("_clock", "_orders", "portfolio", "random")

    def __init__(
        self, clock: Callable[[], int], portfolio: Portfolio, orders: OrderSink, seed: int = 0
    ) -> None:
        self._clock = clock
        self.portfolio = portfolio
        self._orders = orders
        self.random = random.Random(seed)
        """The run's seeded random numbers: a strategy that draws any uses this, so a backtest repeats."""

    def now(self) -> int:
        """Nanoseconds since the epoch: the time of the data being handled, never the wall clock in a
        backtest."""
        return self._clock()

    def submit(self, request: OrderRequest) -> str:
        return self._orders.submit(request)

    def buy(self, market: str, quantity: float, **terms: Any) -> str:
        return self._orders.submit(OrderRequest(market=market, side="buy", quantity=quantity, **terms))

    def sell(self, market: str, quantity: float, **terms: Any) -> str:
        return self._orders.submit(OrderRequest(market=market, side="sell", quantity=quantity, **terms))

    def close(self, market: str) -> str | None:
        """A reduce-only market order that flattens the position; None when flat."""
        held = self.portfolio.position(market)
        if held == 0:
            return None
        side = "sell" if held > 0 else "buy"
        return self._orders.submit(
            OrderRequest(market=market, side=side, quantity=abs(held), reduce_only=True, tag="close")
        )

    def cancel(self, client_order_id: str) -> None:
        self._orders.cancel(client_order_id)


class Strategy:
    """Subclass it: set `name`, `description`, `parameters`, and override the callbacks you need.

    Parameters are resolved and checked when the strategy is built (`self.params`); `check_params`
    adds checks across parameters. `warmup` is how many bars the strategy needs before it can speak
    (a live session replays that much history to rebuild its indicators after a restart).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    parameters: ClassVar[Mapping[str, Param]] = {}

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        self.params: dict[str, ParamValue] = resolve(self.parameters, params)
        self.check_params()
        self._ctx: StrategyContext | None = None
        self.setup()

    # --- to override ---------------------------------------------------------------------------

    def check_params(self) -> None:
        """Refuse a combination of parameters (raise `invalid_request`)."""

    def setup(self) -> None:
        """Build indicators from `self.params` (called by `__init__`)."""

    @property
    def warmup(self) -> int:
        return 0

    def on_start(self) -> None:
        """The run or session starts; the context is bound."""

    def on_bar(self, market: str, bar: Bar) -> Signal | None:
        return None

    def on_quote(self, quote: QuoteTick) -> Signal | None:
        return None

    def on_trade(self, trade: TradeTick) -> Signal | None:
        return None

    def on_order(self, update: OrderUpdate) -> None:
        """An order of this run's account changed state."""

    def on_fill(self, fill: FillReport) -> None:
        """An order of this run's account filled (partly)."""

    def on_stop(self) -> None:
        """The run or session ends."""

    # --- for subclasses ----------------------------------------------------------------------------

    @property
    def ctx(self) -> StrategyContext:
        if self._ctx is None:
            raise RuntimeError(f"strategy {self.name!r} has no context before on_start")
        return self._ctx

    def bind(self, ctx: StrategyContext) -> None:
        self._ctx = ctx

    def signal(
        self,
        market: str,
        action: Action,
        confidence: float = 1.0,
        price: float | None = None,
        reason: str = "",
        **metadata: Any,
    ) -> Signal:
        return Signal(
            market=market,
            action=action,
            confidence=confidence,
            price=price,
            reason=reason,
            metadata=metadata,
            strategy=self.name,
        )

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The strategy as `GET /strategies` lists it."""
        return {
            "name": cls.name,
            "description": cls.description or (cls.__doc__ or "").strip().split("\n")[0],
            "parameters": schema_of(cls.parameters),
        }
