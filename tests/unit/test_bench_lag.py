"""bench/api_load.py's projector lag: each sample's lag is the time until a later sample shows its
durable seq projected, so a lag finer than the 1 s `/ready` cache reads as such."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import api_load


def test_lags_are_the_time_until_a_later_sample_shows_the_durable_seq_projected() -> None:
    samples = [
        (0.00, 10, 10),  # caught up: no lag
        (0.02, 14, 10),
        (0.04, 20, 12),
        (0.06, 20, 14),  # the 0.02 sample's seq 14 projected
        (0.08, 25, 20),  # the 0.04 and 0.06 samples' seq 20
        (0.10, 25, 25),
    ]
    lags = [round(lag, 6) for lag in api_load.lags_of(samples)]
    assert lags == [0.0, 0.04, 0.04, 0.02, 0.02, 0.0]


def test_a_seq_never_projected_lags_until_the_last_sample() -> None:
    lags = [round(lag, 6) for lag in api_load.lags_of([(1.0, 5, 4), (1.5, 5, 4), (1.75, 6, 4)])]
    assert lags == [0.75, 0.25, 0.0]


def test_percentiles_of_sub_second_lags_stay_sub_second() -> None:
    lags = api_load.lags_of([(n * 0.02, n + 3, n) for n in range(100)])  # always 3 seqs, 60 ms, behind
    figures = api_load.percentiles(lags)
    assert round(figures["p50_us"]) == 60_000
    assert round(figures["p99_us"]) == 60_000  # the last three: until the last sample, 40, 20, 0 ms
