"""Property: skipping the quotes nothing can react to changes no fill and no equity, whatever the bars,
the exits and the fill model (the backtest's `eager` mode sends every quote of every bar)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.strategies.backtest_support import bars, spec
from tradehall.strategies.backtest import Backtest, BacktestSettings, FillModel, StrategyChoice

steps = st.lists(st.integers(min_value=-6, max_value=6), min_size=30, max_size=120)
wicks = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=120, max_size=120)
exits = st.sampled_from([
    {},
    {"stop_loss_percent": "1"},
    {"take_profit_percent": "1.5"},
    {"stop_loss_percent": "1", "take_profit_percent": "2"},
    {"trailing_stop_percent": "1"},
])
fills = st.sampled_from(["latency_ms=1,slippage=0", "latency_ms=0,slippage=0.001,fee=0.001",
                         "latency_ms=1,spread=0.002,fee=0.0005"])


@settings(max_examples=25, deadline=None)
@given(steps=steps, wicks=wicks, extra=exits, fill=fills)
def test_lazy_and_eager_backtests_fill_alike(
    steps: list[int], wicks: list[tuple[int, int]], extra: dict[str, str], fill: str
) -> None:
    rows = []
    price = 100.0
    for step, (up, down) in zip(steps, wicks, strict=False):
        open_ = price
        price = max(10.0, price + step * 0.5)
        rows.append((open_, max(open_, price) + up * 0.5, min(open_, price) - down * 0.5, price))

    def once(eager: bool) -> tuple[object, object, object]:
        backtest = Backtest(
            [StrategyChoice("sma_crossover", parameters={"fast": 2, "slow": 5})],
            spec(),
            BacktestSettings.parse({"order_quantity": "1", "initial_balance": "100000", **extra}),
            FillModel.parse(fill),
            eager=eager,
        )
        result = backtest.run_ohlcv(bars(rows))
        return result.fills, result.equity, [(o.type, o.status) for o in result.orders]

    assert once(False) == once(True)
