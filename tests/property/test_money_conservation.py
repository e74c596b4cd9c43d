"""Hypothesis: rounding never creates money (issue 21).

Random streams of spot, perp and binary activity with fees, marks, funding at 8-decimal rates,
deposits and withdrawals, positions built and closed in many pieces at odd prices (every cost basis),
then the binary market settled or voided and every perp position closed. After every command, per
currency: users' balances plus the system accounts but `system:external` equal deposits less
withdrawals exactly; no system account is negative except `system:external` (the outside world's
side) and perp clearing while perp positions are open (it carries their not yet realised P&L); with
no perp position open, clearing is exactly zero. Every perp position's life (flat to flat, a flip
ends one) posts exactly the floor of its exact P&L, computed here from the fills with fractions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine_support import binary_spec, engine_with, expect_no_rejection, of_type, perp_spec, spot_spec
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import CostBasis, FeeModel, Outcome
from tradehall.engine import Engine
from tradehall.engine.ledger import SYSTEM_EXTERNAL, SYSTEM_PERP_SETTLEMENT, SYSTEM_ROUNDING

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
D = Decimal
METHODS = {"a": CostBasis.AVERAGE, "b": CostBasis.FIFO, "c": CostBasis.LIFO, "d": CostBasis.AVERAGE}
PERP_TICK, PERP_LOT = D("0.5"), D("0.001")  # one tick-lot is 0.05 cents: P&L is rarely whole cents
SPOT_TICK, SPOT_LOT = D("0.01"), D("0.0001")  # one tick-lot is 0.0001 cents
MARKETS: dict[str, dict[str, Any]] = {
    "BTC-USD": {"center": 10_007, "tick": SPOT_TICK, "lots": (1, 2, 3, 7, 13)},
    "BTC-PERP": {"center": 201, "tick": PERP_TICK, "lots": (1, 2, 3, 5, 11)},
    "FED-CUT": {"center": 50, "tick": D("0.2"), "lots": (1, 2, 3)},
}


def make_engine() -> Engine:
    engine = engine_with(
        spot_spec(maker_fee=D("0.0013"), taker_fee=D("0.0027")),
        perp_spec(maker_fee=D("0.00017"), taker_fee=D("0.00053")),
        binary_spec(
            tick_size=D("0.2"),
            lot_size=D("0.05"),  # 5 cents a contract lot: a void pays half cents
            fee_model=FeeModel.PROPORTIONAL,
            maker_fee=D("0.005"),
            taker_fee=D("0.011"),
        ),
    )
    for account_id, method in METHODS.items():
        expect_no_rejection(
            engine.apply(c.OpenAccount(account_id=account_id, owner=account_id, cost_basis=method))
        )
    return engine


@st.composite
def order(draw: st.DrawFn) -> c.Command:
    market = draw(st.sampled_from(sorted(MARKETS)))
    terms = MARKETS[market]
    ticks = terms["center"] + draw(st.integers(-3, 3))
    if market == "FED-CUT":
        ticks = draw(st.integers(1, 4))  # 0.2 .. 0.8
        side = draw(st.sampled_from(("yes", "no", "buy", "sell")))
    else:
        side = draw(st.sampled_from(("buy", "sell")))
    lots = draw(st.sampled_from(terms["lots"]))
    lot = {"BTC-USD": SPOT_LOT, "BTC-PERP": PERP_LOT, "FED-CUT": D("0.05")}[market]
    return c.PlaceOrder(
        account_id=draw(st.sampled_from(sorted(METHODS))),
        market=market,
        side=side,  # type: ignore[arg-type]
        quantity=lots * lot,
        price=ticks * terms["tick"],
        time_in_force=draw(st.sampled_from(("gtc", "gtc", "ioc"))),  # type: ignore[arg-type]
    )


@st.composite
def other(draw: st.DrawFn) -> c.Command:
    choice = draw(st.integers(0, 4))
    account = draw(st.sampled_from(sorted(METHODS)))
    if choice == 0:
        ticks = MARKETS["BTC-PERP"]["center"] + draw(st.integers(-4, 4))
        return c.MarkPrice(market="BTC-PERP", price=ticks * PERP_TICK)
    if choice == 1:
        units = draw(st.integers(-99_999, 99_999))  # up to 0.00099999, 8 decimals
        return c.ApplyFunding(market="BTC-PERP", rate=D(units).scaleb(-8))
    if choice == 2:
        return c.Deposit(account_id=account, amount=D(draw(st.integers(1, 999))).scaleb(-2), currency="USD")
    if choice == 3:
        return c.Withdraw(account_id=account, amount=D(draw(st.integers(1, 999))).scaleb(-2), currency="USD")
    return c.CancelAll(account_id=account)


@dataclass
class Life:
    """A perp position's current life, from its fills: signed lots, cash flow (USD), P&L posted (cents)."""

    lots: int = 0
    flow: Fraction = Fraction(0)
    posted: int = 0


@dataclass
class Books:
    """What came in from outside per currency, and the perp lives seen so far."""

    net: dict[str, int] = field(default_factory=dict)
    lives: dict[str, Life] = field(default_factory=dict)
    ended: int = 0


