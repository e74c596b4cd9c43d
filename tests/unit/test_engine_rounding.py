"""Rounding in the venue's favour, with the exact figures of issue 21 (items 1-3).

Credits to a user are rounded down, debits up, in the currency's minor unit; the residue accrues to
`system:rounding`. A position's realised P&L is exact over its life (posted as the floor of the
cumulative amount less what was already posted); its cost is exact, so the average entry does not
drift; funding rates carry 8 decimals.
"""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import msgspec
import pytest

from tests.engine_support import (
    balance,
    engine_with,
    expect_no_rejection,
    of_type,
    one,
    perp_spec,
    place,
    spot_spec,
)
from tradehall.api.convert import position_dict
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import CostBasis
from tradehall.engine import Engine, views
from tradehall.engine.ledger import SYSTEM_EXTERNAL, SYSTEM_PERP_SETTLEMENT, SYSTEM_ROUNDING

NO_FEES = {"maker_fee": D("0"), "taker_fee": D("0")}


def cash(engine: Engine, account: str) -> int:
    return balance(engine, account)[0] if account in engine.accounts else 0


def assert_conserved(engine: Engine) -> None:
    """Double entry, and no balance below zero but the outside world's."""
    assert all(total == 0 for total in engine.ledger.totals().values())
    for account_id, account in engine.accounts.items():
        if account_id != SYSTEM_EXTERNAL:
            assert all(b.total >= 0 for b in account.balances.values()), account_id


def fills(events: list[ev.AnyEvent]) -> dict[str, int]:
    """Realised P&L posted per account by these events' fills."""
    found: dict[str, int] = {}
    for fill in of_type(events, ev.OrderFilled):
        found[fill.account_id] = found.get(fill.account_id, 0) + fill.realized_pnl
    return found


def test_closing_perps_creates_no_money_each_side_rounds_against_itself() -> None:
    """Issue 21 item 1: a's +0.006 and b's and c's -0.003 each. Before: a +0.01, b and c 0.00, and
    clearing ended at -0.01 with nothing open. Now a is paid 0.00 (credit down), b and c pay 0.01
    each (debits up), and the 0.02 left in clearing goes to `system:rounding` once the market is flat."""
    engine = engine_with(perp_spec(**NO_FEES), accounts={a: {"USD": "1000"} for a in "abcd"})
    expect_no_rejection(place(engine, "b", "BTC-PERP", "sell", "0.001", "100"))
    expect_no_rejection(place(engine, "c", "BTC-PERP", "sell", "0.001", "100"))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "buy", "0.002", "100"))
    expect_no_rejection(place(engine, "d", "BTC-PERP", "buy", "0.002", "103"))
    closing = expect_no_rejection(place(engine, "a", "BTC-PERP", "sell", "0.002", "103"))
    assert fills(closing) == {"a": 0, "d": 0}  # a's exact +0.006 posts floor(0.6 cents) = 0
    expect_no_rejection(place(engine, "d", "BTC-PERP", "sell", "0.002", "103"))
    events = expect_no_rejection(place(engine, "b", "BTC-PERP", "buy", "0.001", "103"))
    assert fills(events) == {"b": -1, "d": 0}  # -0.003 -> -0.01
    assert cash(engine, SYSTEM_ROUNDING) == 0  # c still short: clearing holds the open P&L
    events = expect_no_rejection(place(engine, "c", "BTC-PERP", "buy", "0.001", "103"))
    assert fills(events) == {"c": -1, "d": 0}
    assert {a: cash(engine, a) for a in "abcd"} == {"a": 100_000, "b": 99_999, "c": 99_999, "d": 100_000}
    assert cash(engine, SYSTEM_PERP_SETTLEMENT) == 0  # nothing open: clearing is empty
    assert cash(engine, SYSTEM_ROUNDING) == 2
    assert all(p.quantity == 0 for p in engine.markets["BTC-PERP"].positions.values())
    assert_conserved(engine)


