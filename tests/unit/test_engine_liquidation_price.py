"""Liquidation on exact figures, and `liquidation_price` as the first tick at which it happens.

The rule: a perp account is liquidated when its exact equity is at or below its exact maintenance
margin (no rounding of either before the comparison). `liquidation_price` is the first tick price of
the position's market at which that holds, the other marks fixed: a long's exact boundary floored to
the tick, a short's ceiled. A mark one tick short of it leaves the position alone; a mark at it
liquidates. Reference figures are computed here with `fractions.Fraction`, outside the engine.
"""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction
from math import ceil, floor

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.engine_support import engine_with, expect_no_rejection, of_type, perp_spec, place, spot_spec
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.engine import Engine, views


def opened(
    side: str,
    quantity: str,
    entry: str,
    deposit: str,
    tick: str,
    lot: str,
    initial: str,
    maintenance: str,
) -> Engine:
    """Account `a` holds `quantity` of BTC-PERP from `entry` (no fees), `b` the other side."""
    spec = perp_spec(
        tick_size=D(tick),
        lot_size=D(lot),
        taker_fee=D(0),
        maker_fee=D(0),
        max_leverage=None,
        initial_margin=D(initial),
        maintenance_margin=D(maintenance),
    )
    engine = engine_with(spec, accounts={"a": {"USD": deposit}, "b": {"USD": "100000000"}})
    other = "short" if side == "long" else "long"
    expect_no_rejection(place(engine, "b", "BTC-PERP", other, quantity, entry))
    expect_no_rejection(place(engine, "a", "BTC-PERP", side, quantity, entry))
    return engine


def set_mark(engine: Engine, price: D) -> list[ev.AnyEvent]:
    return expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-PERP", price=price)))


def liquidated(events: list[ev.AnyEvent]) -> bool:
    return any(e.account_id == "a" for e in of_type(events, ev.PositionLiquidated))


def shown_liquidation_price(engine: Engine) -> D | None:
    position = views.position(engine, "a", "BTC-PERP")
    assert position is not None
    if position.liquidation_price is None:
        return None
    return position.liquidation_price * position.spec.tick_size


def long_at_the_issue_figures() -> Engine:
    # 0.175 BTC long from 17,000.5 with 287.91 USD; maintenance 5 %. At a mark of 16,163.5:
    # equity 287.91 - 0.175 x 837 = 141.435, maintenance 0.05 x 0.175 x 16,163.5 = 141.430625.
    return opened("long", "0.175", "17000.5", "287.91", "0.5", "0.001", "0.06", "0.05")


def short_at_the_issue_figures() -> Engine:
    # 0.026 BTC short from 44,273.26 with 50.11 USD; maintenance 0.4 %: equity meets maintenance at
    # (50.11 + 0.026 x 44,273.26) / (0.026 x 1.004) = 46,016.50168...
    return opened("short", "0.026", "44273.26", "50.11", "0.01", "0.001", "0.01", "0.004")


def test_a_long_with_equity_above_maintenance_by_less_than_a_cent_is_not_liquidated() -> None:
    engine = long_at_the_issue_figures()
    assert not liquidated(set_mark(engine, D("16163.5")))
    valuation = views.account_valuation(engine, "a")
    cents = 100 * valuation.scale  # the exact figures are in minor units (cents) over the scale
    assert Fraction(valuation.exact_equity, cents) == Fraction("141.435")
    assert Fraction(valuation.exact_maintenance, cents) == Fraction("141.430625")
    # shown in cents, in the venue's favour: equity down, maintenance up
    assert (valuation.equity, valuation.maintenance) == (14_143, 14_144)
    # exact boundary (287.91 - 0.175 x 17,000.5) / (0.175 x 0.95) = 16,163.4736...: floored to the 0.5 tick
    assert shown_liquidation_price(engine) == D("16163.0")
    assert liquidated(set_mark(engine, D("16163.0")))
    assert engine.markets["BTC-PERP"].positions["a"].quantity == 0


def test_a_short_is_liquidated_at_its_exact_price_ceiled_to_the_tick_not_a_tick_before() -> None:
    engine = short_at_the_issue_figures()
    assert shown_liquidation_price(engine) == D("46016.51")
    assert not liquidated(set_mark(engine, D("46016.50")))
    assert shown_liquidation_price(engine) == D("46016.51")  # a mark of its own market does not move it
    assert liquidated(set_mark(engine, D("46016.51")))
    assert shown_liquidation_price(engine) is None


def test_equity_exactly_at_maintenance_liquidates() -> None:
    # 1 BTC long from 10,000 with 1,009 USD, maintenance 10 %: equity(p) = 1,009 + p - 10,000 meets
    # maintenance 0.1 p exactly at p = 9,990 (999 = 999), a whole tick
    engine = opened("long", "1", "10000", "1009", "1", "1", "0.1", "0.1")
    assert shown_liquidation_price(engine) == D("9990")
    assert not liquidated(set_mark(engine, D("9991")))  # 1,000 > 999.1
    assert liquidated(set_mark(engine, D("9990")))


