"""Breaker, endpoint rotation, Binance depth sync, quote cache, candles, recorder/replay, simulated feed."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tradehall.marketdata.binance import DepthBook, DepthSnapshot, DepthUpdate, SyncResult
from tradehall.marketdata.breaker import Backoff, CircuitBreaker
from tradehall.marketdata.cache import InProcessQuoteCache
from tradehall.marketdata.candles import Candle, CandleAggregator
from tradehall.marketdata.endpoints import EndpointPool
from tradehall.marketdata.models import (
    BookDelta,
    BookSide,
    BookSnapshot,
    CircuitState,
    MarketState,
    MarketStatusUpdate,
    Quote,
    TradeTick,
)
from tradehall.marketdata.recorder import Recorder, event_from_dict, event_to_dict
from tradehall.marketdata.replay import ReplayFeed, recorded_files
from tradehall.marketdata.simulated import SimulatedFeed, SimulatedInstrument

D = Decimal
MIN = 60 * 1_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- breaker --------------------------------------------------------------------------------------


def test_breaker_opens_after_threshold_then_half_open_probe_closes_it() -> None:
    clock = FakeClock()
    changes: list[CircuitState] = []
    breaker = CircuitBreaker(
        "x",
        failure_threshold=3,
        reset_timeout=5.0,
        clock=clock,
        on_change=lambda _, state: changes.append(state),
    )
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # only one probe at a time
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert changes == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_failed_probe_reopens_with_doubled_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("x", failure_threshold=1, reset_timeout=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert breaker.seconds_until_retry() == 10.0


def test_retry_after_opens_at_once_for_that_long_even_below_the_reset_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("x", failure_threshold=5, reset_timeout=1.0, clock=clock)
    breaker.record_failure(retry_after=30.0)
    assert breaker.state is CircuitState.OPEN
    clock.now += 29.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
    breaker.record_failure(retry_after=0.5)  # shorter than reset_timeout: the provider's word wins
    assert breaker.seconds_until_retry() == 0.5
    breaker.record_failure(open_now=True)  # a rate limit without Retry-After: the third opening, 1 s x 2^2
    assert breaker.seconds_until_retry() == 4.0


def test_backoff_is_jittered_and_capped() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    assert all(0 <= delay <= 8.0 for delay in delays)
    assert delays[0] <= 1.0 and delays[1] <= 2.0 and delays[2] <= 4.0
    assert len(set(delays)) == 10
    assert backoff.next_delay(at_least=9.0) == 9.0
    backoff.reset()
    assert backoff.attempt == 0


def test_endpoint_pool_rotates_on_failure_and_returns_to_primary() -> None:
    clock = FakeClock()
    pool = EndpointPool(["http://a/", "http://b"], primary_retry_seconds=60, clock=clock)
    assert pool.current() == "http://a"
    pool.failed("http://a")
    assert pool.current() == "http://b"
    pool.failed("http://a")  # stale report about a root we already left changes nothing
    assert pool.current() == "http://b"
    clock.now += 60
    assert pool.current() == "http://a"
    pool.failed("http://a")
    pool.failed("http://b")
    assert pool.current() == "http://a"  # never stuck: a broken backup sends us back round


# --- Binance depth sync -----------------------------------------------------------------------------


def upd(
    first: int, final: int, bids: list[tuple[str, str]] = (), asks: list[tuple[str, str]] = ()
) -> DepthUpdate:  # type: ignore[assignment]
    return DepthUpdate(
        "btcusdt",
        first,
        final,
        tuple((D(p), D(q)) for p, q in bids),
        tuple((D(p), D(q)) for p, q in asks),
        None,
    )


def snap(last: int) -> DepthSnapshot:
    return DepthSnapshot(
        last, ((D("100"), D("1")), (D("99"), D("2"))), ((D("101"), D("1")), (D("102"), D("3")))
    )


def test_depth_buffers_until_snapshot_and_drops_old_diffs() -> None:
    book = DepthBook("btcusdt")
    assert book.on_diff(upd(95, 99, bids=[("100", "5")])) is SyncResult.NEED_SNAPSHOT
    assert book.on_diff(upd(100, 102, asks=[("101", "0")])) is SyncResult.BUFFERED
    assert book.on_diff(upd(103, 104, bids=[("100.5", "2")])) is SyncResult.BUFFERED
    assert book.on_snapshot(snap(100)) is SyncResult.SYNCED
    # 95..99 dropped (u <= 100); 100..102 removes ask 101; 103..104 adds bid 100.5
    assert book.last_update_id == 104
    assert book.bids.best() == (D("100.5"), D("2"))
    assert book.asks.best() == (D("102"), D("3"))
    assert book.bids.levels[D("100")] == D("1")  # the dropped diff's size 5 never applied


def test_depth_snapshot_older_than_first_buffered_diff_is_refetched() -> None:
    book = DepthBook("btcusdt")
    book.on_diff(upd(200, 205))
    assert book.on_snapshot(snap(150)) is SyncResult.REFETCH
    assert not book.synced
    assert book.on_snapshot(snap(201)) is SyncResult.SYNCED
    assert book.last_update_id == 205


def test_depth_gap_after_sync_forces_rebuild() -> None:
    book = DepthBook("btcusdt")
    book.on_diff(upd(1, 1))
    book.on_snapshot(snap(10))
    assert book.on_diff(upd(11, 12, bids=[("99", "0")])) is SyncResult.APPLIED
    assert book.on_diff(upd(12, 12)) is SyncResult.IGNORED
    assert book.on_diff(upd(14, 15)) is SyncResult.GAP
    assert not book.synced and book.bids.best() is None
    assert [u.first_id for u in book.buffer] == [14]
    assert book.on_snapshot(snap(14)) is SyncResult.SYNCED
    assert book.last_update_id == 15


def test_depth_quantity_zero_removes_level_and_top_follows() -> None:
    book = DepthBook("btcusdt")
    book.on_diff(upd(1, 1))
    book.on_snapshot(snap(5))
    book.on_diff(upd(6, 6, bids=[("100", "0")], asks=[("100.5", "4")]))
    quote = book.top(receive_ts=1)
    assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size) == (D("99"), D("2"), D("100.5"), D("4"))


# --- quote cache ------------------------------------------------------------------------------------


def test_in_process_cache_reports_age_and_staleness() -> None:
    clock = FakeClock()
    cache = InProcessQuoteCache(max_age_seconds=10, clock=clock)
    assert cache.get("BTC-PERP") is None
    assert cache.is_stale("BTC-PERP")
    quote = Quote("binance", "btcusdt", bid=D(1), ask=D(2))
    cache.put("BTC-PERP", quote)
    clock.now += 4
    cached = cache.get("BTC-PERP")
    assert cached is not None
    assert (cached.quote, cached.age_seconds, cached.stale) == (quote, 4.0, False)
    clock.now += 6.5
    assert cache.is_stale("BTC-PERP")


# --- candles ----------------------------------------------------------------------------------------


def test_candles_from_trades_close_when_the_next_window_starts() -> None:
    closed: list[Candle] = []
    candles = CandleAggregator(closed.append, intervals=("1m", "5m"))
    base = 1_700_000_040 * 1_000_000_000 - 1_700_000_040 * 1_000_000_000 % (5 * MIN)
    candles.on_trade("X", D("10"), D("1"), base + 1)
    candles.on_trade("X", D("12"), D("2"), base + 20 * 1_000_000_000)
    candles.on_trade("X", D("9"), D("1"), base + 59 * 1_000_000_000)
    candles.on_trade("X", D("11"), D("3"), base + MIN)
    assert closed == [Candle("X", "1m", base, D("10"), D("12"), D("9"), D("9"), D("4"), 3, True)]
    five = candles.current("X", "5m")
    assert five == Candle("X", "5m", base, D("10"), D("12"), D("9"), D("11"), D("7"), 4, False)
    candles.on_trade("X", D("8"), D("1"), base - 1)  # late: older than the open windows
    assert candles.late == 2
    flushed = candles.close_until(base + 5 * MIN)
    assert [(c.interval, c.close, c.closed) for c in flushed] == [
        ("1m", D("11"), True),
        ("5m", D("11"), True),
    ]


def test_candles_from_mids_have_no_volume() -> None:
    candles = CandleAggregator(intervals=("1h",))
    candles.on_price("Y", D("0.42"), 3600 * 1_000_000_000 * 10 + 5)
    candles.on_price("Y", D("0.44"), 3600 * 1_000_000_000 * 10 + 6)
    current = candles.current("Y", "1h")
    assert current is not None
    assert (current.open, current.high, current.close, current.volume, current.trades) == (
        D("0.42"),
        D("0.44"),
        D("0.44"),
        D(0),
        0,
    )


def test_unknown_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="2m"):
        CandleAggregator(intervals=("1m", "2m"))


# --- recorder and replay ----------------------------------------------------------------------------

DAY1 = 1_711_324_800 * 1_000_000_000  # 2024-03-25T00:00:00Z


def test_every_event_kind_round_trips_through_the_record_format() -> None:
    events = [
        Quote("binance", "btcusdt", D("1.5"), D("1.6"), D("2"), D("3"), D("1.55"), 5, 6),
        TradeTick("binance", "btcusdt", D("0.00000005"), D("100"), "buy", "9", 5, 6),
        BookSnapshot("kalshi", "T", ((D("0.42"), D("13")),), (), 7, None, 8),
        BookDelta("polymarket", "111", BookSide.ASK, D(".52"), D("0"), None, 1, 2),
        MarketStatusUpdate("kalshi", "T", MarketState.SETTLED_YES, "result=yes", None, 9),
    ]
    for event in events:
        assert event_from_dict(event_to_dict(event)) == event
    assert event_to_dict(events[1])["price"] == "0.00000005"


def test_recorder_writes_per_day_per_market_and_replay_merges_in_time_order(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    day2 = DAY1 + 86_400 * 1_000_000_000
    # Each file is in arrival order; the files interleave in time.
    recorder(TradeTick("binance", "btcusdt", D(4), D(1), receive_ts=DAY1 + 5))
    recorder(Quote("coingecko", "bitcoin/usd", last=D(3), receive_ts=DAY1 + 10))
    recorder(Quote("binance", "btcusdt", D(1), D(2), receive_ts=DAY1 + 30))
    recorder(Quote("coingecko", "bitcoin/usd", last=D(3), receive_ts=DAY1 + 20))
    recorder(Quote("binance", "btcusdt", D(4), D(5), receive_ts=day2 + 1))
    recorder.close()
    files = recorded_files(tmp_path)
    assert [str(path.relative_to(tmp_path)) for path in files] == [
        "2024-03-25/binance/btcusdt.jsonl.gz",
        "2024-03-25/coingecko/bitcoin%2Fusd.jsonl.gz",
        "2024-03-26/binance/btcusdt.jsonl.gz",
    ]
    seen: list[object] = []
    feed = ReplayFeed(files, seen.append)
    assert feed.replay_all() == 5
    assert [event.receive_ts for event in seen] == [DAY1 + 5, DAY1 + 10, DAY1 + 20, DAY1 + 30, day2 + 1]  # type: ignore[attr-defined]
    assert recorded_files(tmp_path, days=["2024-03-26"]) == files[2:]
    assert recorded_files(tmp_path, sources=["coingecko"]) == files[1:2]


def test_recorder_appends_across_restarts(tmp_path: Path) -> None:
    for price in (1, 2):
        recorder = Recorder(tmp_path)
        recorder(Quote("binance", "btcusdt", last=D(price), receive_ts=DAY1 + price))
        recorder.close()
    seen: list[Quote] = []
    ReplayFeed(recorded_files(tmp_path), seen.append).replay_all()  # type: ignore[arg-type]
    assert [quote.last for quote in seen] == [D(1), D(2)]


# --- simulated feed ---------------------------------------------------------------------------------


def sim_spec() -> SimulatedInstrument:
    return SimulatedInstrument(
        "SIM", start=D("100.00"), tick=D("0.01"), spread_ticks=4, jump_probability=0.05
    )


def test_simulated_feed_is_deterministic_for_a_seed_and_on_tick() -> None:
    runs = []
    for _ in range(2):
        seen: list[object] = []
        feed = SimulatedFeed([sim_spec()], seen.append, seed=42, with_book=True)
        for step in range(200):
            feed.step(ts=step)
        runs.append(seen)
    assert runs[0] == runs[1]
    quotes = [event for event in runs[0] if isinstance(event, Quote)]
    assert len(quotes) == 200
    for quote in quotes:
        assert quote.bid is not None and quote.ask is not None
        assert quote.ask - quote.bid == D("0.04")
        assert quote.bid == quote.bid.quantize(D("0.01"))
    books = [event for event in runs[0] if isinstance(event, BookSnapshot)]
    assert all(len(book.asks) == 5 and book.bids[0][0] > book.bids[1][0] for book in books)
    other: list[object] = []
    different = SimulatedFeed([sim_spec()], other.append, seed=43)
    different.step(ts=0)
    assert other[-1] != quotes[0]


def test_simulated_binary_stays_inside_zero_and_one() -> None:
    spec = SimulatedInstrument(
        "BIN",
        start=D("0.50"),
        tick=D("0.01"),
        spread_ticks=2,
        step_ticks=8,
        jump_probability=0.2,
        jump_ticks=30,
        floor=D("0"),
        ceiling=D("1"),
    )
    seen: list[Quote] = []
    feed = SimulatedFeed(
        [spec], lambda event: seen.append(event) if isinstance(event, Quote) else None, seed=1
    )
    for step in range(2000):
        feed.step(ts=step)
    assert all(D(0) < q.bid < q.ask < D(1) for q in seen if q.bid is not None and q.ask is not None)  # type: ignore[operator]


def test_level_book_bulk_update_matches_one_by_one() -> None:
    from tradehall.marketdata.book import LevelBook

    rng = random.Random(11)
    for highest in (True, False):
        one, bulk = LevelBook(highest), LevelBook(highest)
        for _ in range(300):
            levels = [
                (D(rng.randint(90, 110)), D(rng.choice((0, 0, 1, 2, 5)))) for _ in range(rng.randint(1, 6))
            ]
            for price, size in levels:
                one.set(price, size)
            bulk.set_levels(levels)
            assert bulk.levels == one.levels
            assert bulk.best() == one.best()
            expected = None
            if one.levels:
                top = max(one.levels) if highest else min(one.levels)
                expected = (top, one.levels[top])
            assert bulk.best() == expected


async def test_replay_feed_runs_as_a_task_fast_or_paced(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    for step in range(3):
        recorder(Quote("binance", "btcusdt", last=D(step), receive_ts=DAY1 + step * 100_000_000))
    recorder.close()
    seen: list[Quote] = []
    fast = ReplayFeed(recorded_files(tmp_path), seen.append)  # type: ignore[arg-type]
    fast.start()
    await fast.done.wait()
    assert [q.last for q in seen] == [D(0), D(1), D(2)]
    assert fast.status().messages == 3
    paced = ReplayFeed(recorded_files(tmp_path), lambda _: None, speed=2.0)
    started = time.monotonic()
    paced.start()
    await paced.done.wait()
    assert 0.1 <= time.monotonic() - started < 1.0  # 0.2 s of recorded time at twice real time


def test_recorder_closes_yesterday_and_flushes_periodically(tmp_path: Path) -> None:
    clock = FakeClock()
    recorder = Recorder(tmp_path, flush_interval=5.0, clock=clock)
    day2 = DAY1 + 86_400 * 1_000_000_000
    recorder(Quote("binance", "btcusdt", last=D(1), receive_ts=DAY1))
    recorder(Quote("kalshi", "K", last=D("0.5"), receive_ts=DAY1))
    recorder(Quote("binance", "btcusdt", last=D(2), receive_ts=day2))
    assert recorder.open_files == 2  # binance's day-1 file was closed when day 2 began
    seen: list[Quote] = []
    ReplayFeed(recorded_files(tmp_path, days=["2024-03-25"], sources=["binance"]), seen.append).replay_all()  # type: ignore[arg-type]
    assert [q.last for q in seen] == [D(1)]  # complete without closing the recorder
    clock.now += 5.0
    recorder(Quote("kalshi", "K", last=D("0.6"), receive_ts=DAY1 + 1))  # triggers the periodic flush
    seen.clear()
    ReplayFeed(recorded_files(tmp_path, sources=["kalshi"]), seen.append).replay_all()  # type: ignore[arg-type]
    assert [q.last for q in seen] == [D("0.5"), D("0.6")]  # readable before close
    recorder.close()
