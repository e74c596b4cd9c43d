"""Voiding a binary market: every YES and every NO contract pays 0.50, exactly out of its collateral.

Amounts in cents. The first scenario is the one that used to create money: contracts changed hands at
1 cent and at 99 cents, and a refund "at cost" paid 198.00 out of 100.00 of collateral.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

import pytest

from tests.engine_support import balance, binary_spec, engine_with, expect_no_rejection, of_type, one, place
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import CancelReason, FeeModel, MarketStatus
from tradehall.engine import Engine
from tradehall.engine.ledger import SYSTEM_EXTERNAL, SYSTEM_FEES, SYSTEM_ROUNDING

Step = tuple[str, str, str, str]  # account, side, quantity, price: each order rests or takes what rests

ISSUE_TRADES: list[Step] = [
    ("a", "yes", "100", "0.01"),  # a bids for YES at 1 cent
    ("b", "sell", "100", "0.01"),  # b sells YES it does not hold: NO for 99 cents each
    ("c", "yes", "100", "0.99"),  # c bids for YES at 99 cents
    ("a", "sell", "100", "0.99"),  # a sells its YES to c: 98.00 profit
]
PARTIAL_CLOSE: list[Step] = [
    ("b", "buy", "40", "0.60"),  # b buys back 40 of its NO at 0.60 (receives 0.40 each)
    ("c", "sell", "40", "0.60"),  # c sells 40 of its YES at 0.60
]


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: list[Step]
    refunds: tuple[tuple[str, int], ...]
    balances: dict[str, int]  # cash after the void; system:fees included
    spec: dict[str, Any] = field(default_factory=dict)
    realized: dict[str, int] = field(default_factory=dict)  # PositionChanged.realized_pnl of the void
    deposit: str = "1000"


NO_FEES = {"fee_model": FeeModel.PROPORTIONAL}
SCENARIOS = [
    Scenario(
        "issue_case_two_trades",
        ISSUE_TRADES,
        refunds=(("b", 5_000), ("c", 5_000)),
        # a keeps its 98.00 (it sold before the void); b and c each lose 49.00; nobody is paid 99.00
        balances={"a": 109_800, "b": 95_100, "c": 95_100, SYSTEM_FEES: 0},
        spec=NO_FEES,
        realized={"b": -4_900, "c": -4_900},
    ),
    Scenario(
        "issue_case_with_a_partial_close_at_another_price",
        ISSUE_TRADES + PARTIAL_CLOSE,
        refunds=(("b", 3_000), ("c", 3_000)),
        # b: -99.00 + 16.00 + 30.00; c: -99.00 + 24.00 + 30.00
        balances={"a": 109_800, "b": 94_700, "c": 95_500, SYSTEM_FEES: 0},
        spec=NO_FEES,
        realized={"b": -2_360 - 2_940, "c": -1_560 - 2_940},
    ),
    Scenario(
        "fees_are_not_refunded",
        ISSUE_TRADES + PARTIAL_CLOSE,
        refunds=(("b", 3_000), ("c", 3_000)),
        # maker 0.5 %, taker 1 % of each trade's notional (1.00, 99.00, 24.00), rounded up per order:
        # a pays 1 + 99, b 1 + 12, c 50 + 24
        balances={"a": 109_800 - 100, "b": 94_700 - 13, "c": 95_500 - 74, SYSTEM_FEES: 187},
        spec={"fee_model": FeeModel.PROPORTIONAL, "maker_fee": D("0.005"), "taker_fee": D("0.01")},
    ),
    Scenario(
        "odd_payouts_round_down_and_the_residue_goes_to_rounding",
        [
            ("a", "yes", "0.05", "0.4"),  # one lot of 0.05 contracts pays 5 cents at settlement
            ("c", "yes", "0.10", "0.6"),
            ("b", "sell", "0.15", "0.4"),  # b: NO 3 lots, 4 cents from c's trade + 3 from a's
            ("a", "yes", "0.05", "0.8"),
            ("c", "sell", "0.05", "0.8"),  # c passes one lot on to a at 0.8
        ],
        # half of 10, 15 and 5 cents, rounded down: 5, 7, 2; the 15 cents of collateral leave 1
        refunds=(("a", 5), ("b", 7), ("c", 2)),
        balances={"a": 1_000 - 2 - 4 + 5, "b": 1_000 - 7 + 7, "c": 1_000 - 6 + 4 + 2, SYSTEM_ROUNDING: 1},
        spec={"fee_model": FeeModel.PROPORTIONAL, "tick_size": D("0.2"), "lot_size": D("0.05")},
        realized={"a": 5 - 6, "b": 7 - 7, "c": (4 - 3) + (2 - 3)},  # c: the sale's P&L, then the void's
        deposit="10",
    ),
]


def cash(engine: Engine, account: str) -> int:
    """Total USD of an account; a system account nothing was posted to yet does not exist."""
    return balance(engine, account)[0] if account in engine.accounts else 0


def assert_books_balance(engine: Engine) -> None:
    """Conservation, and no balance below zero except the outside world's."""
    assert all(total == 0 for total in engine.ledger.totals().values()), engine.ledger.totals()
    for account_id, account in engine.accounts.items():
        for currency, found in account.balances.items():
            if account_id != SYSTEM_EXTERNAL:
                assert found.total >= 0, (account_id, currency, found.total)
                assert found.total - found.held >= 0, (account_id, currency)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_void_pays_half_per_contract_out_of_the_collateral(scenario: Scenario) -> None:
    engine = engine_with(
        binary_spec(**scenario.spec), accounts={a: {"USD": scenario.deposit} for a in ("a", "b", "c")}
    )
    for account, side, quantity, price in scenario.steps:
        expect_no_rejection(place(engine, account, "FED-CUT", side, quantity, price))
    assert_books_balance(engine)
    events = expect_no_rejection(engine.apply(c.VoidMarket(market="FED-CUT")))

    assert one(events, ev.MarketVoided).refunds == scenario.refunds
    assert {a: cash(engine, a) for a in scenario.balances} == scenario.balances
    assert balance(engine, "system:collateral:FED-CUT") == (0, 0)
    assert cash(engine, "system:venue") == 0
    deposits = 3 * int(D(scenario.deposit) * 100)
    users = sum(balance(engine, a)[0] for a in ("a", "b", "c"))
    assert users == deposits - cash(engine, SYSTEM_FEES) - cash(engine, SYSTEM_ROUNDING)
    assert_books_balance(engine)
    positions = {p.account_id: p for p in of_type(events, ev.PositionChanged)}
    assert set(positions) == {account for account, _ in scenario.refunds}
    assert all(p.quantity == 0 and p.cost == 0 for p in positions.values())
    if scenario.realized:
        assert {a: p.realized_pnl for a, p in positions.items()} == scenario.realized
    credited = {e.account_id: e.delta for e in of_type(events, ev.BalanceChanged) if e.account_id in "abc"}
    assert credited == {account: amount for account, amount in scenario.refunds if amount}
    assert engine.markets["FED-CUT"].status is MarketStatus.CANCELLED