def test_the_liquidation_price_follows_fills_funding_and_balance_changes() -> None:
    engine = long_at_the_issue_figures()
    set_mark(engine, D("16500"))

    def reference() -> D:
        a = engine.accounts["a"]
        position = a.positions["BTC-PERP"]
        cash = Fraction(a.balance("USD").total, 100)
        quantity = Fraction(position.quantity, 1000)
        entry_value = Fraction(position.cost, 2 * 1000)  # tick-lots of 0.5 x 0.001
        # cash + q p - entry_value = 0.05 q p
        boundary = (entry_value - cash) / (quantity * Fraction(95, 100))
        return D(floor(boundary * 2)) / 2

    before = shown_liquidation_price(engine)
    assert before == reference() == D("16163.0")
    expect_no_rejection(engine.apply(c.Deposit(account_id="a", amount=D("10"))))
    assert shown_liquidation_price(engine) == reference() == D("16103.0")
    expect_no_rejection(engine.apply(c.ApplyFunding(market="BTC-PERP", rate=D("0.001"))))  # a long pays
    assert shown_liquidation_price(engine) == reference() == D("16120.5")
    expect_no_rejection(place(engine, "b", "BTC-PERP", "long", "0.075", "16500"))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "short", "0.075", "16500"))  # a partial close
    assert engine.markets["BTC-PERP"].positions["a"].quantity == 100
    assert shown_liquidation_price(engine) == reference()


SPECS = st.sampled_from(
    [
        ("0.5", "0.001", "0.1", "0.05"),
        ("0.01", "0.001", "0.01", "0.004"),
        ("0.1", "0.01", "0.05", "0.025"),
        ("1", "1", "0.2", "0.1"),
        ("0.25", "0.1", "0.03", "0.0065"),
    ]
)


@settings(max_examples=120, deadline=None)
@given(
    spec=SPECS,
    side=st.sampled_from(["long", "short"]),
    lots=st.integers(min_value=1, max_value=400),
    entry_ticks=st.integers(min_value=200, max_value=200_000),
    spare_cents=st.integers(min_value=0, max_value=5_000_000),
)
def test_liquidation_happens_iff_exact_equity_is_at_or_below_exact_maintenance_and_the_price_is_the_boundary(
    spec: tuple[str, str, str, str], side: str, lots: int, entry_ticks: int, spare_cents: int
) -> None:
    tick, lot, initial, maintenance = (Fraction(x) for x in spec)
    quantity = lots * lot
    entry = entry_ticks * tick
    margin = Fraction(ceil(initial * quantity * entry * 100) + 2, 100)  # the hold rounds up twice
    deposit = margin + Fraction(spare_cents, 100)
    engine = opened(
        side,
        str(D(quantity.numerator) / D(quantity.denominator)),
        str(D(entry.numerator) / D(entry.denominator)),
        str(D(deposit.numerator) / D(deposit.denominator)),
        *spec,
    )
    signed = quantity if side == "long" else -quantity

    def exactly_liquidated(price: Fraction) -> bool:
        equity = deposit + signed * (price - entry)
        return equity <= maintenance * quantity * price

    # the boundary where equity meets maintenance: deposit + q (p - entry) = mm |q| p
    boundary = (signed * entry - deposit) / (signed - maintenance * quantity)
    if side == "long":
        first = floor(boundary / tick)
        expected = first if first > 0 else None
    else:
        expected = ceil(boundary / tick)
    position = views.position(engine, "a", "BTC-PERP")
    assert position is not None
    assert position.liquidation_price == expected
    if expected is None:
        return
    assert exactly_liquidated(expected * tick)
    step = -1 if side == "short" else 1
    survivor = expected + step
    assert not exactly_liquidated(survivor * tick)
    events = set_mark(engine, D(str(survivor)) * D(spec[0]))
    assert not liquidated(events)
    assert views.position(engine, "a", "BTC-PERP") is not None
    assert engine.liquidation_price("a", "BTC-PERP") == expected
    assert liquidated(set_mark(engine, D(str(expected)) * D(spec[0])))
    assert engine.markets["BTC-PERP"].positions["a"].quantity == 0


