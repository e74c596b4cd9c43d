"""Test helpers: bars from tuples, and a scripted strategy that acts on given bars."""

from __future__ import annotations

from decimal import Decimal

from tradehall.domain.market import MarketSpec
from tradehall.strategies import Action, Bar, FillReport, Param, Signal, Strategy, StrategyRegistry
from tradehall.strategies.backtest import Ohlcv, spec_for_data
from tradehall.strategies.builtin import BUILTIN_STRATEGIES

MINUTE = 60 * 10**9
T0 = 1_700_000_040 * 10**9 - (1_700_000_040 * 10**9) % (86_400 * 10**9)  # a UTC midnight


def bars(rows: list[tuple[float, float, float, float]], volume: float = 10.0) -> Ohlcv:
    data = Ohlcv([], [], [], [], [], [])
    for i, (o, h, lo, c) in enumerate(rows):
        data.ts.append(T0 + i * MINUTE)
        data.open.append(o)
        data.high.append(h)
        data.low.append(lo)
        data.close.append(c)
        data.volume.append(volume)
    return data


def spec(tick: str = "0.5") -> MarketSpec:
    return spec_for_data("BTC-USD", None, Decimal(tick), Decimal("0.001"))


class Script(Strategy):
    """Says what `plan` says on the given bars: "0:buy,3:sell"; with `stop` > 0, protects each long
    with its own resting stop order at that price once the entry filled."""

    name = "script"
    parameters = {"plan": Param(str, ""), "stop": Param(float, 0.0, min=0), "limit": Param(float, 0.0, min=0)}

    def setup(self) -> None:
        plan = str(self.params["plan"])
        self.plan = {int(k): Action(v) for k, v in (p.split(":") for p in plan.split(",") if p)}
        self.index = -1
        self.fills: list[FillReport] = []

    def on_bar(self, market: str, bar: Bar) -> Signal | None:
        self.index += 1
        limit = float(self.params["limit"])
        if limit and self.index == 0:
            self.ctx.buy(market, 1.0, type="limit", price=limit, client_order_id="limit-buy")
        action = self.plan.get(self.index)
        return None if action is None else self.signal(market, action, 1.0, bar.close, f"bar {self.index}")

    def on_fill(self, fill: FillReport) -> None:
        self.fills.append(fill)
        stop = float(self.params["stop"])
        if stop and fill.side == "buy" and self.ctx.portfolio.position(fill.market) > 0:
            self.ctx.sell(fill.market, fill.quantity, type="stop", stop_price=stop, client_order_id="stop")


def registry() -> StrategyRegistry:
    return StrategyRegistry([*BUILTIN_STRATEGIES, Script])
