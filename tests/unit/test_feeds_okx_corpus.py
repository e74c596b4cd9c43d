"""OKX v5 public channels on real payloads (tests/data/feeds/okx, sources in its README): each
sample goes through `OkxFeed.handle_message` (or the REST parser) and the exact quote, trade or
book it produces is asserted, values read off the payload by hand."""

from __future__ import annotations

import zlib
from decimal import Decimal
from pathlib import Path

import httpx
import orjson

from tradehall.marketdata.book import SequencedBook
from tradehall.marketdata.models import BookSnapshot, FeedEvent, Quote, TradeTick
from tradehall.marketdata.okx import OkxFeed, checksum, parse_rest_books

D = Decimal
RECV = 1_800_000_000_000_000_000
MS = 1_000_000
CORPUS = Path(__file__).resolve().parents[1] / "data" / "feeds" / "okx"


def sample(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def feed_for(
    symbol: str, channels: tuple[str, ...] = ("books", "tickers", "trades"), verify: bool = False
) -> tuple[OkxFeed, list[FeedEvent]]:
    events: list[FeedEvent] = []
    feed = OkxFeed(
        [symbol],
        events.append,
        httpx.AsyncClient(),
        channels=channels,
        verify_checksum=verify,
        clock_ns=lambda: RECV,
    )
    return feed, events


def quote(bid: str, bid_size: str, ask: str, ask_size: str, ts_ms: int, symbol: str = "BTC-USDT") -> Quote:
    return Quote(
        source="okx",
        instrument=symbol,
        bid=D(bid),
        bid_size=D(bid_size),
        ask=D(ask),
        ask_size=D(ask_size),
        exchange_ts=ts_ms * MS,
        receive_ts=RECV,
    )


def test_books_snapshot_loads_the_book_and_quotes_its_top() -> None:
    feed, events = feed_for("BTC-USDT")
    assert feed.handle_message(sample("ws_books_snapshot_nautilus.json")) == []
    snapshot, top = events
    assert isinstance(snapshot, BookSnapshot)
    assert snapshot.sequence == 123456
    assert snapshot.bids[0] == (D("8476.97"), D(256)) and snapshot.bids[-1] == (D(8446), D(95))
    assert snapshot.asks[0] == (D("8476.98"), D(415)) and snapshot.asks[-1] == (D("8506.96"), D(100))
    assert len(snapshot.bids) == 8 and len(snapshot.asks) == 8
    assert top == quote("8476.97", "256", "8476.98", "415", 1597026383085)
    assert feed.messages == 1


def test_books_update_chained_by_prev_seq_id_is_applied() -> None:
    feed, events = feed_for("BTC-USDT")
    feed.handle_message(sample("ws_books_snapshot_nautilus.json"))
    assert feed.handle_message(sample("ws_books_update_nautilus.json")) == []
    assert events[-1] == quote("8476.97", "256", "8476.98", "415", 1597026383085)
    assert feed.books["BTC-USDT"].seq == 123457
    assert feed.resyncs == 0


def test_an_update_whose_prev_seq_id_does_not_join_up_resyncs_the_book() -> None:
    feed, events = feed_for("BTC-USDT")
    feed.handle_message(sample("ws_books_snapshot_nautilus.json"))
    feed.handle_message(sample("ws_books_update_nautilus.json"))
    count = len(events)
    # the same update again: prevSeqId 123456, but the book is at 123457
    assert feed.handle_message(sample("ws_books_update_nautilus.json")) == ["BTC-USDT"]
    assert len(events) == count
    assert feed.resyncs_by_reason == {"sequence_gap": 1}
    assert feed.errors_by_kind == {"sequence_gap": 1}
    assert not feed.books["BTC-USDT"].synced
    # updates before the new snapshot wait for it
    assert feed.handle_message(sample("ws_books_update_nautilus.json")) == []
    assert len(events) == count


def test_books5_is_a_whole_top_five_each_push() -> None:
    feed, events = feed_for("BSV-USD-210924", channels=("books5",))
    feed.handle_message(sample("ws_books5_goex_bsv.json"))
    assert events == [quote("166.14", "33", "166.35", "20", 1621862688397, "BSV-USD-210924")]
    book = feed.books["BSV-USD-210924"]
    assert book.depth(5) == (
        [
            (D("166.14"), D(33)),
            (D("166.07"), D(106)),
            (D("166.05"), D(2)),
            (D("166.04"), D(97)),
            (D("165.98"), D(20)),
        ],
        [
            (D("166.35"), D(20)),
            (D("166.4"), D(135)),
            (D("166.42"), D(86)),
            (D("166.45"), D(310)),
            (D("166.46"), D(61)),
        ],
    )


def test_bbo_tbt_is_the_top_of_book() -> None:
    feed, events = feed_for("BTC-USDT", channels=("bbo-tbt",))
    feed.handle_message(sample("ws_bbo_tbt_nautilus.json"))
    assert events == [quote("8476.97", "256", "8476.98", "415", 1597026383085)]


def test_tickers_make_the_quote_without_a_book_and_feed_last_and_volume_into_book_quotes() -> None:
    feed, events = feed_for("BTC-USDT", channels=("tickers",))
    feed.handle_message(sample("ws_tickers_nautilus.json"))
    assert events == [
        Quote(
            source="okx",
            instrument="BTC-USDT",
            bid=D("8888.88"),
            bid_size=D(5),
            ask=D("9999.99"),
            ask_size=D(11),
            last=D("9999.99"),
            exchange_ts=1597026383085 * MS,
            receive_ts=RECV,
            volume_24h=D(2222),
        )
    ]
    with_book, book_events = feed_for("BTC-USDT")
    with_book.handle_message(sample("ws_books_snapshot_nautilus.json"))
    with_book.handle_message(sample("ws_tickers_nautilus.json"))
    assert len(book_events) == 2  # the ticker's older top of book is not a quote while the book is live
    with_book.handle_message(sample("ws_books_update_nautilus.json"))
    last = book_events[-1]
    assert isinstance(last, Quote)
    assert (last.bid, last.ask, last.last, last.volume_24h) == (
        D("8476.97"),
        D("8476.98"),
        D("9999.99"),
        D(2222),
    )


def test_trades() -> None:
    feed, events = feed_for("BTC-USDT")
    feed.handle_message(sample("ws_trades_nautilus.json"))
    assert events == [
        TradeTick(
            source="okx",
            instrument="BTC-USDT",
            price=D("42219.9"),
            size=D("0.12060306"),
            side="buy",
            trade_id="130639474",
            exchange_ts=1630048897897 * MS,
            receive_ts=RECV,
        )
    ]


def test_control_frames_ack_error_notice_and_pong() -> None:
    feed, events = feed_for("BTC-USDT")
    feed.handle_message(sample("ws_ack_subscribe_docs.json"))
    feed.handle_message(b"pong")
    feed.handle_message(sample("ws_error_60012_docs.json"))
    assert feed.reconnect_notices == 0
    feed.handle_message(sample("ws_notice_64008_docs.json"))
    assert events == []
    assert feed.messages == 0  # control traffic never counts as health
    assert feed.ignored_by_type == {"notice": 1, "pong": 1, "subscribe": 1}
    assert feed.errors_by_kind == {"api_error": 1}
    assert feed.reconnect_notices == 1


def test_rest_books() -> None:
    payload = orjson.loads(sample("rest_books_nautilus.json"))
    assert parse_rest_books(payload, "BTC-USDT", RECV) == quote(
        "41006.7", "0.48792100", "41006.8", "0.60038921", 1704067200000
    )


def test_checksum_follows_okx_recipe() -> None:
    """OKX's documented example: bid [3366.1, 7], ask [3366.8, 9] → CRC32 of "3366.1:7:3366.8:9";
    more bids than asks continue with the bids alone."""
    book = SequencedBook("BTC-USDT")
    book.load([(D("3366.1"), D(7)), (D("3366.0"), D(6))], [(D("3366.8"), D(9))], 1, None)
    expected = zlib.crc32(b"3366.1:7:3366.8:9:3366.0:6")
    assert checksum(book) == (expected - (1 << 32) if expected >= 1 << 31 else expected)


def test_checksum_verification_resyncs_on_a_mismatch() -> None:
    """The docs' sample checksum (-855196043) does not match its own eight levels: with
    verification on, that is a mismatch and the book is resynced."""
    feed, events = feed_for("BTC-USDT", verify=True)
    assert feed.handle_message(sample("ws_books_snapshot_nautilus.json")) == ["BTC-USDT"]
    assert events == []  # a book that fails its checksum is never published
    assert feed.resyncs_by_reason == {"checksum": 1}
    # a check that fails on every fresh snapshot is given up after three, rather than resubscribing forever
    assert feed.handle_message(sample("ws_books_snapshot_nautilus.json")) == ["BTC-USDT"]
    assert feed.handle_message(sample("ws_books_snapshot_nautilus.json")) == ["BTC-USDT"]
    assert feed.handle_message(sample("ws_books_snapshot_nautilus.json")) == []
    assert feed.resyncs_by_reason == {"checksum": 3}
    assert isinstance(events[-1], Quote) and events[-1].bid == D("8476.97")
    unchecked, _ = feed_for("BTC-USDT")
    assert unchecked.handle_message(sample("ws_books_snapshot_nautilus.json")) == []
