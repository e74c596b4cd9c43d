"""Smart order routing: exact splits by fee-adjusted price across the venues of one instrument."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.engine_support import balance, engine_with, expect_no_rejection, of_type, one, place, spot_spec
from tests.engine_support.streams import check_invariants
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import CancelReason, Venue
from tradehall.domain.errors import Code
from tradehall.engine import Engine
from tradehall.engine.book import OrderBook
from tradehall.engine.book_reference import ReferenceBook
from tradehall.engine.route_depth import plan_split, venue_levels, walk_levels

SECOND = 1_000_000_000


def venues(**extra: Any) -> Engine:
    """BTC-USD on tradehall's book (taker 0.2 %) and on OKX's book (taker 0.05 %); a maker on both."""
    return engine_with(
        spot_spec("BTC-USD"),
        spot_spec("BTC-USD.OKX", instrument="BTC-USD", taker_fee=D("0.0005"), maker_fee=D("0")),
        *extra.get("specs", ()),
        accounts={"m": {"USD": "1000000", "BTC": "100"}, "t": {"USD": "100000", "BTC": "10"}},
    )


def route(
    engine: Engine, side: str, quantity: str, price: str | None = None, **fields: Any
) -> list[ev.AnyEvent]:
    return engine.apply(
        c.RouteOrder(
            account_id=fields.pop("account_id", "t"),
            instrument=fields.pop("instrument", "BTC-USD"),
            side=side,  # type: ignore[arg-type]
            quantity=D(quantity),
            price=None if price is None else D(price),
            **fields,
        )
    )


def fills(events: list[ev.AnyEvent]) -> list[tuple[str, int, int]]:
    return [(f.market, f.price, f.quantity) for f in of_type(events, ev.OrderFilled) if f.account_id == "t"]


def test_the_cheaper_quoted_price_loses_after_fees() -> None:
    engine = venues()
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "1", "100.00"))
    expect_no_rejection(place(engine, "m", "BTC-USD.OKX", "sell", "1", "100.10"))
    events = expect_no_rejection(route(engine, "buy", "1", "101"))
    # all-in: 100.00 x 1.002 = 100.20 on BTC-USD, 100.10 x 1.0005 = 100.15005 on OKX
    assert fills(events) == [("BTC-USD.OKX", 10_010, 10_000)]
    routed = one(events, ev.OrderRouted)
    [child] = routed.children
    assert (child.market, child.quantity, child.price, child.planned) == (
        "BTC-USD.OKX",
        10_000,
        10_100,
        10_000,
    )
    assert (routed.unrouted, routed.reason, routed.quantity, routed.price) == ("0", None, "1", "101")
    assert routed.order_id == child.order_id + 1  # type: ignore[operator]
    assert engine.state.routes == {}  # nothing open: nothing remembered
    check_invariants(engine)


def test_depth_forces_a_split_taken_cheapest_all_in_first() -> None:
    engine = venues()
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "1", "100.00"))
    expect_no_rejection(place(engine, "m", "BTC-USD.OKX", "sell", "0.4", "100.10"))
    expect_no_rejection(place(engine, "m", "BTC-USD.OKX", "sell", "1", "100.30"))  # 100.35 all-in
    events = expect_no_rejection(route(engine, "buy", "1", "101"))
    assert fills(events) == [("BTC-USD.OKX", 10_010, 4_000), ("BTC-USD", 10_000, 6_000)]
    routed = one(events, ev.OrderRouted)
    assert [(ch.market, ch.quantity, ch.planned) for ch in routed.children] == [
        ("BTC-USD.OKX", 4_000, 4_000),
        ("BTC-USD", 6_000, 6_000),
    ]
    # fees: 0.4 x 100.10 x 0.05 % = 0.02002 -> 0.03; 0.6 x 100 x 0.2 % = 0.12
    assert [f.fee for f in of_type(events, ev.OrderFilled) if f.account_id == "t"] == [3, 12]
    assert balance(engine, "t") == (10_000_000 - 4_004 - 3 - 6_000 - 12, 0)
    check_invariants(engine)


def test_a_sell_walks_the_bids_net_of_fees() -> None:
    engine = venues()
    expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "1", "100.20"))  # 100.20 x 0.998 = 99.9996
    expect_no_rejection(place(engine, "m", "BTC-USD.OKX", "buy", "1", "100.00"))  # x 0.9995 = 99.95
    events = expect_no_rejection(route(engine, "sell", "1.5", "99"))
    assert fills(events) == [("BTC-USD", 10_020, 10_000), ("BTC-USD.OKX", 10_000, 5_000)]


def test_a_venue_with_a_stale_quote_is_skipped() -> None:
    cheap = spot_spec(
        "BTC-USD.BYBIT", instrument="BTC-USD", venue=Venue.QUOTE, taker_fee=D("0"), slippage=D("0")
    )
    engine = venues(specs=[cheap])
    expect_no_rejection(engine.apply(c.Quote(market="BTC-USD.BYBIT", bid=D("98"), ask=D("99"), ts=0)))
    expect_no_rejection(place(engine, "m", "BTC-USD.OKX", "sell", "1", "100.10"))
    fresh = Engine.restore(engine.snapshot())
    events = expect_no_rejection(route(fresh, "buy", "1", "101", ts=SECOND))
    assert fills(events) == [("BTC-USD.BYBIT", 9_900, 10_000)]
    # 11 s later the 10 s old quote is stale: the order goes to OKX instead
    events = expect_no_rejection(route(engine, "buy", "1", "101", ts=11 * SECOND))
    assert fills(events) == [("BTC-USD.OKX", 10_010, 10_000)]
    assert [ch.market for ch in one(events, ev.OrderRouted).children] == ["BTC-USD.OKX"]


def test_an_ioc_remainder_is_cancelled_with_its_reason() -> None:
    engine = venues()
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "0.5", "100.00"))
    expect_no_rejection(place(engine, "m", "BTC-USD.OKX", "sell", "0.3", "100.10"))
    events = expect_no_rejection(route(engine, "buy", "1.25", "101", time_in_force="ioc"))
    assert fills(events) == [("BTC-USD.OKX", 10_010, 3_000), ("BTC-USD", 10_000, 5_000)]
    routed = one(events, ev.OrderRouted)
    assert (routed.unrouted, routed.reason) == ("0.45", CancelReason.IOC_REMAINDER)
    assert balance(engine, "t")[1] == 0
    check_invariants(engine)


def test_a_gtc_rest_waits_on_the_best_venue_and_cancelling_the_parent_cancels_it() -> None:
    engine = venues()
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "0.5", "100.00"))
    expect_no_rejection(place(engine, "m", "BTC-USD.OKX", "sell", "0.3", "100.10"))
    events = expect_no_rejection(route(engine, "buy", "1.25", "101"))
    routed = one(events, ev.OrderRouted)
    assert [(ch.market, ch.quantity, ch.planned) for ch in routed.children] == [
        ("BTC-USD.OKX", 7_500, 3_000),  # the first venue taken keeps the rest: 0.3 + 0.45
        ("BTC-USD", 5_000, 5_000),
    ]
    assert (routed.unrouted, routed.reason) == ("0", None)
    resting = routed.children[0].order_id
    assert resting is not None and engine.orders[resting].remaining == 4_500
    assert balance(engine, "t")[1] > 0
    # a restart in the middle: the restored engine knows the parent and its children
    restored = Engine.restore(engine.snapshot())
    assert restored.state_hash() == engine.state_hash()
    for each in (engine, restored):
        cancelled = expect_no_rejection(each.apply(c.CancelOrder(order_id=routed.order_id, account_id="t")))
        assert [(o.order_id, o.reason) for o in of_type(cancelled, ev.OrderCancelled)] == [
            (resting, CancelReason.USER)
        ]
        assert balance(each, "t")[1] == 0
        check_invariants(each)
    assert restored.state_hash() == engine.state_hash()
    again = one(engine.apply(c.CancelOrder(order_id=routed.order_id, account_id="t")), ev.CommandRejected)
    assert again.code is Code.CONFLICT


def test_a_limit_with_nothing_to_take_rests_on_the_lowest_maker_fee() -> None:
    engine = venues()
    events = expect_no_rejection(route(engine, "buy", "1", "90"))
    [child] = one(events, ev.OrderRouted).children
    assert (child.market, child.quantity, child.planned, child.price) == ("BTC-USD.OKX", 10_000, 0, 9_000)


def test_a_market_order_routes_market_children_and_cancels_its_rest() -> None:
    engine = venues()
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "0.5", "100.00"))
    expect_no_rejection(place(engine, "m", "BTC-USD.OKX", "sell", "0.2", "100.00"))
    events = expect_no_rejection(route(engine, "buy", "1", None, type="market"))
    assert fills(events) == [("BTC-USD.OKX", 10_000, 2_000), ("BTC-USD", 10_000, 5_000)]
    routed = one(events, ev.OrderRouted)
    assert (routed.unrouted, routed.reason) == ("0.3", CancelReason.MARKET_REMAINDER)
    assert all(ch.price is None for ch in routed.children)


def test_each_venue_takes_whole_lots_of_its_own() -> None:
    coarse = spot_spec("BTC-USD.KRAKEN", instrument="BTC-USD", lot_size=D("0.1"), taker_fee=D("0"))
    engine = venues(specs=[coarse])
    expect_no_rejection(place(engine, "m", "BTC-USD.KRAKEN", "sell", "5", "100.00"))
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "5", "100.00"))
    events = expect_no_rejection(route(engine, "buy", "0.25", "101"))
    assert fills(events) == [("BTC-USD.KRAKEN", 10_000, 2), ("BTC-USD", 10_000, 500)]


def test_refusals_change_nothing() -> None:
    engine = venues()
    before = engine.state_hash()
    cases = [
        (dict(instrument="ETH-USD"), Code.NOT_FOUND),
        (dict(quantity="0.00001"), Code.INVALID_ORDER),  # finer than every lot
        (dict(quantity="-1"), Code.INVALID_ORDER),
        (dict(price=None), Code.INVALID_ORDER),
        (dict(time_in_force="fok"), Code.INVALID_ORDER),
        (dict(type="stop", price="101"), Code.INVALID_ORDER),
        (dict(account_id="nobody"), Code.NOT_FOUND),
        (dict(quantity="1000"), Code.INSUFFICIENT_BALANCE),  # the first child is refused: so is the parent
    ]
    for fields, code in cases:
        args: dict[str, Any] = {"side": "buy", "quantity": "1", "price": "101", **fields}
        events = route(engine, args.pop("side"), args.pop("quantity"), args.pop("price"), **args)
        rejected = one(events, ev.OrderRejected)
        assert (rejected.code, rejected.market) == (code, fields.get("instrument", "BTC-USD")), fields
    assert engine.state_hash() == before


def test_plan_split_drops_a_venue_whose_lot_is_too_large() -> None:
    levels = sorted([(5, 0, 0, None), (6, 1, 0, 3), (7, 1, 1, 4)])
    assert plan_split(levels, [10, 1], 12) == ([1, 2], [0, 1])  # 10 from venue 0, then 2 of venue 1
    assert plan_split(levels, [10, 1], 8) == ([0, 7], [1])  # venue 1 has 7 in all


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["BTC-USD", "BTC-USD.OKX"]),
            st.sampled_from(["buy", "sell"]),
            st.integers(1, 30),
            st.integers(95, 105),
        ),
        max_size=8,
    ),
    st.lists(
        st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 40), st.integers(94, 106), st.booleans()),
        min_size=1,
        max_size=6,
    ),
)
def test_routed_children_never_hold_twice(makers: list[Any], routes: list[Any]) -> None:
    engine = venues()
    for market, side, tenths, price in makers:
        place(engine, "m", market, side, str(D(tenths) / 10), str(price))
    parents = []
    for side, tenths, price, ioc in routes:
        events = route(engine, side, str(D(tenths) / 10), str(price), time_in_force="ioc" if ioc else "gtc")
        parents += [e.order_id for e in of_type(events, ev.OrderRouted)]
        check_invariants(engine)
    engine = Engine.restore(engine.snapshot())
    for parent in parents:
        engine.apply(c.CancelOrder(order_id=parent, account_id="t"))
        check_invariants(engine)
    assert balance(engine, "t")[1] == 0
    assert balance(engine, "t", "BTC")[1] == 0


def test_a_smart_order_whose_children_all_ended_is_not_carried_into_a_snapshot() -> None:
    engine = venues()
    routed = one(expect_no_rejection(route(engine, "buy", "1", "90")), ev.OrderRouted)
    assert list(engine.state.routes) == [routed.order_id]
    [child] = routed.children
    expect_no_rejection(place(engine, "m", "BTC-USD.OKX", "sell", "1", "90"))  # fills the resting child
    assert child.order_id not in engine.orders
    restored = Engine.restore(engine.snapshot())
    assert restored.state.routes == {}
    assert restored.state_hash() == engine.state_hash()
    rejected = one(engine.apply(c.CancelOrder(order_id=routed.order_id, account_id="t")), ev.CommandRejected)
    assert rejected.code is Code.CONFLICT and engine.state.routes == {}


def test_a_repeated_client_order_id_is_the_original_smart_order() -> None:
    engine = venues()
    first = one(expect_no_rejection(route(engine, "buy", "1", "90", client_order_id="s-1")), ev.OrderRouted)
    before = engine.state_hash()
    assert route(engine, "buy", "1", "90.00", client_order_id="s-1") == []  # the same order: nothing
    assert engine.state_hash() == before
    assert engine.order_id_for("t", "s-1") == first.order_id
    rejected = one(route(engine, "buy", "2", "90", client_order_id="s-1"), ev.OrderRejected)
    assert rejected.code is Code.CONFLICT
    expect_no_rejection(place(engine, "t", "BTC-USD", "buy", "0.1", "80", client_order_id="plain"))
    assert (
        one(route(engine, "buy", "0.1", "80", client_order_id="plain"), ev.OrderRejected).code
        is Code.CONFLICT
    )


def test_a_books_side_levels_are_its_depth_in_both_books() -> None:
    for factory in (OrderBook, ReferenceBook):
        engine = engine_with(
            spot_spec("BTC-USD"), accounts={"m": {"USD": "100000", "BTC": "10"}}, book_factory=factory
        )
        for side, price in (
            ("buy", "99"),
            ("buy", "98.5"),
            ("sell", "101"),
            ("sell", "100.5"),
            ("buy", "99"),
        ):
            expect_no_rejection(place(engine, "m", "BTC-USD", side, "0.1", price))
        book = engine.markets["BTC-USD"].book
        bids, asks = book.depth()
        assert (book.side_levels(True), book.side_levels(False)) == (bids, asks)
        assert bids == [(9_900, 2_000), (9_850, 1_000)] and asks == [(10_050, 1_000), (10_100, 1_000)]


def full_split(engine: Engine, command: c.RouteOrder) -> tuple[list[int], list[int], int]:
    """The split as the router made it before levels were cut at a share of the order: every venue's
    levels built, sorted on their cost, walked, venues under their minimum dropped and walked again."""
    router = engine.router
    plan = router.decide(command)
    tick_exp = min(market.spec.tick_size.as_tuple().exponent for market in plan.eligible)  # type: ignore[type-var]
    levels: list[Any] = []
    for index, market in enumerate(plan.eligible):
        tick = int(market.spec.tick_size.scaleb(-tick_exp))  # type: ignore[arg-type]
        lot = plan.lot_units[index]
        need = sum(t * u for t, u in zip(plan.taken, plan.lot_units, strict=True)) + plan.left
        venue_levels(levels, index, market, plan.side, plan.limits[index], tick, lot, need, -(-need // lot))
    levels.sort(key=lambda level: level[0])
    while True:
        taken, first, left = walk_levels(levels, plan.lot_units, need)
        short = {i for i, n in enumerate(taken) if 0 < n < plan.eligible[i].terms.min_lots}
        if not short:
            return taken, first, left
        levels = [level for level in levels if level[1] not in short]


@settings(max_examples=100, deadline=None)
@example([(0, "sell", 10, i) for i in range(8)] + [(1, "sell", 10, i) for i in range(8)], "buy", 12, 105, [])
@example([(0, "sell", 10, i) for i in range(8)], "buy", 50, None, [])  # one venue: the cut walk falls short
@example([(v, "buy", 7, i) for v in range(3) for i in range(6)], "sell", 40, 95, [5, 0, 5, 5, 5, 5])
@example([], "buy", 30, 110, [5, 0, 5, 5, 5, 5, 5, 5, 5, 5])
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["buy", "sell"]), st.integers(1, 30), st.integers(0, 9)),
        min_size=10,
        max_size=60,
    ),
    st.sampled_from(["buy", "sell"]),
    st.integers(1, 60),
    st.one_of(st.none(), st.integers(88, 112)),
    st.lists(st.integers(0, 20), max_size=12),
)
def test_cutting_levels_at_a_share_of_the_order_never_changes_the_split(
    makers: list[Any], side: str, tenths: int, price: int | None, quoted: list[int]
) -> None:
    engine = engine_with(
        spot_spec("BTC-USD"),
        spot_spec("BTC-USD.OKX", instrument="BTC-USD", taker_fee=D("0.0005"), lot_size=D("0.1")),
        spot_spec("BTC-USD.BYBIT", instrument="BTC-USD", taker_fee=D("0.001"), min_quantity=D("0.3")),
        spot_spec(
            "BTC-USD.KRAKEN",
            instrument="BTC-USD",
            venue=Venue.QUOTE,
            taker_fee=D("0.0008"),
            lot_size=D("0.01"),
            slippage=D("0.0001"),
        ),
        accounts={"m": {"USD": "1000000", "BTC": "100"}, "t": {"USD": "100000", "BTC": "10"}},
    )
    # a quote venue's levels a tick apart outside 99..101, some of size 0 (skipped by the router)
    asks = tuple((D(101) + D(k) / 2, D(size) / 10) for k, size in enumerate(quoted))
    bids = tuple((D(99) - D(k) / 2, D(size) / 10) for k, size in enumerate(quoted))
    if quoted:
        expect_no_rejection(engine.apply(c.Quote(market="BTC-USD.KRAKEN", bids=bids, asks=asks)))
    for venue, maker_side, maker_tenths, away in makers:  # asks above 100, bids below: deep books
        symbol = ("BTC-USD", "BTC-USD.OKX", "BTC-USD.BYBIT")[venue]
        maker_price = 101 + away if maker_side == "sell" else 99 - away
        place(engine, "m", symbol, maker_side, str(D(maker_tenths) / 10), str(maker_price))
    command = c.RouteOrder(
        account_id="t",
        instrument="BTC-USD",
        side=side,  # type: ignore[arg-type]
        quantity=D(tenths) / 10,
        price=None if price is None else D(price),
        type="limit" if price is not None else "market",  # type: ignore[arg-type]
        time_in_force="ioc",  # type: ignore[arg-type]
    )
    plan = engine.router.decide(command)
    taken, first, left = full_split(engine, command)
    assert (plan.taken, plan.left) == (taken, left)
    assert plan.sends[: len(first)] == first
