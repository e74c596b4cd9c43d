"""`engine.views`: each view against the engine's state after a scripted command stream.

The views are what adapters read; they must say exactly what the engine holds, be snapshots (a later
command does not change a view already built) and refuse writes.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.engine_support import (
    D,
    engine_with,
    expect_no_rejection,
    one,
    order_id,
    perp_spec,
    place,
    spot_spec,
)
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import (
    AccountKind,
    AccountStatus,
    CancelReason,
    MarketStatus,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    TradingState,
    Venue,
)
from tradehall.engine import Engine, views


def scripted() -> tuple[Engine, int]:
    """`m` makes BTC-USD 64,000.00 / 64,010.00 (1 BTC each) and sells 0.01 BTC-PERP at 50,000.00;
    `t` rests a buy of 0.5 BTC at 63,000.00, buys 0.1 BTC at market and takes the perp offer.
    Returns the engine and the id of `t`'s resting order."""
    engine = engine_with(
        spot_spec(),
        perp_spec(),
        accounts={"m": {"USD": "1000000", "BTC": "10"}, "t": {"USD": "100000"}},
    )
    expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "1", "64000"))
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "1", "64010"))
    resting = order_id(expect_no_rejection(place(engine, "t", "BTC-USD", "buy", "0.5", "63000")))
    expect_no_rejection(place(engine, "t", "BTC-USD", "buy", "0.1", type="market"))
    expect_no_rejection(place(engine, "m", "BTC-PERP", "sell", "0.01", "50000"))
    expect_no_rejection(place(engine, "t", "BTC-PERP", "buy", "0.01", type="market"))
    return engine, resting


def test_market_view_has_the_spec_status_and_prices_in_ticks() -> None:
    engine, _ = scripted()
    market = views.market(engine, "BTC-USD")
    assert market is not None
    assert market.spec is engine.markets["BTC-USD"].spec
    assert (market.symbol, market.status, market.venue) == ("BTC-USD", MarketStatus.OPEN, Venue.BOOK)
    # the market buy took 0.1 of the 64,010.00 offer: last trade 64,010.00, no mark: valued at last
    assert (market.bid, market.ask, market.last_price, market.mark_price) == (
        6_400_000,
        6_401_000,
        6_401_000,
        6_401_000,
    )
    assert market.book_sequence == engine.markets["BTC-USD"].book_sequence > 0
    assert (market.quote_places, market.slippage_ppm) == (2, 1_000)
    assert views.market(engine, "NOPE") is None
    assert [m.symbol for m in views.markets(engine)] == ["BTC-PERP", "BTC-USD"]
    assert views.market_symbols(engine) == ["BTC-PERP", "BTC-USD"]
    assert views.spec(engine, "BTC-PERP") is engine.markets["BTC-PERP"].spec
    assert (views.spec(engine, "NOPE"), views.has_market(engine, "NOPE")) == (None, False)


def test_a_market_is_valued_at_its_mark_once_it_has_one() -> None:
    engine, _ = scripted()
    expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D("64005"))))
    market = views.market(engine, "BTC-USD")
    assert market is not None
    assert (market.last_price, market.mark_price) == (6_401_000, 6_400_500)
    assert views.valuation_price(engine.markets["BTC-USD"]) == 6_400_500


def test_book_view_lists_levels_best_first_with_the_book_sequence() -> None:
    engine, _ = scripted()
    book = views.book(engine, "BTC-USD", 5)
    assert book is not None
    assert book.bids == ((6_400_000, 10_000), (6_300_000, 5_000))
    assert book.asks == ((6_401_000, 9_000),)  # 1 BTC less the 0.1 taken
    assert (book.symbol, book.sequence) == ("BTC-USD", engine.markets["BTC-USD"].book_sequence)
    one_level = views.book(engine, "BTC-USD", 1)
    assert one_level is not None and one_level.bids == ((6_400_000, 10_000),)
    assert views.book(engine, "NOPE", 5) is None


def test_a_quote_venue_book_is_its_quotes_with_unknown_sizes_as_none() -> None:
    engine = engine_with(spot_spec("ETH-USD", base="ETH", venue=Venue.QUOTE))
    expect_no_rejection(
        engine.apply(c.Quote(market="ETH-USD", bid=D("3000"), ask=D("3001"), bid_size=D("2"), ask_size=None))
    )
    book = views.book(engine, "ETH-USD", 10)
    assert book is not None
    assert (book.bids, book.asks) == (((300_000, 20_000),), ((300_100, None),))


