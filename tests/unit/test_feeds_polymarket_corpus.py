"""Polymarket's market channel on real payloads (tests/data/feeds/polymarket, sources in its README):
each sample goes through the feed's message handler; the quote, trade, book or status it produces
is asserted with values read off the payload by hand. REST `/book` answers come from a mock transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tradehall.marketdata import polymarket
from tradehall.marketdata.models import (
    BookSnapshot,
    FeedEvent,
    MarketState,
    MarketStatusUpdate,
    Quote,
    TradeTick,
)
from tradehall.marketdata.polymarket import PolymarketFeed, PolymarketMarketRef

D = Decimal
RECV = 1_800_000_000_000_000_000
CORPUS = Path(__file__).resolve().parents[1] / "data" / "feeds" / "polymarket"
MS = 1_000_000

T_7132 = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
T_7667 = "76670567130917723816490572615540605537878462672464291990940067659127658071111"
T_5211 = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
T_6581 = "65818619657568813474341868652308942079804919287380422192892211131408793125422"
T_4833 = "48331043336612883890938759509493159234755048973500640148014422747788308965732"
T_3932 = "39327269875426915204597944387916069897800289788920336317845465327697809453999"
T_8535 = "85354956062430465315924116860125388538595433819574542752031640332592237464430"
T_7604 = "76043073756653678226373981964075571318267289248134717369284518995922789326425"
T_3169 = "31690934263385727664202099278545688007799199447969475608906331829650099442770"
T_1141 = "114122071509644379678018727908709560226618148003371446110114509806601493071694"
T_2174 = "21742633143463906290569050155826241533067272736897614950488156847949938836455"
T_1154 = "115474063863764126958837769719736461272619491980773624567012766320777398670353"
T_5477 = "54774190602932495681624596813895280541057113822779394733336244613748178149294"


def sample(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def empty_book(token: str) -> dict[str, Any]:
    return {"asset_id": token, "market": "0x0", "bids": [], "asks": [], "timestamp": "1700000000000"}


class Harness:
    """A feed on a mock CLOB: `books` answers `/book?token_id=…`; `book_requests` records the calls."""

    def __init__(self, *refs: PolymarketMarketRef, books: Mapping[str, Any] | None = None) -> None:
        self.books = dict(books or {})
        self.book_requests: list[str] = []
        self.events: list[FeedEvent] = []
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self._answer))
        self.feed = PolymarketFeed(
            list(refs), self.events.append, self.http, clob_root="http://clob.test", clock_ns=lambda: RECV
        )

    def _answer(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/book"
        token = request.url.params["token_id"]
        self.book_requests.append(token)
        if token not in self.books:
            return httpx.Response(404, json={"error": "No orderbook exists for the requested token id"})
        return httpx.Response(200, content=orjson.dumps(self.books[token]))

    async def feed_raw(self, raw: bytes) -> None:
        await self.feed.on_raw(raw)

    def quotes(self) -> list[tuple[str, Decimal | None, Decimal | None, Decimal | None, Decimal | None]]:
        return [
            (e.instrument, e.bid, e.bid_size, e.ask, e.ask_size) for e in self.events if isinstance(e, Quote)
        ]


def ref(token: str) -> PolymarketMarketRef:
    return PolymarketMarketRef(f"slug-{token[:4]}", token)


# --- book -----------------------------------------------------------------------------------------

BOOKS = [
    (
        "book_docs.json",
        T_6581,
        ((D("0.50"), D(15)), (D("0.49"), D(20)), (D("0.48"), D(30))),
        ((D("0.52"), D(25)), (D("0.53"), D(60)), (D("0.54"), D(10))),
        123456789000 * MS,
    ),
    (
        "book_nautilus_ws_market_book_msg.json",
        T_7132,
        ((D("0.50"), D("200.0")), (D("0.49"), D("350.0"))),
        ((D("0.51"), D("150.0")), (D("0.52"), D("250.0"))),
        1703875200000 * MS,
    ),
]


@pytest.mark.parametrize(("name", "token", "bids", "asks", "stamp"), BOOKS)
async def test_book_samples_give_the_sorted_book_and_its_top(
    name: str, token: str, bids: tuple[Any, ...], asks: tuple[Any, ...], stamp: int
) -> None:
    h = Harness(ref(token))
    await h.feed_raw(sample(name))
    snapshot, quote = h.events
    assert isinstance(snapshot, BookSnapshot) and isinstance(quote, Quote)
    assert (snapshot.instrument, snapshot.bids, snapshot.asks, snapshot.exchange_ts) == (
        token,
        bids,
        asks,
        stamp,
    )
    assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size, quote.exchange_ts) == (
        bids[0][0],
        bids[0][1],
        asks[0][0],
        asks[0][1],
        stamp,
    )
    assert h.feed.errors == 0 and h.book_requests == []


async def test_captured_book_with_tick_size_and_unsorted_asks() -> None:
    h = Harness(ref(T_7667))
    await h.feed_raw(sample("book_nautilus_crossing_burst_first.json"))
    snapshot = h.events[0]
    assert isinstance(snapshot, BookSnapshot)
    assert (len(snapshot.bids), len(snapshot.asks)) == (24, 22)
    assert snapshot.bids[0] == (D("0.3"), D(5000)) and snapshot.bids[-1] == (D("0.001"), D(220045))
    assert snapshot.asks[0] == (D("0.397"), D("100.09")) and snapshot.asks[-1] == (D("0.999"), D(1000))
    assert h.feed.books[T_7667].tick_size == D("0.001")
    assert h.quotes() == [(T_7667, D("0.3"), D(5000), D("0.397"), D("100.09"))]


# --- price_change ---------------------------------------------------------------------------------


async def test_price_change_before_any_book_loads_the_rest_snapshot_first() -> None:
    """The docs' sample says BUY 0.5 x 200, best ask 1: applied to an empty book it would be a quote
    with no ask. The feed loads REST /book first (here the captured book of that token), then applies."""
    h = Harness(ref(T_7132), books={T_7132: orjson.loads(sample("book_nautilus_ws_market_book_msg.json"))})
    await h.feed_raw(sample("price_change_docs.json"))
    assert h.book_requests == [T_7132]
    assert h.quotes() == [(T_7132, D("0.5"), D(200), D("0.51"), D("150.0"))]
    assert h.feed.resyncs == {"no_snapshot": 1}
    assert h.feed.errors == 0


async def test_a_failed_snapshot_is_asked_for_again_by_the_next_change() -> None:
    h = Harness(ref(T_7132))  # no REST book yet: 404
    await h.feed_raw(sample("price_change_docs.json"))
    assert h.quotes() == [] and h.feed.errors_by_kind == {"http_status": 1}
    h.books[T_7132] = orjson.loads(sample("book_nautilus_ws_market_book_msg.json"))
    await h.feed_raw(sample("price_change_nautilus_ws_market_price_change_msg.json"))
    assert h.book_requests == [T_7132, T_7132]
    # both held changes applied on the snapshot: BUY 0.5 x 200, then BUY 0.51 x 150.0
    assert h.quotes() == [(T_7132, D("0.51"), D("150.0"), D("0.51"), D("150.0"))]


async def test_price_changes_held_while_no_snapshot_are_all_applied_after_it() -> None:
    h = Harness(ref(T_5211), books={T_5211: empty_book(T_5211)})
    await h.feed_raw(sample("price_change_nautilus_v2.json"))
    assert h.book_requests == [T_5211]  # one snapshot for the three changes
    assert h.quotes() == [(T_5211, D("0.7"), D(3400), None, None)]
    assert h.feed.books[T_5211].bids.sorted_levels() == (
        (D("0.7"), D(3400)),
        (D("0.6"), D(3300)),
        (D("0.5"), D(3400)),
    )


async def test_price_change_agreeing_with_the_book_moves_the_quote() -> None:
    h = Harness(ref(T_7667))
    await h.feed_raw(sample("book_nautilus_crossing_burst_first.json"))
    await h.feed_raw(sample("price_change_nautilus_crossing_burst_1.json"))
    assert h.quotes()[-1] == (T_7667, D("0.301"), D(1000), D("0.397"), D("100.09"))
    assert h.feed.resyncs == {} and h.book_requests == [] and h.feed.errors == 0


async def test_a_missed_price_change_shows_in_best_bid_and_resyncs() -> None:
    """Burst message 3 without message 2 (which added the 0.311 bid): its best_bid 0.311 disagrees
    with the local 0.301, so the book is rebuilt from REST."""
    fresh = orjson.loads(sample("book_nautilus_crossing_burst_first.json"))
    fresh["bids"].append({"price": "0.311", "size": "2000"})
    h = Harness(ref(T_7667), books={T_7667: fresh})
    await h.feed_raw(sample("book_nautilus_crossing_burst_first.json"))
    await h.feed_raw(sample("price_change_nautilus_crossing_burst_1.json"))
    await h.feed_raw(sample("price_change_nautilus_crossing_burst_3.json"))
    assert h.book_requests == [T_7667]
    assert h.feed.resyncs == {"best_mismatch": 1}
    assert h.quotes()[-1] == (T_7667, D("0.311"), D(2000), D("0.397"), D("100.09"))


async def test_nautilus_price_change_fixture_disagreeing_with_its_book_resyncs() -> None:
    h = Harness(ref(T_7132), books={T_7132: empty_book(T_7132)})
    await h.feed_raw(sample("book_nautilus_ws_market_book_msg.json"))
    await h.feed_raw(sample("price_change_nautilus_ws_market_price_change_msg.json"))
    # BUY 0.51 leaves the local best ask at 0.51; the message says 0.52.
    assert h.feed.resyncs == {"best_mismatch": 1} and h.book_requests == [T_7132]


LEGACY = [
    (
        "price_change_legacy_flat_nautilus.json",
        T_4833,
        "legacy_flat",
        (T_4833, None, None, D("0.514"), D("21574.08")),
    ),
    (
        "price_change_legacy_changes_sdk_doc.json",
        T_3932,
        "legacy_changes",
        (T_3932, None, None, D("0.044"), D(611)),
    ),
    (
        # three SELL levels in one message: the best ask is the lowest, 0.3 (size 3400)
        "price_change_legacy_changes_docs_2024.json",
        T_7132,
        "legacy_changes",
        (T_7132, None, None, D("0.3"), D(3400)),
    ),
]


@pytest.mark.parametrize(("name", "token", "shape", "quote"), LEGACY)
async def test_pre_2025_09_price_change_shapes_are_applied_and_counted(
    name: str, token: str, shape: str, quote: tuple[Any, ...]
) -> None:
    h = Harness(ref(token), books={token: empty_book(token)})
    await h.feed_raw(sample(name))
    assert h.quotes() == [quote]
    assert h.feed.shapes == {shape: 1} and h.feed.errors == 0


async def test_captured_legacy_change_of_size_zero_removes_the_level() -> None:
    """A 2025-01 capture: BUY 0.644 size "0" (the book around it is this test's, the message is real)."""
    book = {
        **empty_book(T_5477),
        "bids": [{"price": "0.644", "size": "120"}, {"price": "0.64", "size": "55"}],
        "asks": [{"price": "0.65", "size": "10"}],
    }
    h = Harness(ref(T_5477), books={T_5477: book})
    await h.feed_raw(sample("price_change_legacy_changes_capture_2025-01.json"))
    assert h.quotes() == [(T_5477, D("0.64"), D(55), D("0.65"), D(10))]
    assert h.feed.shapes == {"legacy_changes": 1} and h.feed.errors == 0
    assert h.book_requests == [T_5477]  # no book yet when it arrived: loaded first, then applied


# --- last_trade_price, tick_size_change, best_bid_ask, new_market, market_resolved ----------------

TRADES = [
    ("last_trade_price_docs.json", T_1141, D("0.456"), D("219.217767"), "buy", 1750428146322),
    (
        "last_trade_price_nautilus_ws_market_last_trade_msg.json",
        T_7132,
        D("0.51"),
        D("25.0"),
        "buy",
        1703875202000,
    ),
    ("last_trade_price_nautilus_capture.json", T_2174, D("0.491"), D("85.36"), "sell", 1724564136087),
]


@pytest.mark.parametrize(("name", "token", "price", "size", "side", "ms"), TRADES)
async def test_last_trade_price_samples(
    name: str, token: str, price: Decimal, size: Decimal, side: str, ms: int
) -> None:
    h = Harness(ref(token))
    await h.feed_raw(sample(name))
    assert h.events == [
        TradeTick(polymarket.SOURCE, token, price, size, side, exchange_ts=ms * MS, receive_ts=RECV)
    ]
    assert h.feed.books[token].last == price


TICKS = [
    ("tick_size_change_docs.json", T_6581, D("0.001")),
    ("tick_size_change_nautilus_ws_market_tick_size_msg.json", T_7132, D("0.01")),
    ("tick_size_change_nautilus_capture.json", T_1154, D("0.001")),
]


@pytest.mark.parametrize(("name", "token", "tick"), TICKS)
async def test_tick_size_change_samples_set_the_tick(name: str, token: str, tick: Decimal) -> None:
    h = Harness(ref(token))
    await h.feed_raw(sample(name))
    assert h.feed.books[token].tick_size == tick
    assert h.events == [] and h.feed.errors == 0 and h.feed.shapes == {}


async def test_best_bid_ask_without_a_book_is_the_quote() -> None:
    h = Harness(ref(T_8535))
    await h.feed_raw(sample("best_bid_ask_docs.json"))
    assert h.events == [
        Quote(
            polymarket.SOURCE,
            T_8535,
            bid=D("0.73"),
            ask=D("0.77"),
            exchange_ts=1766789469958 * MS,
            receive_ts=RECV,
        )
    ]


async def test_best_bid_ask_disagreeing_with_the_book_resyncs() -> None:
    book = {
        "asset_id": T_8535,
        "bids": [{"price": "0.72", "size": "5"}],
        "asks": [{"price": "0.77", "size": "9"}],
    }
    h = Harness(ref(T_8535), books={T_8535: {**book, "bids": [{"price": "0.73", "size": "4"}]}})
    await h.feed_raw(orjson.dumps({"event_type": "book", **book}))
    await h.feed_raw(sample("best_bid_ask_docs.json"))
    assert h.feed.resyncs == {"best_mismatch": 1}
    assert h.quotes()[-1] == (T_8535, D("0.73"), D(4), D("0.77"), D(9))


@pytest.mark.parametrize("name", ["new_market_nautilus.json", "new_market_docs.json"])
async def test_new_market_teaches_a_configured_slug_its_tokens(name: str) -> None:
    h = Harness(PolymarketMarketRef("nvda-above-240-on-january-30-2026"), PolymarketMarketRef("other"))
    await h.feed_raw(sample(name))
    assert h.feed.markets["nvda-above-240-on-january-30-2026"] == PolymarketMarketRef(
        "nvda-above-240-on-january-30-2026", T_7604, T_3169
    )
    assert h.feed.messages == 1 and h.feed.ignored_by_type == {}


async def test_new_market_of_another_slug_is_counted_not_applied() -> None:
    h = Harness(PolymarketMarketRef("other"))
    await h.feed_raw(sample("new_market_nautilus.json"))
    assert h.feed.token_ids == [] and h.feed.ignored_by_type == {"new_market": 1}
    assert h.feed.messages == 0  # someone else's market is no sign of health


@pytest.mark.parametrize("name", ["market_resolved_docs.json", "market_resolved_nautilus.json"])
async def test_market_resolved_samples_settle_yes(name: str) -> None:
    h = Harness(PolymarketMarketRef("nvda", T_7604, T_3169))
    await h.feed_raw(sample(name))
    (update,) = h.events
    assert isinstance(update, MarketStatusUpdate)
    assert (update.instrument, update.state, update.exchange_ts) == (
        T_7604,
        MarketState.SETTLED_YES,
        1766790415550 * MS,
    )


async def test_unknown_event_types_are_counted_and_pong_is_quiet() -> None:
    h = Harness(ref(T_7132))
    await h.feed_raw(b"PONG")
    await h.feed_raw(b'{"event_type":"something_new","asset_id":"1"}')
    assert h.events == [] and h.feed.errors == 0
    assert h.feed.ignored_by_type == {"PONG": 1, "something_new": 1} and h.feed.messages == 0


def test_rest_prices_take_json_numbers() -> None:
    quotes = polymarket.parse_prices(orjson.loads(sample("prices_docs_get.json")), RECV)
    assert [(q.instrument, q.bid, q.ask) for q in quotes] == [
        ("0xabc123def456...", D("0.45"), None),
        ("0xdef456abc123...", None, D("0.52")),
    ]


REST_BOOKS = [
    (
        "rest_book_nautilus_clob_book_response.json",
        ((D("0.50"), D("150.00")), (D("0.49"), D("200.00")), (D("0.48"), D("100.00"))),
        ((D("0.51"), D("120.00")), (D("0.52"), D("180.00")), (D("0.53"), D("90.00"))),
        1703875200000 * MS,
    ),
    (
        "rest_book_nautilus_capture_empty_ask.json",
        ((D("0.002"), D("6.99")), (D("0.001"), D("667.12"))),
        (),
        1785734468581 * MS,
    ),
    (
        # levels as the CLOB lists them (bids lowest first, asks highest first); no `timestamp`
        "rest_book_nautilus_http_book.json",
        (
            (D("0.1"), D(125)),
            (D("0.09"), D(294)),
            (D("0.08"), D(120)),
            (D("0.06"), D(200)),
            (D("0.01"), D(1000)),
        ),
        (
            (D("0.14"), D(705)),
            (D("0.2"), D(70)),
            (D("0.38"), D("192.3")),
            (D("0.46"), D(10)),
            (D("0.47"), D(50)),
            (D("0.5"), D(30)),
            (D("0.98"), D(5000)),
        ),
        None,
    ),
]


@pytest.mark.parametrize(("name", "bids", "asks", "stamp"), REST_BOOKS)
def test_rest_book_samples(
    name: str, bids: tuple[Any, ...], asks: tuple[Any, ...], stamp: int | None
) -> None:
    snapshot = polymarket.parse_book(orjson.loads(sample(name)), RECV)
    assert (snapshot.bids, snapshot.asks, snapshot.exchange_ts) == (bids, asks, stamp)
