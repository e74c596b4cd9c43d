"""CandleAggregator parts: what each window gained since its previous part, handed to the part sink at
`flush_parts()` and when the window closes; merged, the parts are the whole candle."""

from __future__ import annotations

from decimal import Decimal

from tradehall.marketdata.candles import Candle, CandleAggregator
from tradehall.store.candles import combine, update_of_part

D = Decimal
S = 1_000_000_000
BASE = 1_764_547_080 * S  # 2025-11-30T23:58:00Z, a minute boundary


def test_parts_since_the_last_flush_and_the_final_part_at_close() -> None:
    closed: list[Candle] = []
    parts: list[Candle] = []
    candles = CandleAggregator(closed.append, intervals=("1m",), part_sink=parts.append)
    candles.on_trade("X", D("10"), D("1"), BASE + 1 * S)
    candles.on_trade("X", D("12"), D("2"), BASE + 2 * S)
    assert candles.flush_parts() == 1
    assert candles.flush_parts() == 0  # nothing new since
    candles.on_trade("X", D("9"), D("1"), BASE + 3 * S)
    candles.on_trade("X", D("11"), D("3"), BASE + 60 * S)  # opens the next minute: closes the first
    assert parts == [
        Candle("X", "1m", BASE, D("10"), D("12"), D("10"), D("12"), D("3"), 2, False),
        Candle("X", "1m", BASE, D("9"), D("9"), D("9"), D("9"), D("1"), 1, True),
    ]
    assert [(p.open_ts, p.close_ts) for p in parts] == [
        (BASE + 1 * S, BASE + 2 * S),
        (BASE + 3 * S, BASE + 3 * S),
    ]
    assert closed == [Candle("X", "1m", BASE, D("10"), D("12"), D("9"), D("9"), D("4"), 3, True)]
    whole = combine(update_of_part(part) for part in parts)
    assert [(w.open, w.high, w.low, w.close, w.volume, w.trades) for w in whole] == [
        (D("10"), D("12"), D("9"), D("9"), D("4"), 3)
    ]
    assert candles.open_candles() == [
        Candle("X", "1m", BASE + 60 * S, D("11"), D("11"), D("11"), D("11"), D("3"), 1, False)
    ]
    assert candles.close_until(BASE + 120 * S)[0].close == D("11")
    assert parts[-1] == Candle("X", "1m", BASE + 60 * S, D("11"), D("11"), D("11"), D("11"), D("3"), 1, True)
    assert candles.open_candles() == []


def test_a_window_closed_right_after_a_flush_hands_over_no_empty_part() -> None:
    parts: list[Candle] = []
    candles = CandleAggregator(intervals=("1m", "5m"), part_sink=parts.append)
    candles.on_price("Y", D("0.42"), BASE + 5 * S)
    assert candles.flush_parts() == 2
    candles.close_until(BASE + 60 * S)
    assert [(p.interval, p.closed) for p in parts] == [("1m", False), ("5m", False)]
    assert all(p.volume == 0 and p.trades == 0 for p in parts)


def test_without_a_part_sink_nothing_is_kept_for_parts() -> None:
    candles = CandleAggregator(intervals=("1m",))
    candles.on_trade("X", D("10"), D("1"), BASE)
    assert candles.flush_parts() == 0
    assert candles.current("X", "1m") == Candle(
        "X", "1m", BASE, D("10"), D("10"), D("10"), D("10"), D("1"), 1, False
    )
