"""Marks on book markets have a sanity band against the book; equity values holdings at their market's
price through the engine's one valuation; money in refusals is written in the currency's units."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from tests.engine_support import engine_with, expect_no_rejection, of_type, one, perp_spec, place, spot_spec
from tradehall.api import convert
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import AccountKind, Venue
from tradehall.domain.fixedpoint import format_money
from tradehall.domain.tiers import TierSpec
from tradehall.engine import Engine, EngineConfig, views
from tradehall.marketdata.pump import CommandPump


def perp_book(**spec: object) -> Engine:
    """BTC-PERP (tick 0.5) with the book 10,000.00 bid / 10,010.00 ask."""
    engine = engine_with(perp_spec(**spec), accounts={"m": {"USD": "1000000"}})
    expect_no_rejection(place(engine, "m", "BTC-PERP", "buy", "1", "10000"))
    expect_no_rejection(place(engine, "m", "BTC-PERP", "sell", "1", "10010"))
    return engine


@pytest.mark.parametrize(
    ("price", "accepted"),
    [
        ("9499.5", False),  # below 10,000 x 0.95
        ("9500", True),  # the band's ends are inside
        ("10005", True),
        ("10510.5", True),  # 10,010 x 1.05
        ("10511", False),
    ],
)
def test_a_mark_outside_the_band_around_a_two_sided_book_is_refused(price: str, accepted: bool) -> None:
    engine = perp_book()
    before = engine.state_hash()
    events = engine.apply(c.MarkPrice(market="BTC-PERP", price=D(price)))
    if accepted:
        assert one(events, ev.MarkPriceUpdated).price == int(D(price) * 2)
        assert engine.markets["BTC-PERP"].marks.price == int(D(price) * 2)
        return
    refused = one(events, ev.CommandRejected)
    assert (refused.code, refused.reason) == (
        "invalid_request",
        f"mark {price} is outside the band [9500, 10510.5]: 5 % beyond the book's bid and ask",
    )
    assert engine.markets["BTC-PERP"].marks.price is None
    assert engine.state_hash() == before


def test_a_feed_quote_on_a_book_market_is_held_to_the_same_band() -> None:
    engine = perp_book()
    refused = one(engine.apply(c.Quote(market="BTC-PERP", bid=D("8999"), ask=D("9001"))), ev.CommandRejected)
    assert refused.code == "invalid_request"
    assert engine.markets["BTC-PERP"].marks.price is None
    expect_no_rejection(engine.apply(c.Quote(market="BTC-PERP", bid=D("9999"), ask=D("10001"))))
    assert engine.markets["BTC-PERP"].marks.price == 20_000


@pytest.mark.parametrize("cancel", ["ask", "bid", "both"])
def test_an_empty_or_one_sided_book_has_no_band(cancel: str) -> None:
    engine = perp_book()
    bid, ask = sorted(o.order_id for o in engine.orders.values())
    for order_id in {"ask": [ask], "bid": [bid], "both": [bid, ask]}[cancel]:
        expect_no_rejection(engine.apply(c.CancelOrder(order_id=order_id)))
    expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-PERP", price=D("5000"))))
    assert engine.markets["BTC-PERP"].marks.price == 10_000


def test_mark_band_is_a_market_field() -> None:
    tight = perp_book(mark_band=D("0"))
    assert one(tight.apply(c.MarkPrice(market="BTC-PERP", price=D("9999.5"))), ev.CommandRejected)
    expect_no_rejection(tight.apply(c.MarkPrice(market="BTC-PERP", price=D("10010"))))
    wide = perp_book(mark_band=D("0.5"))
    expect_no_rejection(wide.apply(c.MarkPrice(market="BTC-PERP", price=D("5000"))))
    bad = Engine().apply(c.CreateMarket(spec=perp_spec(mark_band=D("1"))))
    assert one(bad, ev.CommandRejected).code == "invalid_request"
    paper = engine_with(perp_spec(venue=Venue.QUOTE))  # quote venues mark from their quotes: no band
    expect_no_rejection(paper.apply(c.MarkPrice(market="BTC-PERP", price=D("1"))))


async def test_a_feed_mark_outside_the_band_is_dropped_and_counted() -> None:
    engine = perp_book()
    engine.apply(c.CreateMarket(spec=perp_spec("ETH-PERP")))

    async def submit_many(batch: Sequence[c.AnyCommand]) -> list[SimpleNamespace]:
        return [SimpleNamespace(events=tuple(engine.apply(command))) for command in batch]

    def rejected(market: str) -> float:
        return REGISTRY.get_sample_value("tradehall_marks_rejected_total", {"market": market}) or 0.0

    before = rejected("BTC-PERP"), rejected("ETH-PERP")
    pump = CommandPump(submit_many, max_batch=1)
    pump.start()
    pump(c.MarkPrice(market="BTC-PERP", price=D("20000")))  # refused: outside the band
    pump(c.MarkPrice(market="ETH-PERP", price=D("3000")))  # an empty book: accepted
    pump(c.Quote(market="BTC-PERP", bid=D("10001"), ask=D("10002")))  # accepted
    await pump.stop()
    assert (rejected("BTC-PERP") - before[0], rejected("ETH-PERP") - before[1]) == (1.0, 0.0)
    assert (pump.submitted, pump.refused) == (3, 1)
    assert engine.markets["BTC-PERP"].marks.price == 20_003
    assert engine.markets["ETH-PERP"].marks.price == 6_000


def spot_holder() -> Engine:
    """`s` holds 100,000.00 USD and 1 BTC; the BTC-USD book is 64,000.00 / 64,010.00."""
    engine = engine_with(
        spot_spec(), accounts={"s": {"USD": "100000", "BTC": "1"}, "m": {"USD": "1000000", "BTC": "10"}}
    )
    expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "1", "64000"))
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "1", "64010"))
    return engine


def account_view(engine: Engine, account_id: str) -> views.AccountView:
    view = views.account(engine, account_id)
    assert view is not None
    return view


def test_equity_values_spot_holdings_at_their_market_price() -> None:
    engine = spot_holder()
    assert views.account_valuation(engine, "s").equity == 16_400_500  # no mark, no trade: the mid 64,005.00
    # selling 0.5 BTC at 64,000.00 (taker fee 0.2 % = 64.00) changes equity by the fee, not by +32,000
    expect_no_rejection(place(engine, "s", "BTC-USD", "sell", "0.5", type="market"))
    valuation = views.account_valuation(engine, "s")
    assert (valuation.cash, valuation.holdings, valuation.equity) == (13_193_600, 3_200_000, 16_393_600)
    assert convert.account_dict(engine, account_view(engine, "s"))["equity"] == "163936.00"
    expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D("64100"))))
    assert (
        convert.account_dict(engine, account_view(engine, "s"))["equity"] == "163986.00"
    )  # 131,936 + 0.5 x 64,100


def test_holdings_follow_the_mark() -> None:
    engine = spot_holder()
    for price in ("64000", "63000", "65000"):
        expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D(price))))
        assert views.account_valuation(engine, "s").equity == 10_000_000 + int(D(price) * 100)


def test_an_assessment_holding_spot_is_evaluated_when_the_mark_moves_its_holding() -> None:
    tier = TierSpec(name="t", starting_balance=D("100000"), max_daily_loss=D("0.01"))
    engine = Engine(EngineConfig(tiers={"t": tier}))
    expect_no_rejection(engine.apply(c.CreateMarket(spec=spot_spec())))
    expect_no_rejection(engine.apply(c.OpenAccount(account_id="m", owner="m")))
    for currency, amount in (("USD", "1000000"), ("BTC", "10")):
        expect_no_rejection(engine.apply(c.Deposit(account_id="m", amount=D(amount), currency=currency)))
    expect_no_rejection(
        engine.apply(c.OpenAccount(account_id="p", owner="p", kind=AccountKind.ASSESSMENT, tier="t"))
    )
    expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "1", "64000"))
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "2", "64010"))
    expect_no_rejection(place(engine, "p", "BTC-USD", "buy", "1", "64010"))  # taker fee 128.02
    assert not of_type(engine.apply(c.MarkPrice(market="BTC-USD", price=D("63200"))), ev.AssessmentFailed)
    events = expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D("61000"))))
    failed = one(events, ev.AssessmentFailed)
    assert (failed.rule, failed.equity, failed.floor) == ("max_daily_loss", 9_686_198, 9_900_000)
    # closed against the bid at 64,000.00 (fee 128.00), a real trade; nothing at the mark
    assert [(t.price, t.quantity) for t in of_type(events, ev.TradeExecuted)] == [(6_400_000, 10_000)]
    assert engine.accounts["p"].balances["USD"].total == 10_000_000 - 6_401_000 - 12_802 + 6_400_000 - 12_800
    assert engine.accounts["p"].balances["BTC"].total == 0


def test_money_in_refusals_is_in_the_currency_units_with_what_is_available() -> None:
    engine = engine_with(spot_spec(maker_fee=D("0.01"), taker_fee=D("0.01")), accounts={"a": {"USD": "2500"}})
    refused = one(place(engine, "a", "BTC-USD", "buy", "1", "3000"), ev.OrderRejected)
    assert (refused.code, refused.reason) == (
        "insufficient_balance",
        "the order needs 3,030.00 USD, 2,500.00 available",
    )
    withdrawal = one(engine.apply(c.Withdraw(account_id="a", amount=D("3000.5"))), ev.CommandRejected)
    assert withdrawal.reason == "the withdrawal needs 3,000.50 USD, 2,500.00 available"
    assert format_money(303_000_001, "USD", 2) == "3,030,000.01 USD"
    assert format_money(5, "BTC", 8) == "0.00000005 BTC"


def test_a_floor_refusal_names_the_equity_and_the_floor_in_the_currency_units() -> None:
    tier = TierSpec(name="t", starting_balance=D("10000"), max_total_loss=D("0.001"), max_daily_loss=D("0"))
    engine = Engine(EngineConfig(tiers={"t": tier}))
    spec = perp_spec(
        venue=Venue.QUOTE,
        tick_size=D("1"),
        lot_size=D("0.01"),
        taker_fee=D("0"),
        slippage=D("0"),
        max_leverage=D("100"),
        quote_max_age_ms=10**12,
    )
    expect_no_rejection(engine.apply(c.CreateMarket(spec=spec)))
    expect_no_rejection(engine.apply(c.Quote(market="BTC-PERP", bid=D("9990"), ask=D("10010"))))
    expect_no_rejection(
        engine.apply(c.OpenAccount(account_id="p", owner="p", kind=AccountKind.ASSESSMENT, tier="t"))
    )
    refused = one(place(engine, "p", "BTC-PERP", "buy", "2", type="market"), ev.OrderRejected)
    assert (refused.code, refused.reason) == (
        "drawdown_violation",
        "the fill would take equity to 9,980.00 USD, below the drawdown floor 9,990.00 USD",
    )