def funding(engine: Engine, books: Books) -> None:
    """Every account gets money in each currency it needs: cash, and BTC to sell."""
    for account_id in METHODS:
        for currency, amount in (("USD", "100000"), ("BTC", "10")):
            expect_no_rejection(
                engine.apply(c.Deposit(account_id=account_id, amount=D(amount), currency=currency))
            )
            minor = int(D(amount) * (100 if currency == "USD" else 100_000_000))
            books.net[currency] = books.net.get(currency, 0) + minor


def follow_fills(books: Books, events: list[ev.AnyEvent]) -> None:
    """Each perp fill moves its account's life; a life that ends must have posted floor(exact P&L)."""
    for fill in of_type(events, ev.OrderFilled):
        if fill.market != "BTC-PERP":
            continue
        life = books.lives.setdefault(fill.account_id, Life())
        delta = fill.quantity if fill.side == "buy" else -fill.quantity
        price = Fraction(fill.price) * Fraction(PERP_TICK) * Fraction(PERP_LOT)  # USD per lot
        life.posted += fill.realized_pnl
        if life.lots == 0 or (life.lots > 0) == (delta > 0):
            life.lots += delta
            life.flow -= delta * price
            continue
        closing = min(abs(delta), abs(life.lots))
        sign = 1 if life.lots > 0 else -1
        life.flow += sign * closing * price
        life.lots -= sign * closing
        if life.lots == 0:
            cents = life.flow * 100
            assert life.posted == cents.numerator // cents.denominator, (fill.account_id, life)
            books.ended += 1
            rest = abs(delta) - closing
            books.lives[fill.account_id] = Life(-sign * rest, sign * rest * price, 0)


def check(engine: Engine, books: Books, command: c.Command, events: list[ev.AnyEvent]) -> None:
    rejected = any(isinstance(e, ev.CommandRejected | ev.OrderRejected) for e in events)
    if not rejected and isinstance(command, c.Deposit | c.Withdraw):
        minor = int(command.amount * 100)
        books.net["USD"] += minor if isinstance(command, c.Deposit) else -minor
    follow_fills(books, events)
    users: dict[str, int] = {}
    system: dict[str, int] = {}
    for account_id, account in engine.accounts.items():
        for currency, balance in account.balances.items():
            if account_id == SYSTEM_EXTERNAL:
                continue
            target = system if account.kind.value == "system" else users
            target[currency] = target.get(currency, 0) + balance.total
            assert balance.total >= 0 or account_id == SYSTEM_PERP_SETTLEMENT, (account_id, currency)
            assert balance.total - balance.held >= 0 or account.kind.value == "system", (account_id, currency)
    for currency, net in books.net.items():
        assert users.get(currency, 0) + system.get(currency, 0) == net, currency
    perp = engine.markets["BTC-PERP"]
    if all(p.quantity == 0 for p in perp.positions.values()):
        clearing = engine.accounts.get(SYSTEM_PERP_SETTLEMENT)
        assert clearing is None or all(b.total == 0 for b in clearing.balances.values())


def cancel_everything(engine: Engine, books: Books) -> None:
    for account_id in sorted(METHODS):
        command = c.CancelAll(account_id=account_id)
        check(engine, books, command, engine.apply(command))


@SETTINGS
@given(
    steps=st.lists(st.one_of(order(), order(), order(), other()), min_size=20, max_size=90),
    outcome=st.sampled_from(("yes", "no", "void")),
)
def test_no_command_creates_or_destroys_money_and_every_life_pays_its_floor(
    steps: list[c.Command], outcome: str
) -> None:
    engine = make_engine()
    books = Books()
    funding(engine, books)
    expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-PERP", price=201 * PERP_TICK)))
    for command in steps:
        check(engine, books, command, engine.apply(command))
    cancel_everything(engine, books)
    # close every perp position in pieces at odd prices, against the other accounts' resting orders
    perp = engine.markets["BTC-PERP"]
    for account_id in sorted(METHODS):
        position = perp.positions.get(account_id)
        while position is not None and position.quantity:
            lots = min(abs(position.quantity), 3)
            side, other_side = ("sell", "buy") if position.quantity > 0 else ("buy", "sell")
            price = (201 + lots) * PERP_TICK
            counterparty = "d" if account_id != "d" else "a"
            for account, side_of in ((counterparty, other_side), (account_id, side)):
                command = c.PlaceOrder(
                    account_id=account,
                    market="BTC-PERP",
                    side=side_of,  # type: ignore[arg-type]
                    quantity=lots * PERP_LOT,
                    price=price,
                )
                check(engine, books, command, engine.apply(command))
            cancel_everything(engine, books)
    assert all(p.quantity == 0 for p in perp.positions.values())
    end: c.Command = (
        c.VoidMarket(market="FED-CUT")
        if outcome == "void"
        else c.SettleMarket(market="FED-CUT", outcome=Outcome(outcome))
    )
    check(engine, books, end, expect_no_rejection(engine.apply(end)))
    collateral = engine.accounts.get("system:collateral:FED-CUT")
    assert collateral is None or collateral.balance("USD").total == 0  # winners or the void took it all
    rounding = engine.accounts.get(SYSTEM_ROUNDING)
    assert rounding is None or all(b.total >= 0 for b in rounding.balances.values())