def test_a_position_built_and_closed_in_pieces_pays_the_floor_of_its_exact_total() -> None:
    """Seven buys and five sells at odd prices: the fills' realised P&L sum to floor(total), not to
    the sum of per-fill roundings, and a flip ends one life and starts the next."""
    engine = engine_with(perp_spec(**NO_FEES), accounts={"a": {"USD": "10000"}, "mm": {"USD": "10000"}})
    steps = [
        ("buy", "0.003", "100.5"),
        ("buy", "0.001", "101"),
        ("sell", "0.001", "101.5"),
        ("buy", "0.002", "99.5"),
        ("sell", "0.002", "102"),
        ("sell", "0.001", "100"),
        ("buy", "0.001", "103.5"),
        ("sell", "0.003", "104"),
        ("sell", "0.001", "98.5"),
        ("buy", "0.001", "97"),  # the sell before flipped: a is flat after this buy
    ]
    posted = []
    for side, quantity, price in steps:
        maker_side = "sell" if side == "buy" else "buy"
        expect_no_rejection(place(engine, "mm", "BTC-PERP", maker_side, quantity, price))
        events = expect_no_rejection(place(engine, "a", "BTC-PERP", side, quantity, price))
        posted.append(fills(events)["a"])
    position = engine.markets["BTC-PERP"].positions["a"]
    assert position.quantity == 0
    # the first life: +3 +1 lots, -1, +2, -2, -1, +1, -3: flat; its exact P&L (average cost) in USD
    lots, cost, life = 0, Fraction(0), Fraction(0)
    for side, quantity, price in steps[:8]:
        q, p = int(D(quantity) * 1000), Fraction(D(price))
        if side == "buy":
            lots, cost = lots + q, cost + q * p
        else:
            life += q * p - cost * q / lots
            cost -= cost * q / lots
            lots -= q
    assert lots == 0
    life_usd = life / 1000
    assert life_usd == Fraction("0.0125")  # 1.25 cents
    assert sum(posted[:8]) == 1  # floor(1.25 cents), whatever the pieces
    # the second life: short 0.001 at 98.5 bought back at 97: +0.0015 -> 0.00
    assert posted[8:] == [0, 0]
    assert position.realized == 0
    assert_conserved(engine)


def test_average_entry_stays_exact_over_partial_closes() -> None:
    """Issue 21 item 2: the cost removed on a partial close is exact, so the average entry is
    unchanged by closes. Before, it drifted: 70613 tick-lots for 7 lots less floor(70613 x 2 / 7)
    left 50438 for 5, less floor(50438 / 5) left 40351 for 4: 100.8775 against 100.875714."""
    engine = engine_with(
        perp_spec(tick_size=D("0.01"), **NO_FEES), accounts={"a": {"USD": "10000"}, "mm": {"USD": "10000"}}
    )
    for side, quantity, price in [
        ("buy", "0.003", "100.87"),
        ("buy", "0.004", "100.88"),
        ("sell", "0.002", "101.00"),
        ("sell", "0.001", "100.50"),
    ]:
        maker_side = "sell" if side == "buy" else "buy"
        expect_no_rejection(place(engine, "mm", "BTC-PERP", maker_side, quantity, price))
        expect_no_rejection(place(engine, "a", "BTC-PERP", side, quantity, price))
    view = views.position(engine, "a", "BTC-PERP")
    assert view is not None
    exact = Fraction(3 * 10087 + 4 * 10088, 7)  # ticks: 100.875714285...
    assert (view.quantity, view.cost, view.cost_remainder, view.cost_denominator) == (4, 40350, 2, 7)
    assert Fraction(view.cost * 7 + view.cost_remainder, 7) == exact * 4
    assert position_dict(view)["average_entry_price"] == "100.875714"
    # another buy moves the average exactly: (4 x 100.875714285 + 2 x 100.90) / 6
    expect_no_rejection(place(engine, "mm", "BTC-PERP", "sell", "0.002", "100.90"))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "buy", "0.002", "100.90"))
    view = views.position(engine, "a", "BTC-PERP")
    assert view is not None
    assert position_dict(view)["average_entry_price"] == "100.88381"  # 100.88380952...


@pytest.mark.parametrize("method", [CostBasis.FIFO, CostBasis.LIFO])
def test_fifo_and_lifo_costs_stay_whole(method: CostBasis) -> None:
    engine = engine_with(perp_spec(**NO_FEES), accounts={"mm": {"USD": "10000"}})
    expect_no_rejection(engine.apply(c.OpenAccount(account_id="a", owner="a", cost_basis=method)))
    expect_no_rejection(engine.apply(c.Deposit(account_id="a", amount=D(10000), currency="USD")))
    for side, quantity, price in [
        ("buy", "0.003", "100.5"),
        ("buy", "0.004", "101"),
        ("sell", "0.002", "102"),
    ]:
        maker_side = "sell" if side == "buy" else "buy"
        expect_no_rejection(place(engine, "mm", "BTC-PERP", maker_side, quantity, price))
        events = expect_no_rejection(place(engine, "a", "BTC-PERP", side, quantity, price))
    position = engine.markets["BTC-PERP"].positions["a"]
    # FIFO sells two of the 100.5 lots (+0.003), LIFO two of the 101 lots (+0.002)
    expected = (201 + 202 * 4, 3) if method is CostBasis.FIFO else (201 * 3 + 202 * 2, 2)
    assert (position.cost, position.cost_rem, position.cost_den) == (expected[0], 0, 1)
    assert fills(events)["a"] == 0  # +0.3 or +0.2 cents, rounded down
    assert position.flow == -(201 * 3 + 202 * 4) + 204 * 2


