"""Hypothesis: whatever traded in a binary market and at whatever prices, its void conserves money.

Random YES/NO orders (opening, closing part of a position at another price, flipping through zero), then
`VoidMarket`: every contract pays 0.50 rounded down, the collateral ends at zero, the rounding residue is in
`system:rounding`, fees stay paid, no balance goes negative and nothing any account holds is taken back.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine_support import binary_spec, engine_with, of_type, one
from tests.engine_support.streams import check_invariants
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import FeeModel, MarketStatus
from tradehall.engine import Engine
from tradehall.engine.ledger import SYSTEM_EXTERNAL, SYSTEM_FEES, SYSTEM_ROUNDING

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACCOUNTS = {"a": "300", "b": "300", "c": "300", "poor": "3"}
DEPOSITS = sum(int(Decimal(amount) * 100) for amount in ACCOUNTS.values())


@dataclass(frozen=True)
class Kind:
    """A binary market's grid; an odd payout per lot (in cents) makes half a contract a half cent."""

    tick: Decimal
    lot: Decimal
    spec: dict[str, Any]

    @property
    def payout_ticks(self) -> int:
        return int(1 / self.tick)


KINDS = [
    Kind(Decimal("0.01"), Decimal("1"), {"fee_model": FeeModel.QUADRATIC}),  # 100 cents a lot
    Kind(  # 5 cents a lot
        Decimal("0.2"),
        Decimal("0.05"),
        {"fee_model": FeeModel.PROPORTIONAL, "maker_fee": Decimal("0.005"), "taker_fee": Decimal("0.01")},
    ),
    Kind(
        Decimal("0.04"), Decimal("0.25"), {"fee_model": FeeModel.PROPORTIONAL, "taker_fee": Decimal("0.02")}
    ),
]


@st.composite
def orders(draw: st.DrawFn, kind: Kind) -> c.PlaceOrder:
    order_type = draw(st.sampled_from(("limit", "limit", "limit", "market", "ioc")))
    # a few price levels around the middle, so that orders cross and contracts change hands
    step = max(1, kind.payout_ticks // 10)
    levels = [t for t in range(kind.payout_ticks // 2 - 3 * step, kind.payout_ticks, step) if t > 0]
    price = kind.tick * draw(st.sampled_from(levels[:7]))
    return c.PlaceOrder(
        account_id=draw(st.sampled_from(tuple(ACCOUNTS))),
        market="FED-CUT",
        side=draw(st.sampled_from(("yes", "no", "buy", "sell"))),
        quantity=kind.lot * draw(st.integers(1, 25)),
        price=None if order_type == "market" else price,
        type="market" if order_type == "market" else "limit",
        time_in_force="ioc" if order_type == "ioc" else "gtc",
    )


@st.composite
def markets_and_orders(draw: st.DrawFn) -> tuple[Kind, list[c.PlaceOrder]]:
    kind = draw(st.sampled_from(KINDS))
    return kind, draw(st.lists(orders(kind), min_size=4, max_size=60))


def cash(engine: Engine, account: str) -> int:
    found = engine.accounts.get(account)
    return 0 if found is None else found.balance("USD").total


@SETTINGS
@given(case=markets_and_orders())
def test_a_void_pays_half_per_contract_and_conserves_money_exactly(
    case: tuple[Kind, list[c.PlaceOrder]],
) -> None:
    kind, stream = case
    engine = engine_with(
        binary_spec(tick_size=kind.tick, lot_size=kind.lot, **kind.spec),
        accounts={account: {"USD": amount} for account, amount in ACCOUNTS.items()},
    )
    fees = 0
    for command in stream:
        fees += sum(f.fee for f in of_type(engine.apply(command), ev.OrderFilled))
    market = engine.markets["FED-CUT"]
    lot_payout = market.terms.notional.round(market.terms.payout_ticks)  # cents one lot pays at settlement
    held = {a: p.quantity for a, p in sorted(market.positions.items()) if p.quantity}
    before = {account: cash(engine, account) for account in ACCOUNTS}
    collateral = cash(engine, market.terms.collateral_id)
    assert collateral == lot_payout * sum(q for q in held.values() if q > 0)

    events = engine.apply(c.VoidMarket(market="FED-CUT"))

    refunds = one(events, ev.MarketVoided).refunds
    assert refunds == tuple((a, abs(q) * lot_payout // 2) for a, q in held.items())
    residue = collateral - sum(amount for _, amount in refunds)
    assert 0 <= 2 * residue <= len(refunds)  # at most half a cent per account
    if lot_payout % 2 == 0:
        assert residue == 0
    paid = dict(refunds)
    assert {a: cash(engine, a) for a in ACCOUNTS} == {a: before[a] + paid.get(a, 0) for a in ACCOUNTS}
    assert sum(cash(engine, a) for a in ACCOUNTS) == DEPOSITS - fees - residue
    assert cash(engine, SYSTEM_FEES) == fees
    assert cash(engine, SYSTEM_ROUNDING) == residue
    assert cash(engine, market.terms.collateral_id) == 0
    assert all(total == 0 for total in engine.ledger.totals().values())
    for account_id, account in engine.accounts.items():
        if account_id != SYSTEM_EXTERNAL:
            for found in account.balances.values():
                assert found.total >= 0 and found.held == 0, account_id
    assert all(p.quantity == 0 and p.cost == 0 for p in market.positions.values())
    assert not [o for o in engine.orders.values() if o.market == "FED-CUT"]
    assert market.status is MarketStatus.CANCELLED
    check_invariants(engine)