def test_order_view_is_the_engine_order_and_open_orders_are_newest_first() -> None:
    engine, resting = scripted()
    order = views.order(engine, resting)
    assert order is not None
    assert (order.order_id, order.account_id, order.market) == (resting, "t", "BTC-USD")
    assert (order.requested_side, order.type, order.time_in_force) == (
        OrderSide.BUY,
        OrderType.LIMIT,
        TimeInForce.GTC,
    )
    assert (order.price, order.stop_price, order.quantity, order.filled) == (6_300_000, None, 5_000, 0)
    assert (order.status, order.cancel_reason, order.fees_paid) == (OrderStatus.OPEN, None, 0)
    engine_order = engine.orders[resting]
    for field in dataclasses.fields(order):
        assert getattr(order, field.name) == getattr(engine_order, field.name), field.name
    second = order_id(expect_no_rejection(place(engine, "t", "BTC-PERP", "buy", "0.01", "40000")))
    assert [o.order_id for o in views.open_orders(engine, {"t"})] == [second, resting]
    assert [o.order_id for o in views.open_orders(engine, {"t"}, "BTC-USD")] == [resting]
    assert [o.order_id for o in views.open_orders(engine, {"t"}, before=second)] == [resting]
    assert views.open_orders(engine, {"nobody"}) == []
    assert views.order(engine, 10**9) is None


def test_a_cancelled_view_is_what_the_cancel_left_in_the_engine_order() -> None:
    engine, resting = scripted()
    engine_order = engine.orders[resting]
    before = views.order(engine, resting)
    assert before is not None
    events = expect_no_rejection(engine.apply(c.CancelOrder(order_id=resting, account_id="t")))
    assert views.order(engine, resting) is None  # a closed order leaves the engine
    after = before.cancelled(one(events, ev.OrderCancelled))
    assert (after.status, after.cancel_reason) == (OrderStatus.CANCELLED, CancelReason.USER)
    for field in dataclasses.fields(after):
        assert getattr(after, field.name) == getattr(engine_order, field.name), field.name
    assert before.status is OrderStatus.OPEN  # the earlier view did not move


def test_account_view_has_balances_holds_status_and_the_engine_valuation() -> None:
    engine, _ = scripted()
    account = views.account(engine, "t")
    assert account is not None
    assert (account.account_id, account.owner, account.kind, account.currency) == (
        "t",
        "t",
        AccountKind.CASH,
        "USD",
    )
    assert (account.status, account.trading_state, account.tier) == (
        AccountStatus.ACTIVE,
        TradingState.ACTIVE,
        None,
    )
    assert (account.status_reason, account.assessment) == (None, None)
    engine_account = engine.accounts["t"]
    assert [(b.currency, b.total, b.held) for b in account.balances] == [
        (currency, engine_account.balances[currency].total, engine_account.balances[currency].held)
        for currency in sorted(engine_account.balances)
    ]
    usd = account.balance("USD")
    assert usd is not None
    assert usd.held == engine_account.balances["USD"].held > 3_150_000  # 0.5 x 63,000.00 plus its fee
    assert account.balance("EUR") is None
    assert account.valuation == views.account_valuation(engine, "t")
    assert views.account(engine, "nobody") is None
    assert (views.account_owner(engine, "t"), views.account_owner(engine, "nobody")) == ("t", None)
    assert views.account_ids_of(engine, "m") == ["m"]


def test_position_view_values_at_the_market_price_with_the_liquidation_price() -> None:
    engine, _ = scripted()
    position = views.position(engine, "t", "BTC-PERP")
    assert position is not None
    # 0.01 BTC is 10 lots of 0.001, 50,000.00 is 100,000 ticks of 0.5
    assert (position.quantity, position.cost, position.price) == (10, 10 * 100_000, 100_000)
    engine_position = engine.markets["BTC-PERP"].positions["t"]
    assert (position.realized, position.margin) == (engine_position.realized, engine_position.margin)
    assert position.liquidation_price == engine.liquidation_price("t", "BTC-PERP")
    assert position.spec is engine.markets["BTC-PERP"].spec and position.quote_places == 2
    assert [p.market for p in views.positions(engine, "t")] == [p.market for p in engine.positions_of("t")]
    assert views.position(engine, "m", "NOPE") is None


def test_views_are_frozen_snapshots() -> None:
    engine, resting = scripted()
    market = views.market(engine, "BTC-USD")
    order = views.order(engine, resting)
    assert market is not None and order is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        market.last_price = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        order.filled = 1  # type: ignore[misc]
    expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D("64005"))))
    expect_no_rejection(engine.apply(c.AmendOrder(order_id=resting, account_id="t", quantity=D("0.3"))))
    assert (order.quantity, market.mark_price) == (5_000, 6_401_000)
    now, market_now = views.order(engine, resting), views.market(engine, "BTC-USD")
    assert now is not None and market_now is not None
    assert (now.quantity, market_now.mark_price) == (3_000, 6_400_500)


def test_configuration_reads() -> None:
    engine, _ = scripted()
    assert views.currency_places(engine, "USD") == engine.config.decimals("USD")
    assert {"USD", "BTC"} <= views.holdable_currencies(engine)
    assert views.tiers(engine) is engine.config.tiers
    expect_no_rejection(engine.apply(c.SetLeverage(account_id="t", market="BTC-PERP", leverage=D("2"))))
    assert views.initial_margin_ppm(engine, "t", "BTC-PERP") == 500_000
