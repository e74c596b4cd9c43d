"""Each incremental indicator against the `ta` library on the same series, value by value."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest
from ta.momentum import RSIIndicator
from ta.trend import EMAIndicator, SMAIndicator
from ta.volatility import AverageTrueRange, BollingerBands, DonchianChannel

from tradehall.strategies.indicators import (
    ATR,
    EMA,
    RSI,
    SMA,
    Bollinger,
    Donchian,
    VolumeSpike,
    book_imbalance,
)


def ohlc(n: int = 600, seed: int = 7) -> pd.DataFrame:
    rng = random.Random(seed)
    close = 100.0
    rows = []
    for _ in range(n):
        open_ = close
        close = max(1.0, open_ * math.exp(rng.gauss(0, 0.01)))
        high = max(open_, close) * (1 + abs(rng.gauss(0, 0.003)))
        low = min(open_, close) * (1 - abs(rng.gauss(0, 0.003)))
        rows.append((open_, high, low, close, rng.uniform(1, 100)))
    return pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"])


def same(ours: list[float | None], reference: pd.Series) -> None:
    assert len(ours) == len(reference)
    for i, (mine, theirs) in enumerate(zip(ours, reference.tolist(), strict=True)):
        if theirs is None or (isinstance(theirs, float) and math.isnan(theirs)):
            assert mine is None, f"bar {i}: {mine} where ta has no value yet"
        else:
            assert mine == pytest.approx(theirs, rel=1e-9, abs=1e-9), f"bar {i}"


@pytest.mark.parametrize("period", [1, 5, 20])
def test_sma_matches_ta(period: int) -> None:
    data = ohlc()
    sma = SMA(period)
    same([sma.update(x) for x in data.close], SMAIndicator(data.close, period).sma_indicator())


@pytest.mark.parametrize("period", [3, 12, 26])
def test_ema_matches_ta(period: int) -> None:
    data = ohlc()
    ema = EMA(period)
    same([ema.update(x) for x in data.close], EMAIndicator(data.close, period).ema_indicator())


@pytest.mark.parametrize("period", [2, 14])
def test_rsi_matches_ta(period: int) -> None:
    data = ohlc()
    rsi = RSI(period)
    same([rsi.update(x) for x in data.close], RSIIndicator(data.close, period).rsi())


def test_rsi_of_a_series_that_only_rises_is_100() -> None:
    rsi = RSI(3)
    values = [rsi.update(float(x)) for x in range(1, 8)]
    assert values[:2] == [None, None]
    assert values[2:] == [100.0] * 5


@pytest.mark.parametrize(("period", "k"), [(20, 2.0), (10, 1.5)])
def test_bollinger_matches_ta(period: int, k: float) -> None:
    data = ohlc()
    bands = Bollinger(period, k)
    values = [bands.update(x) for x in data.close]
    reference = BollingerBands(data.close, period, k)
    same([v and v[0] for v in values], reference.bollinger_lband())
    same([v and v[1] for v in values], reference.bollinger_mavg())
    same([v and v[2] for v in values], reference.bollinger_hband())


@pytest.mark.parametrize("period", [1, 5, 20])
def test_donchian_matches_ta(period: int) -> None:
    data = ohlc()
    channel = Donchian(period)
    values = [channel.update(h, lo) for h, lo in zip(data.high, data.low, strict=True)]
    reference = DonchianChannel(data.high, data.low, data.close, period)
    same([v and v[0] for v in values], reference.donchian_channel_lband())
    same([v and v[1] for v in values], reference.donchian_channel_hband())


@pytest.mark.parametrize("period", [5, 14])
def test_atr_matches_ta(period: int) -> None:
    data = ohlc()
    atr = ATR(period)
    ours = [atr.update(h, lo, c) for h, lo, c in zip(data.high, data.low, data.close, strict=True)]
    reference = AverageTrueRange(data.high, data.low, data.close, period).average_true_range()
    # ta fills its warm-up with zeros
    assert ours[: period - 1] == [None] * (period - 1)
    assert reference.iloc[: period - 1].tolist() == [0.0] * (period - 1)
    same(ours[period - 1 :], reference.iloc[period - 1 :].reset_index(drop=True))


def test_volume_spike_is_the_ratio_to_the_mean_of_the_bars_before() -> None:
    spike = VolumeSpike(3)
    assert [spike.update(v) for v in (10.0, 20.0, 30.0)] == [None, None, None]
    assert spike.update(60.0) == 3.0  # mean of 10, 20, 30 is 20
    assert spike.update(0.0) == 0.0  # mean of 20, 30, 60
    assert VolumeSpike(1).update(5.0) is None


def test_book_imbalance_over_the_best_levels() -> None:
    bids = [(99.0, 3.0), (98.0, 1.0), (97.0, 100.0)]
    asks = [(101.0, 1.0), (102.0, 1.0)]
    assert book_imbalance(bids, asks, depth=2) == pytest.approx((4 - 2) / 6)
    assert book_imbalance(bids, [(101.0, None)], depth=2) is None
    assert book_imbalance([], [], depth=5) is None


def test_sma_stays_exact_over_a_long_series_of_binary_exact_prices() -> None:
    sma = SMA(50)
    prices = [100 + (i * 37 % 101) * 0.25 for i in range(100_000)]
    for price in prices:
        value = sma.update(price)
    assert value == math.fsum(prices[-50:]) / 50