def test_void_cancels_resting_closing_and_stop_orders_and_releases_their_holds() -> None:
    engine = engine_with(
        binary_spec(fee_model=FeeModel.PROPORTIONAL),
        accounts={"a": {"USD": "100"}, "b": {"USD": "100"}, "c": {"USD": "100"}},
    )
    place(engine, "a", "FED-CUT", "yes", "10", "0.40")
    place(engine, "b", "FED-CUT", "no", "10", "0.60")
    expect_no_rejection(place(engine, "c", "FED-CUT", "yes", "5", "0.20"))  # holds 1.00
    expect_no_rejection(place(engine, "a", "FED-CUT", "sell", "4", "0.90"))  # reserves 4 of a's YES
    expect_no_rejection(
        place(engine, "c", "FED-CUT", "sell", "2", "0.30", type="stop_limit", stop_price="0.10")
    )
    assert balance(engine, "c")[1] > 0
    assert engine.markets["FED-CUT"].positions["a"].reserved_sell == 4

    events = expect_no_rejection(engine.apply(c.VoidMarket(market="FED-CUT")))

    cancelled = of_type(events, ev.OrderCancelled)
    assert len(cancelled) == 3
    assert {e.reason for e in cancelled} == {CancelReason.MARKET_VOIDED}
    assert not [o for o in engine.orders.values() if o.market == "FED-CUT"]
    assert one(events, ev.MarketVoided).refunds == (("a", 500), ("b", 500))
    assert balance(engine, "a") == (10_000 - 400 + 500, 0)
    assert balance(engine, "b") == (10_000 - 600 + 500, 0)
    assert balance(engine, "c") == (10_000, 0)
    assert one(events, ev.MarketStatusChanged).status is MarketStatus.CANCELLED
    position = engine.markets["FED-CUT"].positions["a"]
    assert (position.quantity, position.reserved_sell, position.reserved_buy) == (0, 0, 0)
    assert_books_balance(engine)


def test_a_voided_market_takes_no_orders_and_cannot_be_voided_or_settled_again() -> None:
    engine = engine_with(binary_spec(), accounts={"a": {"USD": "100"}, "b": {"USD": "100"}})
    place(engine, "a", "FED-CUT", "yes", "10", "0.40")
    place(engine, "b", "FED-CUT", "no", "10", "0.60")
    expect_no_rejection(engine.apply(c.VoidMarket(market="FED-CUT")))
    before = engine.state_hash()
    assert one(place(engine, "a", "FED-CUT", "yes", "1", "0.5"), ev.OrderRejected).code == "market_closed"
    again = engine.apply(c.VoidMarket(market="FED-CUT"))
    assert one(again, ev.CommandRejected).code == "conflict"
    settle = engine.apply(c.SettleMarket(market="FED-CUT", outcome="yes"))  # type: ignore[arg-type]
    assert one(settle, ev.CommandRejected).code == "conflict"
    assert engine.state_hash() == before


def test_void_with_no_positions_moves_no_money() -> None:
    engine = engine_with(binary_spec(), accounts={"a": {"USD": "100"}})
    expect_no_rejection(place(engine, "a", "FED-CUT", "yes", "10", "0.40"))
    events = expect_no_rejection(engine.apply(c.VoidMarket(market="FED-CUT")))
    assert one(events, ev.MarketVoided).refunds == ()
    assert balance(engine, "a") == (10_000, 0)
    assert [e.account_id for e in of_type(events, ev.BalanceChanged)] == ["a"]  # its hold released
