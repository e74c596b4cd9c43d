"""Every invalid command is refused with its stable code and leaves the state byte-for-byte unchanged."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.engine_support import binary_spec, engine_with, order_id, perp_spec, place, spot_spec
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import AccountKind, MarketStatus
from tradehall.engine import Engine


def seeded_engine() -> Engine:
    engine = engine_with(
        spot_spec(),
        perp_spec(),
        binary_spec(),
        spot_spec("HALTED-USD", base="ETH"),
        accounts={"a": {"USD": "1000", "BTC": "1"}, "b": {"USD": "1000"}},
    )
    engine.apply(c.SetMarketStatus(market="HALTED-USD", status=MarketStatus.HALTED))
    place(engine, "a", "BTC-USD", "sell", "0.01", "50000")
    place(engine, "b", "BTC-USD", "buy", "0.001", "40000")
    return engine


def order(**fields: object) -> c.PlaceOrder:
    base: dict[str, object] = {
        "account_id": "a",
        "market": "BTC-USD",
        "side": "buy",
        "quantity": D("0.001"),
        "price": D("100"),
    }
    base.update(fields)
    return c.PlaceOrder(**base)  # type: ignore[arg-type]


BAD_ORDERS = [
    ("unknown market", order(market="NOPE"), "not_found"),
    ("unknown account", order(account_id="ghost"), "not_found"),
    ("system account", order(account_id="system:fees"), "not_found"),
    ("halted market", order(market="HALTED-USD"), "market_closed"),
    ("long on spot", order(side="long"), "invalid_order"),
    ("yes on perp", order(market="BTC-PERP", side="yes", price=D("100")), "invalid_order"),
    (
        "short on binary",
        order(market="FED-CUT", side="short", quantity=D("1"), price=D("0.5")),
        "invalid_order",
    ),
    ("unknown side", order(side="sideways"), "invalid_order"),
    ("unknown type", order(type="iceberg"), "invalid_order"),
    ("zero quantity", order(quantity=D("0")), "invalid_order"),
    ("negative quantity", order(quantity=D("-0.001")), "invalid_order"),
    ("quantity off the lot", order(quantity=D("0.00015")), "invalid_order"),
    ("not a number", order(quantity="abc"), "invalid_order"),
    ("infinite quantity", order(quantity=D("Infinity")), "invalid_order"),
    ("price off the tick", order(price=D("100.001")), "invalid_order"),
    ("negative price", order(price=D("-1")), "invalid_order"),
    ("zero price", order(price=D("0")), "invalid_order"),
    ("limit without price", order(price=None), "invalid_order"),
    ("market with price", order(type="market"), "invalid_order"),
    ("stop without stop price", order(type="stop", price=None), "invalid_order"),
    (
        "binary price of one",
        order(market="FED-CUT", side="yes", quantity=D("1"), price=D("1")),
        "invalid_order",
    ),
    ("gtd in the past", order(time_in_force="gtd", expire_at=0), "invalid_order"),
    ("gtd without expiry", order(time_in_force="gtd"), "invalid_order"),
    ("expire_at on gtc", order(expire_at=10**20), "invalid_order"),
    ("post only ioc", order(post_only=True, time_in_force="ioc"), "invalid_order"),
    ("post only crossing", order(post_only=True, price=D("60000")), "invalid_order"),
    ("reduce only on spot", order(reduce_only=True), "invalid_order"),
    (
        "reduce only without position",
        order(market="BTC-PERP", side="sell", price=D("100"), reduce_only=True),
        "invalid_order",
    ),
    ("day market order", order(type="market", price=None, time_in_force="day"), "invalid_order"),
    ("insufficient balance", order(quantity=D("1"), price=D("60000")), "insufficient_balance"),
    ("empty client order id", order(client_order_id=""), "invalid_order"),
]


@pytest.mark.parametrize(
    ("command", "code"), [(cmd, code) for _, cmd, code in BAD_ORDERS], ids=[name for name, _, _ in BAD_ORDERS]
)
def test_bad_order_is_rejected_with_its_code_and_changes_nothing(command: c.PlaceOrder, code: str) -> None:
    engine = seeded_engine()
    before = engine.state_hash()
    events = engine.apply(command)
    assert len(events) == 1 and isinstance(events[0], ev.OrderRejected), events
    assert events[0].code == code
    assert engine.state_hash() == before


BAD_COMMANDS = [
    ("cancel unknown order", c.CancelOrder(order_id=12345), "not_found"),
    ("cancel another's order", c.CancelOrder(order_id=1, account_id="b"), "forbidden"),
    ("amend without changes", c.AmendOrder(order_id=1), "invalid_order"),
    ("amend off the tick", c.AmendOrder(order_id=1, price=D("1.001")), "invalid_order"),
    ("amend above balance", c.AmendOrder(order_id=2, quantity=D("1")), "insufficient_balance"),
    ("amend post-only across", c.AmendOrder(order_id=2, price=D("50000"), quantity=D("0.002")), None),
    ("cancel all unknown market", c.CancelAll(account_id="a", market="NOPE"), "not_found"),
    ("deposit zero", c.Deposit(account_id="a", amount=D("0")), "invalid_request"),
    ("deposit too precise", c.Deposit(account_id="a", amount=D("0.001")), "invalid_order"),
    ("deposit unknown account", c.Deposit(account_id="ghost", amount=D("1")), "not_found"),
    ("withdraw too much", c.Withdraw(account_id="b", amount=D("1000")), "insufficient_balance"),
    ("open existing account", c.OpenAccount(account_id="a", owner="x"), "conflict"),
    ("open system account", c.OpenAccount(account_id="system:x", owner="x"), "invalid_request"),
    (
        "open system kind",
        c.OpenAccount(account_id="z", owner="x", kind=AccountKind.SYSTEM),
        "invalid_request",
    ),
    ("create existing market", c.CreateMarket(spec=spot_spec()), "conflict"),
    ("create market zero tick", c.CreateMarket(spec=spot_spec("X-USD", tick_size=D("0"))), "invalid_request"),
    ("create spot base = quote", c.CreateMarket(spec=spot_spec("U-U", base="USD")), "invalid_request"),
    (
        "create perp without margin",
        c.CreateMarket(spec=perp_spec("P2", max_leverage=None)),
        "invalid_request",
    ),
    ("settle a spot market", c.SettleMarket(market="BTC-USD", outcome="yes"), "invalid_request"),  # type: ignore[arg-type]
    ("settle with bad outcome", c.SettleMarket(market="FED-CUT", outcome="maybe"), "invalid_order"),  # type: ignore[arg-type]
    (
        "status to settled",
        c.SetMarketStatus(market="BTC-USD", status=MarketStatus.SETTLED),
        "invalid_request",
    ),
    ("mark off the tick", c.MarkPrice(market="BTC-USD", price=D("1.001")), "invalid_order"),
    ("mark on unknown market", c.MarkPrice(market="NOPE", price=D("1")), "not_found"),
    ("crossed quote", c.Quote(market="BTC-USD", bid=D("2"), ask=D("1")), "invalid_request"),
]


@pytest.mark.parametrize(
    ("command", "code"),
    [(cmd, code) for _, cmd, code in BAD_COMMANDS],
    ids=[name for name, _, _ in BAD_COMMANDS],
)
def test_bad_command_is_rejected_with_its_code_and_changes_nothing(
    command: c.Command, code: str | None
) -> None:
    engine = seeded_engine()
    if code is None:  # the amend scenario needs a post-only resting order first
        oid = order_id(place(engine, "b", "BTC-USD", "buy", "0.001", "39000", post_only=True))
        command = c.AmendOrder(order_id=oid, price=D("50000"))
        code = "invalid_order"
    before = engine.state_hash()
    events = engine.apply(command)
    assert len(events) == 1 and isinstance(events[0], ev.CommandRejected | ev.OrderRejected), events
    assert events[0].code == code
    assert engine.state_hash() == before


def test_amend_of_a_closed_order_is_a_conflict() -> None:
    engine = seeded_engine()
    place(engine, "b", "BTC-USD", "buy", "0.01", "50000")  # fills order 1 completely
    before = engine.state_hash()
    events = engine.apply(c.AmendOrder(order_id=1, quantity=D("0.02")))
    assert isinstance(events[0], ev.CommandRejected) and events[0].code == "conflict"
    assert engine.state_hash() == before


def test_unhashable_or_signalling_nan_values_are_refused_not_crashed() -> None:
    engine = seeded_engine()
    before = engine.state_hash()
    for bad in (D("sNaN"), D("NaN"), ["1"], None):
        events = engine.apply(order(price=bad) if bad is not None else order(quantity=bad))
        assert isinstance(events[0], ev.OrderRejected) and events[0].code == "invalid_order"
    assert engine.state_hash() == before


def test_values_beyond_the_journal_scale_are_refused() -> None:
    engine = seeded_engine()
    before = engine.state_hash()
    assert one_code(engine.apply(order(quantity=D("1e30")))) == "invalid_order"
    assert one_code(engine.apply(order(price=D("1e30")))) == "invalid_order"
    assert one_code(engine.apply(c.Deposit(account_id="a", amount=D("1e30")))) == "invalid_order"
    assert one_code(engine.apply(c.MarkPrice(market="BTC-USD", price=D("1e30")))) == "invalid_order"
    assert engine.state_hash() == before


def one_code(events: list[ev.AnyEvent]) -> str:
    assert len(events) == 1 and isinstance(events[0], ev.OrderRejected | ev.CommandRejected), events
    return events[0].code