def test_funding_payers_round_up_receivers_down_and_the_residue_is_the_venues() -> None:
    """Issue 21 item 1: a payer's 0.010001 was 0.01 and two receivers' 0.0050005 were 0.01 each.
    Now the payer pays 0.02, the receivers get 0.00, and 0.02 goes to `system:rounding`."""
    engine = engine_with(perp_spec(**NO_FEES), accounts={a: {"USD": "1000"} for a in "abc"})
    expect_no_rejection(place(engine, "b", "BTC-PERP", "sell", "0.001", "100"))
    expect_no_rejection(place(engine, "c", "BTC-PERP", "sell", "0.001", "100"))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "buy", "0.002", "100"))
    expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-PERP", price=D("100"))))
    events = expect_no_rejection(engine.apply(c.ApplyFunding(market="BTC-PERP", rate=D("0.050005"))))
    paid = one(events, ev.FundingPaid)
    assert (paid.rate_e8, paid.rate_units, paid.payments) == (5_000_500, 5_000_500, (("a", 2),))
    assert {a: cash(engine, a) for a in "abc"} == {"a": 99_998, "b": 100_000, "c": 100_000}
    assert (cash(engine, SYSTEM_PERP_SETTLEMENT), cash(engine, SYSTEM_ROUNDING)) == (0, 2)
    assert_conserved(engine)


def test_funding_rates_carry_8_decimals_and_finer_is_refused() -> None:
    """Issue 21 item 3: 0.00019999 on 1 BTC at 10,700 is 2.1398930: the long pays 2.14 (it paid 2.13
    when the rate was cut to 0.000199), the short gets 2.13. 0.000000499 is refused, not paid as 0."""
    engine = engine_with(perp_spec(**NO_FEES), accounts={a: {"USD": "100000"} for a in "ab"})
    expect_no_rejection(place(engine, "b", "BTC-PERP", "sell", "1", "10700"))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "buy", "1", "10700"))
    expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-PERP", price=D("10700"))))
    events = expect_no_rejection(engine.apply(c.ApplyFunding(market="BTC-PERP", rate=D("0.00019999"))))
    assert one(events, ev.FundingPaid).payments == (("a", 214), ("b", -213))
    assert (cash(engine, "a"), cash(engine, "b"), cash(engine, SYSTEM_ROUNDING)) == (
        10_000_000 - 214,
        10_000_000 + 213,
        1,
    )
    refused = engine.apply(c.ApplyFunding(market="BTC-PERP", rate=D("0.000000499")))
    rejection = one(refused, ev.CommandRejected)
    assert rejection.code == "invalid_order" and "more than 8 decimals" in rejection.reason
    assert len(refused) == 1  # nothing else changed
    events = expect_no_rejection(engine.apply(c.ApplyFunding(market="BTC-PERP", rate=D("0.00000049"))))
    # 10,700 x 0.00000049 = 0.005243: the long pays 0.01, the short gets 0.00
    assert one(events, ev.FundingPaid).payments == (("a", 1),)
    assert cash(engine, SYSTEM_ROUNDING) == 2
    assert_conserved(engine)


