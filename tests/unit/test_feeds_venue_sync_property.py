"""Property: whatever the order-book traffic and whichever messages are lost, an OKX or Bybit feed
publishes only quotes equal to the venue's true top of book, publishes nothing between a gap and the
next snapshot, and asks for exactly one resync per break in the chain."""

from __future__ import annotations

from decimal import Decimal

import httpx
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.venues import okx_checksum
from tradehall.marketdata.bybit import BybitFeed
from tradehall.marketdata.models import FeedEvent, Quote
from tradehall.marketdata.okx import OkxFeed

# one step: (side, price in ticks, size, lost?) or a fresh snapshot
Step = tuple[str, int, int, bool]
steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(("bid", "ask")), st.integers(0, 9), st.integers(0, 3), st.booleans()),
        st.just(("snapshot", 0, 0, False)),
    ),
    max_size=60,
)


def price(side: str, ticks: int) -> str:
    return f"{100 - ticks}.5" if side == "bid" else f"{101 + ticks}.5"


def top(book: dict[str, dict[str, int]]) -> tuple[Decimal | None, Decimal | None]:
    bids = [Decimal(p) for p, s in book["bid"].items() if s > 0]
    asks = [Decimal(p) for p, s in book["ask"].items() if s > 0]
    return (max(bids) if bids else None, min(asks) if asks else None)


def levels(side: dict[str, int]) -> list[list[str]]:
    return [[p, str(s)] for p, s in side.items() if s > 0]


def crc(book: dict[str, dict[str, int]]) -> int:
    bids = sorted(((p, str(s)) for p, s in book["bid"].items() if s > 0), key=lambda level: -float(level[0]))
    asks = sorted(((p, str(s)) for p, s in book["ask"].items() if s > 0), key=lambda level: float(level[0]))
    return okx_checksum(bids, asks)


def run(feed: OkxFeed | BybitFeed, events: list[FeedEvent], plan: list[Step], okx: bool) -> None:
    truth: dict[str, dict[str, int]] = {"bid": {"99.5": 1}, "ask": {"102.5": 1}}
    seq = 10

    def snapshot() -> bytes:
        if okx:
            data = {
                "bids": [[p, s, "0", "1"] for p, s in levels(truth["bid"])],
                "asks": [[p, s, "0", "1"] for p, s in levels(truth["ask"])],
                "ts": "1",
                "prevSeqId": -1,
                "seqId": seq,
            }
            return orjson.dumps(
                {"arg": {"channel": "books", "instId": "X"}, "action": "snapshot", "data": [data]}
            )
        data = {"s": "X", "b": levels(truth["bid"]), "a": levels(truth["ask"]), "u": seq, "seq": seq}
        return orjson.dumps({"topic": "orderbook.50.X", "type": "snapshot", "ts": 1, "data": data})

    feed.handle_message(snapshot())
    broken = False
    expected_resyncs = 0
    for side, ticks, size, lost in plan:
        if side == "snapshot":
            seq += 5
            assert feed.handle_message(snapshot()) == []
            broken = False
        else:
            level = price(side, ticks)
            truth[side][level] = size
            prev, seq = seq, seq + 1
            if lost:
                continue
            if okx:
                item = {
                    "bids": [],
                    "asks": [],
                    "ts": "2",
                    "prevSeqId": prev,
                    "seqId": seq,
                    "checksum": crc(truth),
                }
                item["bids" if side == "bid" else "asks"] = [[level, str(size), "0", "1"]]
                raw = orjson.dumps(
                    {"arg": {"channel": "books", "instId": "X"}, "action": "update", "data": [item]}
                )
            else:
                data = {"s": "X", "b": [], "a": [], "u": seq, "seq": seq}
                data["b" if side == "bid" else "a"] = [[level, str(size)]]
                raw = orjson.dumps({"topic": "orderbook.50.X", "type": "delta", "ts": 2, "data": data})
            count = len(events)
            asked = feed.handle_message(raw)
            if broken:
                assert asked == [] and len(events) == count  # waiting for the snapshot
                continue
            # the chain breaks when some earlier update since the last snapshot was lost
            if asked:
                expected_resyncs += 1
                broken = True
                assert asked == ["X"] and len(events) == count
                continue
        quote = events[-1]
        assert isinstance(quote, Quote)
        assert (quote.bid, quote.ask) == top(truth)
    assert feed.resyncs == expected_resyncs


@settings(max_examples=150, deadline=None)
@given(steps)
def test_okx_books_publish_only_true_tops_and_resync_once_per_break(plan: list[Step]) -> None:
    events: list[FeedEvent] = []
    feed = OkxFeed(["X"], events.append, httpx.AsyncClient(), channels=("books",), verify_checksum=True)
    run(feed, events, plan, okx=True)
    assert feed.errors_by_kind.get("parse", 0) == 0  # every checksum of a joined-up book matched


@settings(max_examples=150, deadline=None)
@given(steps)
def test_bybit_orderbook_publishes_only_true_tops_and_resyncs_once_per_break(plan: list[Step]) -> None:
    events: list[FeedEvent] = []
    feed = BybitFeed(["X"], events.append, httpx.AsyncClient())
    run(feed, events, plan, okx=False)
