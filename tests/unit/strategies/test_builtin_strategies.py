"""Each built-in strategy on a crafted series: exactly which bars signal, and what."""

from __future__ import annotations

import pytest

from tradehall.strategies import Action, Bar, QuoteTick, Signal, default_registry
from tradehall.strategies.base import Strategy

MINUTE = 60 * 10**9


def bar(i: int, close: float, *, open_: float | None = None, high: float | None = None,
        low: float | None = None, volume: float = 1.0) -> Bar:
    o = close if open_ is None else open_
    return Bar(i * MINUTE, o, max(o, close) if high is None else high, min(o, close) if low is None else low,
               close, volume, (i + 1) * MINUTE)


def run(strategy: Strategy, bars: list[Bar]) -> list[tuple[int, Action]]:
    out = []
    for i, b in enumerate(bars):
        signal = strategy.on_bar("BTC-USD", b)
        if signal is not None:
            assert signal.strategy == strategy.name and signal.market == "BTC-USD"
            out.append((i, signal.action))
    return out


def make(name: str, **params: object) -> Strategy:
    return default_registry().create(name, params)


def test_sma_crossover_signals_on_the_crossing_bars_only() -> None:
    closes = [10, 10, 10, 11, 12, 13, 12, 11, 10, 9, 9, 10, 11]
    # fast(2) - slow(3) from bar 2: 0, +.33, +.67, +1, 0, -.5 (cross down at 7), ..., +.17 at 11?
    signals = run(make("sma_crossover", fast=2, slow=3), [bar(i, c) for i, c in enumerate(closes)])
    assert signals == [(7, Action.SELL), (11, Action.BUY)]


def test_a_touch_is_not_a_cross_and_the_bar_leaving_it_counts_once() -> None:
    # differences (fast 1 - slow 2): bar1 +0.5, bar2 0 (touch), bar3 -0.5 (cross down), bar4 0, bar5 -0.5
    closes = [1.0, 2.0, 2.0, 1.0, 1.0, 0.0]
    assert run(make("sma_crossover", fast=1, slow=2), [bar(i, c) for i, c in enumerate(closes)]) == [
        (3, Action.SELL)
    ]


def test_ema_crossover() -> None:
    closes = [10.0] * 5 + [12.0, 12.0, 8.0, 8.0]
    assert run(make("ema_crossover", fast=2, slow=4), [bar(i, c) for i, c in enumerate(closes)]) == [
        (7, Action.SELL)
    ]
    # the first difference is 0: leaving it downwards (bar 4) is not a cross, the change of sign
    # after it (bar 6) is
    closes = [10.0] * 4 + [9.0, 9.0, 11.0]
    assert run(make("ema_crossover", fast=2, slow=4), [bar(i, c) for i, c in enumerate(closes)]) == [
        (6, Action.BUY),
    ]


def test_rsi_reversion_fires_on_entering_each_zone() -> None:
    closes = [10, 11, 12, 13, 12, 11, 10, 9, 8, 9, 10, 11, 12, 13, 14]
    strategy = make("rsi_reversion", period=3, oversold=30, overbought=70)
    bars = [bar(i, c) for i, c in enumerate(closes)]
    result = []
    for i, b in enumerate(bars):
        s = strategy.on_bar("BTC-USD", b)
        if s is not None:
            result.append((i, s.action, round(s.metadata["rsi"], 4), round(s.confidence, 4)))
    # RSI(3): 100, 100, 58.46, 36.02, 22.86 (enters oversold at bar 6), ... 60.73, 73.97 (bar 11)
    assert result == [
        (6, Action.BUY, 22.8571, round(0.5 + (30 - 22.857142857142858) / 60, 4)),
        (11, Action.SELL, 73.9713, round(0.5 + (73.97129186602871 - 70) / 60, 4)),
    ]


def test_bollinger_reversion_fires_when_the_close_leaves_the_bands() -> None:
    closes = [10.0, 10.0, 10.0, 10.0, 8.0, 9.0, 10.0, 10.0, 10.0, 13.0]
    strategy = make("bollinger_reversion", period=4, k=1.0)
    assert run(strategy, [bar(i, c) for i, c in enumerate(closes)]) == [(4, Action.BUY), (9, Action.SELL)]