def test_a_spot_buyer_pays_the_notional_rounded_up_once_per_order_and_the_seller_gets_it_down() -> None:
    """Tick 0.01 x lot 0.0001 is a hundredth of a cent: three fills of 0.0001 at 100.05 are 1.0005
    cents each. The buyer's order pays the ceiling of its 3.0015 cents, 4 (not 3 x 2); each seller's
    order gets the floor of its 1.0005, 1; `system:rounding` keeps the 1 cent between."""
    engine = engine_with(
        spot_spec(**NO_FEES),
        accounts={"buyer": {"USD": "100"}} | {s: {"BTC": "1"} for s in ("s1", "s2", "s3")},
    )
    for seller in ("s1", "s2", "s3"):
        expect_no_rejection(place(engine, seller, "BTC-USD", "sell", "0.0001", "100.05"))
    events = expect_no_rejection(place(engine, "buyer", "BTC-USD", "buy", "0.0003", "100.05"))
    assert [(f.account_id, f.cash) for f in of_type(events, ev.OrderFilled)] == [
        ("s1", 1),
        ("buyer", 2),
        ("s2", 1),
        ("buyer", 1),
        ("s3", 1),
        ("buyer", 1),
    ]
    assert balance(engine, "buyer") == (10_000 - 4, 0)
    assert [cash(engine, s) for s in ("s1", "s2", "s3")] == [1, 1, 1]
    assert cash(engine, SYSTEM_ROUNDING) == 1
    assert_conserved(engine)


def test_a_fee_is_the_rate_times_the_exact_notional_rounded_up() -> None:
    """0.1 % of 1.0005 cents x 3 fills of one order is 0.0030015 cents: one cent once, not per fill
    and not on the rounded notional."""
    engine = engine_with(
        spot_spec(maker_fee=D("0.001"), taker_fee=D("0.001")),
        accounts={"buyer": {"USD": "100"}, "s": {"BTC": "1"}},
    )
    for _ in range(3):
        expect_no_rejection(place(engine, "s", "BTC-USD", "sell", "0.0001", "100.05"))
    events = expect_no_rejection(place(engine, "buyer", "BTC-USD", "buy", "0.0003", "100.05"))
    taker = [f.fee for f in of_type(events, ev.OrderFilled) if f.account_id == "buyer"]
    assert taker == [1, 0, 0]
    assert balance(engine, "buyer") == (10_000 - 4 - 1, 0)
    assert_conserved(engine)


def test_a_version_1_snapshot_still_loads_and_its_positions_start_a_new_life() -> None:
    """Before exact costs, a snapshot's positions had no fraction or life flow and a linear fee's
    accrued numerator was over PPM alone: both are converted on load."""
    engine = engine_with(
        perp_spec(maker_fee=D("0.0003"), taker_fee=D("0.0005")),
        accounts={"a": {"USD": "10000"}, "mm": {"USD": "10000"}},
    )
    expect_no_rejection(place(engine, "mm", "BTC-PERP", "sell", "0.003", "100.5"))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "buy", "0.003", "100.5"))
    resting = expect_no_rejection(place(engine, "mm", "BTC-PERP", "buy", "0.005", "101"))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "sell", "0.001", "101"))  # mm's order: 1 of 5 filled
    order = engine.orders[one(resting, ev.OrderAccepted).order_id]
    den = engine.markets["BTC-PERP"].terms.notional.den
    raw = msgspec.msgpack.decode(engine.snapshot())
    raw["version"] = 1
    for market in raw["markets"]:
        market.pop("clearing_pnl")
        market["positions"] = [row[:8] for row in market["positions"]]
    for raw_order in raw["orders"]:
        if raw_order["order_id"] == order.order_id:
            assert raw_order["fee_accrued"] % den == 0
            raw_order["fee_accrued"] //= den
    restored = Engine.restore(msgspec.msgpack.encode(raw))
    assert restored.orders[order.order_id].fee_accrued == order.fee_accrued
    position = restored.markets["BTC-PERP"].positions["a"]
    assert (position.quantity, position.flow, position.realized) == (2, -position.cost, 0)
    assert restored.markets["BTC-PERP"].open_lots == 4
    expect_no_rejection(place(restored, "a", "BTC-PERP", "sell", "0.002", "101"))  # closes a at +0.001
    assert restored.markets["BTC-PERP"].positions["a"].quantity == 0
    assert_conserved(restored)


def test_a_funding_event_journaled_before_8_decimal_rates_still_decodes() -> None:
    """Journals written with `rate_ppm` decode into the current event; `rate_units` reads either."""
    old = msgspec.msgpack.encode(
        {
            "event": "FundingPaid",
            "market": "BTC-PERP",
            "rate_ppm": 125,
            "mark": 200_000,
            "payments": [],
            "ts": 1,
        }
    )
    decoded = msgspec.msgpack.decode(old, type=ev.AnyEvent)
    assert isinstance(decoded, ev.FundingPaid)
    assert (decoded.rate_ppm, decoded.rate_units) == (125, 12_500)
    new = ev.FundingPaid(market="BTC-PERP", rate_e8=1_999, mark=1, payments=(), ts=1)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(new), type=ev.AnyEvent).rate_units == 1_999
