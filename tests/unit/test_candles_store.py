"""Candles in the read models on SQLite: exact OHLCV per interval across minute, hour, day and month
boundaries, merging of parts in any batch split, exactly once across crashes, retries, lost
acknowledgements and restarts, the quote-venue path (aggregator parts -> CandleWriter), and the
oldest-first query the API serves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.fixtures.journals import SPEC as SYNTHETIC_SPEC
from tests.fixtures.journals import EngineMarket
from tradehall.domain.commands import AdvanceTime
from tradehall.domain.enums import MarketKind, Side, Venue
from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.events import AnyEvent, MarketCreated, TradeExecuted
from tradehall.domain.fixedpoint import decimal_of
from tradehall.domain.market import MarketSpec
from tradehall.journal.records import JournalRecord
from tradehall.marketdata.candles import CandleAggregator
from tradehall.store import Projector, ProjectorConfig, RetryPolicy, Store, queries, upgrade
from tradehall.store.candles import CandleBuilder, CandleUpdate, CandleWriter, merge_candles
from tradehall.store.db import create_store_engine
from tradehall.store.repositories import CandleRow, upsert_candles

D = Decimal
INTERVALS = ("1m", "5m", "15m", "1h", "1d")
FAST = RetryPolicy(initial_delay=0.001, max_delay=0.01)
BTC = MarketSpec(
    symbol="BTC-USD",
    kind=MarketKind.SPOT,
    base="BTC",
    quote="USD",
    tick_size=D("0.01"),
    lot_size=D("0.0001"),
)
PAPER = MarketSpec(
    symbol="ETH-PAPER",
    kind=MarketKind.SPOT,
    base="ETH",
    quote="USD",
    tick_size=D("0.01"),
    lot_size=D("0.001"),
    venue=Venue.QUOTE,
)


def ns(*parts: int, nanos: int = 0) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp()) * 1_000_000_000 + nanos  # type: ignore[misc]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# Across a minute, an hour, a day and a month: 2026-11-30 23:58 .. 2026-12-01 01:00 UTC.
# (time, price in ticks of 0.01, quantity in lots of 0.0001)
TRADES = [
    (ns(2026, 11, 30, 23, 58, 10), 10000, 5000),  # 100.00 x 0.5
    (ns(2026, 11, 30, 23, 58, 50), 10200, 2500),  # 102.00 x 0.25
    (ns(2026, 11, 30, 23, 59, 30), 9950, 10000),  # 99.50 x 1
    (ns(2026, 12, 1, 0, 0, 0), 10100, 20000),  # 101.00 x 2, exactly on every boundary
    (ns(2026, 12, 1, 0, 4, 59, nanos=999_999_999), 9800, 1000),  # 98.00 x 0.1, last ns of the window
    (ns(2026, 12, 1, 0, 5, 0), 10300, 3000),  # 103.00 x 0.3
    (ns(2026, 12, 1, 1, 0, 0), 10400, 10000),  # 104.00 x 1
]
# interval -> [(start, open, high, low, close, volume, trades)]
EXPECTED: dict[str, list[tuple[datetime, str, str, str, str, str, int]]] = {
    "1m": [
        (utc(2026, 11, 30, 23, 58), "100", "102", "100", "102", "0.75", 2),
        (utc(2026, 11, 30, 23, 59), "99.5", "99.5", "99.5", "99.5", "1", 1),
        (utc(2026, 12, 1, 0, 0), "101", "101", "101", "101", "2", 1),
        (utc(2026, 12, 1, 0, 4), "98", "98", "98", "98", "0.1", 1),
        (utc(2026, 12, 1, 0, 5), "103", "103", "103", "103", "0.3", 1),
        (utc(2026, 12, 1, 1, 0), "104", "104", "104", "104", "1", 1),
    ],
    "5m": [
        (utc(2026, 11, 30, 23, 55), "100", "102", "99.5", "99.5", "1.75", 3),
        (utc(2026, 12, 1, 0, 0), "101", "101", "98", "98", "2.1", 2),
        (utc(2026, 12, 1, 0, 5), "103", "103", "103", "103", "0.3", 1),
        (utc(2026, 12, 1, 1, 0), "104", "104", "104", "104", "1", 1),
    ],
    "15m": [
        (utc(2026, 11, 30, 23, 45), "100", "102", "99.5", "99.5", "1.75", 3),
        (utc(2026, 12, 1, 0, 0), "101", "103", "98", "103", "2.4", 3),
        (utc(2026, 12, 1, 1, 0), "104", "104", "104", "104", "1", 1),
    ],
    "1h": [
        (utc(2026, 11, 30, 23), "100", "102", "99.5", "99.5", "1.75", 3),
        (utc(2026, 12, 1, 0), "101", "103", "98", "103", "2.4", 3),
        (utc(2026, 12, 1, 1), "104", "104", "104", "104", "1", 1),
    ],
    "1d": [
        (utc(2026, 11, 30), "100", "102", "99.5", "99.5", "1.75", 3),
        (utc(2026, 12, 1), "101", "104", "98", "104", "3.4", 4),
    ],
}


def expected(interval: str) -> list[tuple[datetime, Decimal, Decimal, Decimal, Decimal, Decimal, int]]:
    return [(t, D(o), D(h), D(lo), D(c), D(v), n) for t, o, h, lo, c, v, n in EXPECTED[interval]]


class Journal:
    def __init__(self) -> None:
        self.records: list[JournalRecord] = []

    def add(self, ts: int, *events: AnyEvent) -> None:
        seq = len(self.records) + 1
        self.records.append(JournalRecord(seq=seq, ts=ts, command=AdvanceTime(ts=ts), events=tuple(events)))


def trade(trade_id: int, market: str, ts: int, price: int, quantity: int) -> TradeExecuted:
    return TradeExecuted(
        trade_id=trade_id,
        market=market,
        price=price,
        quantity=quantity,
        taker_side=Side.BUY,
        maker_order_id=2 * trade_id,
        taker_order_id=2 * trade_id + 1,
        maker_account_id="maker",
        taker_account_id="taker",
        ts=ts,
    )


def journal_of_trades() -> list[JournalRecord]:
    journal = Journal()
    first = TRADES[0][0] - 1_000_000_000
    journal.add(first, MarketCreated(spec=BTC, ts=first), MarketCreated(spec=PAPER, ts=first))
    for number, (ts, price, quantity) in enumerate(TRADES, start=1):
        # a quote-venue trade beside each: its candles come from its feed, never from the projector
        journal.add(
            ts, trade(number, BTC.symbol, ts, price, quantity), trade(100 + number, PAPER.symbol, ts, 1, 1)
        )
    return journal.records


async def feed(records: Iterable[JournalRecord]) -> AsyncIterator[JournalRecord]:
    for record in records:
        yield record


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = create_store_engine(url)
    yield engine
    engine.dispose()


def projector(engine: Engine, batch: int, **kwargs: Any) -> Projector:
    return Projector(engine, ProjectorConfig(retry=FAST, max_batch_records=batch), **kwargs)


Row = tuple[datetime, Decimal, Decimal, Decimal, Decimal, Decimal, int]


def stored(engine: Engine, market: str, interval: str) -> list[Row]:
    with Session(engine) as session:
        page = queries.list_candles(session, market, interval, oldest_first=True, limit=1000)
    return [(c.start, c.open, c.high, c.low, c.close, c.volume, c.trades) for c in page.items]


def all_stored(engine: Engine, market: str) -> dict[str, list[Row]]:
    return {interval: stored(engine, market, interval) for interval in INTERVALS}


def reference(records: Iterable[JournalRecord], spec: MarketSpec) -> dict[str, list[Row]]:
    """Candles straight from the definition: group the trades by window, in journal order."""
    trades = [
        ev for r in records for ev in r.events if isinstance(ev, TradeExecuted) and ev.market == spec.symbol
    ]
    widths = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
    result: dict[str, list[Row]] = {}
    for interval, seconds in widths.items():
        width = seconds * 1_000_000_000
        windows: dict[int, list[TradeExecuted]] = {}
        for ev in trades:
            windows.setdefault(ev.ts - ev.ts % width, []).append(ev)
        rows = []
        for start in sorted(windows):
            group = sorted(windows[start], key=lambda ev: ev.ts)  # stable: journal order on equal times
            prices = [decimal_of(ev.price, spec.tick_size) for ev in group]
            volume = sum((decimal_of(ev.quantity, spec.lot_size) for ev in group), D(0))
            rows.append(
                (
                    datetime.fromtimestamp(start // 1_000_000_000, UTC),
                    prices[0],
                    max(prices),
                    min(prices),
                    prices[-1],
                    volume,
                    len(group),
                )
            )
        result[interval] = rows
    return result


# ---- the builder ---------------------------------------------------------------------------------


def test_builder_gives_exact_ohlcv_for_every_interval_across_boundaries() -> None:
    builder = CandleBuilder()
    for ts, price, quantity in TRADES:
        builder.add_trade("BTC-USD", decimal_of(price, BTC.tick_size), decimal_of(quantity, BTC.lot_size), ts)
    updates = builder.drain()
    assert len(builder) == 0 and builder.drain() == []
    for interval in INTERVALS:
        rows = [
            (u.start, u.open, u.high, u.low, u.close, u.volume, u.trades)
            for u in updates
            if u.interval == interval
        ]
        assert rows == expected(interval), interval
    first_minute = next(u for u in updates if u.interval == "1m")
    assert (first_minute.open_ts, first_minute.close_ts) == (TRADES[0][0], TRADES[1][0])


def test_builder_refuses_unknown_intervals() -> None:
    with pytest.raises(ValueError, match="unknown candle intervals"):
        CandleBuilder(("1m", "2m"))


def test_parts_merge_to_the_whole_in_any_order_but_sums_count_each_part_once() -> None:
    start = utc(2026, 11, 30, 23, 58)

    def part(o: str, h: str, lo: str, c: str, v: str, n: int, t_open: int, t_close: int) -> CandleUpdate:
        return CandleUpdate("X", "1m", start, D(o), D(h), D(lo), D(c), D(v), n, t_open, t_close)

    early = part("100", "102", "100", "102", "0.75", 2, 10, 50)
    late = part("99.5", "99.5", "98", "98", "1", 1, 55, 59)
    whole = part("100", "102", "98", "98", "1.75", 3, 10, 59)
    assert early.merged(late) == whole
    assert late.merged(early) == whole  # the times decide open and close, not the order
    # equal times: the first merged keeps the open, the later merged gives the close
    same = part("1", "1", "1", "1", "1", 1, 10, 50).merged(part("2", "2", "2", "2", "1", 1, 10, 50))
    assert (same.open, same.close) == (D("1"), D("2"))
    # a candle written whole (no times) keeps its open and yields its close to a later part
    backfill = CandleUpdate("X", "1m", start, D("5"), D("6"), D("4"), D("5.5"), D("3"), 0, None, None)
    merged = backfill.merged(late)
    assert (merged.open, merged.high, merged.low, merged.close, merged.volume) == (
        D("5"),
        D("99.5"),
        D("4"),
        D("98"),
        D("4"),
    )


# ---- the projector ---------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3, 1000])
async def test_projector_stores_exact_candles_of_book_trades_whatever_the_batches(
    engine: Engine, batch: int
) -> None:
    p = projector(engine, batch)
    await p.run(feed(journal_of_trades()))
    p.close()
    for interval in INTERVALS:
        assert stored(engine, "BTC-USD", interval) == expected(interval), interval
    assert all_stored(engine, "ETH-PAPER") == {interval: [] for interval in INTERVALS}


async def test_projector_without_candle_intervals_stores_none(engine: Engine) -> None:
    p = Projector(engine, ProjectorConfig(retry=FAST, candle_intervals=()))
    await p.apply(journal_of_trades())
    p.close()
    assert all_stored(engine, "BTC-USD") == {interval: [] for interval in INTERVALS}


async def test_a_retried_batch_after_a_rollback_counts_its_trades_once(engine: Engine) -> None:
    failures = iter([False, True, True, False])  # the second batch fails twice before its commit

    def flaky(point: str) -> None:
        if point == "before_commit" and next(failures, False):
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    p = projector(engine, 2, fault=flaky)
    await p.run(feed(journal_of_trades()))
    p.close()
    assert p.retries == 2
    for interval in INTERVALS:
        assert stored(engine, "BTC-USD", interval) == expected(interval), interval


async def test_a_lost_commit_acknowledgement_does_not_merge_the_batch_twice(engine: Engine) -> None:
    lost = iter([False, True, False, True])

    def lose_the_ack(point: str) -> None:
        if point == "after_commit" and next(lost, False):
            raise OperationalError("COMMIT", {}, Exception("connection reset while reading the reply"))

    p = projector(engine, 2, fault=lose_the_ack)
    await p.run(feed(journal_of_trades()))
    p.close()
    assert p.retries == 2
    for interval in INTERVALS:
        assert stored(engine, "BTC-USD", interval) == expected(interval), interval


async def test_a_crash_then_a_restart_replaying_the_whole_journal_counts_each_trade_once(
    engine: Engine,
) -> None:
    records = journal_of_trades()
    batches = 0

    def crash_on_third_batch(point: str) -> None:
        nonlocal batches
        if point == "before_commit":
            batches += 1
            if batches == 3:
                raise RuntimeError("killed")

    first = projector(engine, 2, fault=crash_on_third_batch)
    with pytest.raises(RuntimeError, match="killed"):
        await first.run(feed(records))
    first.close()
    assert stored(engine, "BTC-USD", "1d") == [
        (utc(2026, 11, 30), D(100), D(102), D("99.5"), D("99.5"), D("1.75"), 3)
    ]
    second = projector(engine, 2)
    await second.run(feed(records))  # from seq 1 again: what is stored is skipped
    await second.run(feed(records))  # and once more, all of it
    second.close()
    for interval in INTERVALS:
        assert stored(engine, "BTC-USD", interval) == expected(interval), interval


async def test_projected_candles_of_a_synthetic_market_match_the_definition(engine: Engine) -> None:
    # one record per 7 s: about 58 minutes, so every interval has several windows
    market = EngineMarket(accounts=4, seed=5, start_ns=ns(2026, 11, 30, 23, 30), step_ns=7_000_000_000)
    records = market.setup() + market.steps(500)
    p = projector(engine, 37)
    await p.run(feed(records))
    p.close()
    want = reference(records, SYNTHETIC_SPEC)
    assert sum(row[6] for row in want["1d"]) == sum(
        1 for r in records for ev in r.events if isinstance(ev, TradeExecuted)
    )
    assert len(want["1m"]) > 20 and len(want["1d"]) == 2
    assert all_stored(engine, SYNTHETIC_SPEC.symbol) == want


# ---- the query ---------------------------------------------------------------------------------------


async def test_oldest_first_pages_forward_from_start_and_gives_the_latest_without_start(
    engine: Engine,
) -> None:
    p = projector(engine, 1000)
    await p.apply(journal_of_trades())
    p.close()
    minutes = [row[0] for row in expected("1m")]
    with Session(engine) as session:
        first = queries.list_candles(session, "BTC-USD", "1m", start=minutes[1], limit=2, oldest_first=True)
        assert [c.start for c in first.items] == minutes[1:3]
        assert first.next_cursor is not None
        rest = queries.list_candles(
            session, "BTC-USD", "1m", start=minutes[1], limit=10, cursor=first.next_cursor, oldest_first=True
        )
        assert [c.start for c in rest.items] == minutes[3:] and rest.next_cursor is None
        latest = queries.list_candles(session, "BTC-USD", "1m", limit=2, oldest_first=True)
        assert [c.start for c in latest.items] == minutes[-2:] and latest.next_cursor is None
        before = queries.list_candles(session, "BTC-USD", "1m", end=minutes[3], limit=2, oldest_first=True)
        assert [c.start for c in before.items] == minutes[1:3]
        window = queries.list_candles(
            session, "BTC-USD", "1h", start=utc(2026, 12, 1), end=utc(2026, 12, 1, 1), oldest_first=True
        )
        assert [(c.start, c.close, c.volume) for c in window.items] == [(utc(2026, 12, 1), D(103), D("2.4"))]
        newest_first = queries.list_candles(session, "BTC-USD", "1m", limit=2)
        with pytest.raises(TradehallError) as caught:
            queries.list_candles(session, "BTC-USD", "1m", cursor=newest_first.next_cursor, oldest_first=True)
        assert caught.value.code is Code.INVALID_REQUEST
        with pytest.raises(TradehallError) as caught:
            queries.list_candles(session, "BTC-USD", "1m", cursor=first.next_cursor)
        assert caught.value.code is Code.INVALID_REQUEST
        with pytest.raises(TradehallError) as caught:
            queries.list_candles(session, "BTC-USD", "3m", oldest_first=True)
        assert caught.value.code is Code.INVALID_REQUEST


# ---- quote venues: aggregator parts -> CandleWriter -------------------------------------------------


@pytest.fixture
def store(engine: Engine) -> Iterator[Store]:
    store = Store(engine)
    yield store
    store.close()


def feed_trades(aggregator: CandleAggregator, market: str, trades: Iterable[tuple[int, int, int]]) -> None:
    for ts, price, quantity in trades:
        aggregator.on_trade(market, decimal_of(price, BTC.tick_size), decimal_of(quantity, BTC.lot_size), ts)


async def test_quote_venue_candles_from_the_aggregator_parts_are_exact(engine: Engine, store: Store) -> None:
    aggregator = CandleAggregator()
    writer = CandleWriter(store, aggregator, accept=lambda market: market != "BOOK-MARKET")
    assert aggregator.part_sink == writer.on_part
    feed_trades(aggregator, "ETH-PAPER", TRADES[:2])
    feed_trades(aggregator, "BOOK-MARKET", TRADES[:2])
    assert await writer.flush() == 5  # the open windows' parts, one per interval
    assert stored(engine, "ETH-PAPER", "1m") == [
        (utc(2026, 11, 30, 23, 58), D(100), D(102), D(100), D(102), D("0.75"), 2)
    ]
    feed_trades(aggregator, "ETH-PAPER", TRADES[2:5])
    await writer.flush()
    feed_trades(aggregator, "ETH-PAPER", TRADES[5:])
    await writer.stop()
    assert all_stored(engine, "ETH-PAPER") == {interval: expected(interval) for interval in INTERVALS}
    assert all_stored(engine, "BOOK-MARKET") == {interval: [] for interval in INTERVALS}
    assert writer.pending == 0 and writer.failures == 0


async def test_a_restart_in_the_middle_of_a_window_adds_up(engine: Engine, store: Store) -> None:
    before = CandleAggregator(intervals=("1d",))
    first = CandleWriter(store, before)
    feed_trades(before, "ETH-PAPER", TRADES[:4])
    await first.stop()  # the process ends mid-day; a new one starts with an empty aggregator
    after = CandleAggregator(intervals=("1d",))
    second = CandleWriter(store, after)
    feed_trades(after, "ETH-PAPER", TRADES[4:])
    await second.stop()
    assert stored(engine, "ETH-PAPER", "1d") == expected("1d")


async def test_mids_move_ohlc_without_volume(engine: Engine, store: Store) -> None:
    aggregator = CandleAggregator(intervals=("1h",))
    writer = CandleWriter(store, aggregator)
    base = ns(2026, 11, 25, 10)
    for offset, mid in ((1, "0.42"), (2, "0.47"), (3, "0.40"), (4, "0.44")):
        aggregator.on_price("FED-YES", D(mid), base + offset)
    await writer.stop()
    assert stored(engine, "FED-YES", "1h") == [
        (utc(2026, 11, 25, 10), D("0.42"), D("0.47"), D("0.40"), D("0.44"), D(0), 0)
    ]


async def test_a_failed_write_keeps_its_parts_and_merges_them_before_newer_ones(
    engine: Engine, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    aggregator = CandleAggregator(intervals=("1m",))
    writer = CandleWriter(store, aggregator)
    feed_trades(aggregator, "ETH-PAPER", TRADES[:1])
    real_call = store.call

    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "call", unavailable)
    with pytest.raises(OperationalError):
        await writer.flush()
    assert writer.pending == 1 and writer.failures == 1
    feed_trades(aggregator, "ETH-PAPER", TRADES[1:2])
    monkeypatch.setattr(store, "call", real_call)
    await writer.stop()
    assert stored(engine, "ETH-PAPER", "1m") == [expected("1m")[0]]


async def test_run_flushes_periodically_and_stop_ends_it(engine: Engine, store: Store) -> None:
    aggregator = CandleAggregator(intervals=("1m",))
    writer = CandleWriter(store, aggregator, interval=0.02)
    task = asyncio.create_task(writer.run())
    feed_trades(aggregator, "ETH-PAPER", TRADES[:2])
    for _ in range(200):
        if writer.written:
            break
        await asyncio.sleep(0.01)
    assert stored(engine, "ETH-PAPER", "1m") == [expected("1m")[0]]
    await writer.stop()
    await asyncio.wait_for(task, 1.0)
    assert task.done()


async def test_merging_into_a_candle_written_whole_keeps_its_open(engine: Engine, store: Store) -> None:
    start = utc(2026, 11, 30, 23, 58)
    history = CandleRow("ETH-PAPER", "1m", start, D(90), D(95), D(89), D(91), D(5), 7)
    await store.call(upsert_candles, [history])
    part = CandleUpdate(
        "ETH-PAPER", "1m", start, D(92), D(96), D(92), D(93), D(1), 1, TRADES[0][0], TRADES[0][0]
    )
    assert await store.call(merge_candles, [part]) == 1
    assert stored(engine, "ETH-PAPER", "1m") == [(start, D(90), D(96), D(89), D(93), D(6), 8)]
