"""The ticker's 24 h volume: past trades loaded from the read models and live ones, each counted once,
in a window that ends at the sequencer's clock (an injected clock here: no sleeps)."""

from __future__ import annotations

from tradehall.api.gateway import DAY_NS, VolumeTracker
from tradehall.domain.commands import Deposit
from tradehall.domain.enums import Side
from tradehall.domain.events import TradeExecuted
from tradehall.journal.records import JournalRecord

NOW = 1_800_000_000_000_000_000
HOUR = 3_600_000_000_000


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_ns(self) -> int:
        return self.now


def record(seq: int, *trades: tuple[int, str, int, int]) -> JournalRecord:
    """A record with trades (trade id, market, ts, lots)."""
    events = tuple(
        TradeExecuted(
            trade_id=trade_id,
            market=market,
            price=100,
            quantity=lots,
            taker_side=Side.BUY,
            maker_order_id=1,
            taker_order_id=2,
            maker_account_id="m",
            taker_account_id="t",
            ts=ts,
        )
        for trade_id, market, ts, lots in trades
    )
    return JournalRecord(seq=seq, ts=NOW, command=Deposit(account_id="x", amount="1"), events=events)  # type: ignore[arg-type]


def test_loaded_and_live_trades_count_once_within_the_window() -> None:
    clock = Clock(NOW)
    volumes = VolumeTracker(clock.now_ns)
    # the listener sees trades 7 and 8 before the read models are read ...
    volumes.on_records([record(20, (7, "A", NOW - 1 * HOUR, 5), (8, "B", NOW - 1 * HOUR, 1))])
    # ... which hold 3..7 of A (7 projected meanwhile): 7 is not counted twice
    volumes.load(
        "A",
        [(3, NOW - 30 * HOUR, 1000), (4, NOW - 23 * HOUR, 10), (6, NOW - 2 * HOUR, 20), (7, NOW - HOUR, 5)],
    )
    volumes.load("B", [(5, NOW - 3 * HOUR, 2), (8, NOW - HOUR, 1)])
    assert (volumes.volume("A"), volumes.volume("B")) == (10 + 20 + 5, 2 + 1)  # 3 is older than 24 h
    volumes.on_records([record(21, (9, "A", NOW, 4))])
    assert volumes.volume("A") == 39
    clock.now = NOW - 23 * HOUR + DAY_NS + 1  # trade 4 leaves the window
    assert volumes.volume("A") == 29
    clock.now = NOW + DAY_NS  # only trade 9, at NOW, is within [now - 24 h, now]
    assert (volumes.volume("A"), volumes.volume("B"), volumes.volume("C")) == (4, 0, 0)


def test_without_live_trades_everything_loaded_counts() -> None:
    volumes = VolumeTracker(Clock(NOW).now_ns)
    volumes.load("A", [(1, NOW - HOUR, 3), (2, NOW, 4)])
    assert volumes.volume("A") == 7


def test_live_trades_are_told_apart_per_market_as_shards_number_their_own() -> None:
    """A cluster gateway: shard A's trade ids are small, B's start at 2**40. A live trade on A first must
    not hide B's earlier trades from the load (nor count B's live one twice)."""
    volumes = VolumeTracker(Clock(NOW).now_ns)
    b_base = 1 << 40
    volumes.on_records([record(1, (3, "BTC-USD", NOW - HOUR, 5))])
    volumes.on_records([record(1, (b_base + 9, "ETH-USD", NOW - HOUR, 7))])
    volumes.load("ETH-USD", [(b_base + 8, NOW - 2 * HOUR, 11), (b_base + 9, NOW - HOUR, 7)])
    volumes.load("BTC-USD", [(2, NOW - 2 * HOUR, 1), (3, NOW - HOUR, 5)])
    assert (volumes.volume("ETH-USD"), volumes.volume("BTC-USD")) == (18, 6)