@settings(max_examples=80, deadline=None)
@given(
    side=st.sampled_from(["long", "short"]),
    lots=st.integers(min_value=1, max_value=300),
    entry_ticks=st.integers(min_value=2_000, max_value=200_000),
    other_side=st.sampled_from(["long", "short"]),
    other_lots=st.integers(min_value=1, max_value=300),
    other_entry=st.integers(min_value=1_000, max_value=500_000),
    other_move_ppm=st.integers(min_value=-80_000, max_value=80_000),
    held_units=st.integers(min_value=1, max_value=5_000),
    spare_cents=st.integers(min_value=0, max_value=2_000_000),
)
def test_the_liquidation_price_holds_the_other_positions_and_holdings_at_their_marks(
    side: str,
    lots: int,
    entry_ticks: int,
    other_side: str,
    other_lots: int,
    other_entry: int,
    other_move_ppm: int,
    held_units: int,
    spare_cents: int,
) -> None:
    """An account with a second perp position (ETH-PERP, at a moved mark) and a spot holding (SOL at
    its mark): BTC-PERP's liquidation price is the boundary tick with everything else fixed, and the
    trigger agrees with it, exactly."""
    btc_tick, btc_lot, btc_im, btc_mm = Fraction("0.5"), Fraction("0.001"), Fraction("0.1"), Fraction("0.05")
    eth_tick, eth_lot, eth_im, eth_mm = (
        Fraction("0.01"),
        Fraction("0.01"),
        Fraction("0.05"),
        Fraction("0.025"),
    )
    s1 = lots * btc_lot * (1 if side == "long" else -1)
    e1 = entry_ticks * btc_tick
    s2 = other_lots * eth_lot * (1 if other_side == "long" else -1)
    e2 = other_entry * eth_tick
    m2 = max(1, other_entry + other_entry * other_move_ppm // 1_000_000) * eth_tick
    held = Fraction(held_units, 100)  # SOL units
    m3 = Fraction("23.45")
    margin = ceil((btc_im * abs(s1) * e1 + eth_im * abs(s2) * e2) * 100) + 4
    cash = Fraction(margin + spare_cents, 100)

    def equity_less_maintenance(p: Fraction, eth_mark: Fraction) -> Fraction:
        equity = cash + s1 * (p - e1) + s2 * (eth_mark - e2) + held * m3
        return equity - btc_mm * abs(s1) * p - eth_mm * abs(s2) * eth_mark

    # neither the open with ETH at its entry nor the final ETH mark may liquidate already
    assume(equity_less_maintenance(e1, e2) > 0 and equity_less_maintenance(e1, m2) > 0)

    def dec(value: Fraction) -> D:
        return D(value.numerator) / D(value.denominator)

    engine = engine_with(
        perp_spec(
            tick_size=D("0.5"),
            lot_size=D("0.001"),
            taker_fee=D(0),
            maker_fee=D(0),
            max_leverage=None,
            initial_margin=D("0.1"),
            maintenance_margin=D("0.05"),
        ),
        perp_spec(
            "ETH-PERP",
            base="ETH",
            tick_size=D("0.01"),
            lot_size=D("0.01"),
            taker_fee=D(0),
            maker_fee=D(0),
            max_leverage=None,
            initial_margin=D("0.05"),
            maintenance_margin=D("0.025"),
        ),
        spot_spec("SOL-USD", base="SOL", tick_size=D("0.01"), lot_size=D("0.01")),
        accounts={"a": {"USD": str(dec(cash)), "SOL": str(dec(held))}, "b": {"USD": "1000000000"}},
    )
    for market, signed, entry in (("BTC-PERP", s1, e1), ("ETH-PERP", s2, e2)):
        mine, theirs = ("long", "short") if signed > 0 else ("short", "long")
        expect_no_rejection(place(engine, "b", market, theirs, str(dec(abs(signed))), str(dec(entry))))
        expect_no_rejection(place(engine, "a", market, mine, str(dec(abs(signed))), str(dec(entry))))
    expect_no_rejection(engine.apply(c.MarkPrice(market="SOL-USD", price=dec(m3))))
    expect_no_rejection(engine.apply(c.MarkPrice(market="ETH-PERP", price=dec(m2))))
    assert engine.markets["BTC-PERP"].positions["a"].quantity == lots * (1 if side == "long" else -1)

    # equity_less_maintenance(p) is linear in p: its root, floored (long) or ceiled (short) to the tick
    at_zero = equity_less_maintenance(Fraction(0), m2)
    slope = equity_less_maintenance(Fraction(1), m2) - at_zero
    boundary = -at_zero / slope
    expected = floor(boundary / btc_tick) if side == "long" else ceil(boundary / btc_tick)
    if expected <= 0:
        assert engine.liquidation_price("a", "BTC-PERP") is None
        return
    assert engine.liquidation_price("a", "BTC-PERP") == expected
    assert equity_less_maintenance(expected * btc_tick, m2) <= 0
    survivor = expected + (1 if side == "long" else -1)
    assert equity_less_maintenance(survivor * btc_tick, m2) > 0
    assert not liquidated(set_mark(engine, dec(survivor * btc_tick)))
    assert engine.liquidation_price("a", "BTC-PERP") == expected
    assert liquidated(set_mark(engine, dec(expected * btc_tick)))