def test_donchian_breakout_against_the_previous_bars_channel() -> None:
    bars = [bar(0, 10, high=11, low=9), bar(1, 10, high=12, low=9), bar(2, 11.5, high=11.8, low=10),
            bar(3, 12.5, high=12.6, low=11), bar(4, 8.5, high=12, low=8.4)]
    assert run(make("donchian_breakout", period=2), bars) == [(3, Action.BUY), (4, Action.SELL)]


def test_volume_spike_follows_the_direction_of_the_spike_bar() -> None:
    bars = [bar(i, 10, volume=10) for i in range(3)]
    bars += [bar(3, 11, open_=10, volume=30), bar(4, 9, open_=10, volume=100)]
    bars += [bar(5, 10, open_=10, volume=900)]
    strategy = make("volume_spike", period=3, threshold=3)
    result = [(i, s.action, s.confidence) for i, b in enumerate(bars)
              if (s := strategy.on_bar("BTC-USD", b)) is not None]
    # bar 3: 30 / mean(10,10,10) = 3 -> buy, confidence 3 / 6; bar 4: 100 / mean(10,10,30) = 6 -> sell;
    # bar 5 trades 900 but closes where it opened: no direction, no signal
    assert result == [(3, Action.BUY, 0.5), (4, Action.SELL, 1.0)]


def quote(bid_size: float, ask_size: float, depth: bool = False) -> QuoteTick:
    if depth:
        return QuoteTick("BTC-USD", 0, 99.0, 101.0, bids=((99.0, bid_size), (98.0, bid_size)),
                         asks=((101.0, ask_size), (102.0, ask_size)))
    return QuoteTick("BTC-USD", 0, 99.0, 101.0, bid_size=bid_size, ask_size=ask_size)


def test_book_imbalance_fires_when_entering_a_zone() -> None:
    strategy = make("book_imbalance", depth=2, threshold=0.5)
    sequence = [quote(1, 1), quote(4, 1, depth=True), quote(5, 1), quote(1, 1), quote(1, 4)]
    sequence.append(QuoteTick("BTC-USD", 0, 99.0, 101.0, bid_size=None, ask_size=1.0))
    results: list[Signal | None] = [strategy.on_quote(q) for q in sequence]
    assert [r and (r.action, r.confidence, r.price) for r in results] == [
        None,
        (Action.BUY, 0.6, 100.0),  # (8 - 2) / 10 over two levels
        None,  # still in the buy zone
        None,
        (Action.SELL, 0.6, 100.0),
        None,  # sizes unknown: no opinion
    ]


def test_liquidity_sweep_buys_a_failed_break_of_the_low_and_sells_a_failed_break_of_the_high() -> None:
    bars = [bar(0, 10, high=11, low=9), bar(1, 10, high=11, low=9),
            bar(2, 9.5, high=10, low=8.5),  # sweeps 9 and closes back inside: buy
            bar(3, 8.0, high=9.5, low=7.9),  # breaks 8.5 and stays below: a breakdown, not a sweep
            bar(4, 9.0, high=11.5, low=8.8)]  # sweeps 10, the high of bars 2-3, closes inside: sell
    assert run(make("liquidity_sweep", lookback=2), bars) == [(2, Action.BUY), (4, Action.SELL)]


def test_liquidity_sweep_can_require_volume() -> None:
    bars = [bar(0, 10, high=11, low=9, volume=10), bar(1, 10, high=11, low=9, volume=10),
            bar(2, 9.5, high=10, low=8.5, volume=15)]
    assert run(make("liquidity_sweep", lookback=2, min_volume_ratio=2), bars) == []
    bars[2] = bar(2, 9.5, high=10, low=8.5, volume=20)
    assert run(make("liquidity_sweep", lookback=2, min_volume_ratio=2), bars) == [(2, Action.BUY)]


NEEDS_CONFIGURATION = {"remote": {"url": "http://127.0.0.1:9/model"}}
"""Built-ins whose defaults cannot run alone (the remote model needs its service's address)."""


@pytest.mark.parametrize("name", default_registry().names())
def test_every_builtin_has_a_description_and_defaults_that_validate(name: str) -> None:
    strategy = make(name, **NEEDS_CONFIGURATION.get(name, {}))
    assert strategy.describe()["description"]
    assert strategy.warmup >= 0
