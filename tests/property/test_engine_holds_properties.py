"""The holds invariant (engine/holds.py) after every command, where covered and uncovered orders meet.

One account with little free cash holds a position and rests several orders on both sides of it:
some cover (close) lots of the position, some open, some are reduce-only or stops. Other accounts
trade into them with takers that sweep several levels, so one match fills covered and uncovered
orders of the same account, in either order, while leverage changes and orders are amended or
cancelled in between. After every command: the core invariants (`check_invariants`: held equals the
open orders' holds plus perp margin, reservations equal the covers, available never negative, and no
fill found its order's hold short: `EngineState.hold_shortfall` stays zero).
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine_support import binary_spec, perp_spec
from tests.engine_support.streams import check_invariants
from tradehall.domain import commands as c
from tradehall.engine import Engine

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TIGHT = "tight"  # the account whose covered and uncovered orders meet in one match
TAKERS = ("maker", "sweeper")
MARKETS = {
    # symbol: (tick, lot, mid in ticks, the tight account's opening position in lots)
    "BTC-PERP": (Decimal("0.5"), Decimal("0.001"), 40_000, 20),
    "FED-CUT": (Decimal("0.01"), Decimal("1"), 50, 20),
}


def setup(cash: int, long: bool) -> list[c.Command]:
    """Markets, a rich maker and sweeper, and the tight account holding a position in each market."""
    commands: list[c.Command] = [c.CreateMarket(spec=perp_spec()), c.CreateMarket(spec=binary_spec())]
    for account, amount in ((TIGHT, Decimal(cash)), ("maker", Decimal(10**7)), ("sweeper", Decimal(10**7))):
        commands.append(c.OpenAccount(account_id=account, owner=account))
        commands.append(c.Deposit(account_id=account, amount=amount))
    for symbol, (tick, lot, mid, lots) in MARKETS.items():
        commands.append(
            c.PlaceOrder(
                account_id="maker",
                market=symbol,
                side="sell" if long else "buy",
                quantity=lot * lots,
                price=tick * mid,
            )
        )
        commands.append(
            c.PlaceOrder(
                account_id=TIGHT,
                market=symbol,
                side="buy" if long else "sell",
                quantity=lot * lots,
                price=tick * mid,
            )
        )
    return commands


@st.composite
def tight_orders(draw: st.DrawFn) -> c.Command:
    """The tight account rests an order: closing or opening, limit, reduce-only or stop."""
    symbol = draw(st.sampled_from(tuple(MARKETS)))
    tick, lot, mid, _ = MARKETS[symbol]
    side = draw(st.sampled_from(("buy", "sell")))
    away = draw(st.integers(1, 6))  # ticks away from the mid, on the resting side
    ticks = mid + away if side == "sell" else mid - away
    kind = draw(st.sampled_from(("limit", "limit", "limit", "reduce_only", "stop_limit")))
    fields: dict[str, object] = {
        "account_id": TIGHT,
        "market": symbol,
        "side": side,
        "quantity": lot * draw(st.integers(1, 25)),
        "price": tick * ticks,
    }
    if kind == "reduce_only":
        fields["reduce_only"] = True
    elif kind == "stop_limit":
        fields.update(type="stop_limit", stop_price=tick * (mid + (8 if side == "buy" else -8)))
    return c.PlaceOrder(**fields)  # type: ignore[arg-type]


@st.composite
def sweeps(draw: st.DrawFn) -> c.Command:
    """A taker from another account crossing several of the tight account's levels at once."""
    symbol = draw(st.sampled_from(tuple(MARKETS)))
    tick, lot, mid, _ = MARKETS[symbol]
    side = draw(st.sampled_from(("buy", "sell")))
    reach = draw(st.integers(0, 8))
    return c.PlaceOrder(
        account_id=draw(st.sampled_from(TAKERS)),
        market=symbol,
        side=side,
        quantity=lot * draw(st.integers(1, 80)),
        price=tick * (mid + reach if side == "buy" else mid - reach),
        time_in_force=draw(st.sampled_from(("ioc", "gtc"))),
    )


@st.composite
def others(draw: st.DrawFn) -> c.Command:
    choice = draw(st.sampled_from(("cancel", "amend", "leverage", "mark", "tight_takes")))
    order_id = draw(st.integers(1, 40))
    if choice == "cancel":
        return c.CancelOrder(order_id=order_id)
    if choice == "amend":
        symbol = draw(st.sampled_from(tuple(MARKETS)))
        tick, lot, mid, _ = MARKETS[symbol]
        price = draw(st.one_of(st.none(), st.integers(-6, 6)))
        quantity = draw(st.one_of(st.none(), st.integers(1, 30)))
        return c.AmendOrder(
            order_id=order_id,
            price=None if price is None else tick * (mid + price),
            quantity=None if quantity is None else lot * quantity,
        )
    if choice == "leverage":
        return c.SetLeverage(account_id=TIGHT, market="BTC-PERP", leverage=Decimal(draw(st.integers(1, 10))))
    if choice == "mark":
        tick, _, mid, _ = MARKETS["BTC-PERP"]
        return c.MarkPrice(market="BTC-PERP", price=tick * (mid + draw(st.integers(-10, 10))))
    symbol = draw(st.sampled_from(tuple(MARKETS)))
    tick, lot, mid, _ = MARKETS[symbol]
    side = draw(st.sampled_from(("buy", "sell")))
    return c.PlaceOrder(  # the tight account as the taker, against the maker's resting orders
        account_id=TIGHT,
        market=symbol,
        side=side,
        quantity=lot * draw(st.integers(1, 30)),
        price=tick * (mid + 8 if side == "buy" else mid - 8),
        time_in_force="ioc",
    )


@st.composite
def maker_orders(draw: st.DrawFn) -> c.Command:
    symbol = draw(st.sampled_from(tuple(MARKETS)))
    tick, lot, mid, _ = MARKETS[symbol]
    side = draw(st.sampled_from(("buy", "sell")))
    away = draw(st.integers(1, 6))
    return c.PlaceOrder(
        account_id="maker",
        market=symbol,
        side=side,
        quantity=lot * draw(st.integers(1, 30)),
        price=tick * (mid + away if side == "sell" else mid - away),
    )


def streams() -> st.SearchStrategy[list[c.Command]]:
    one = st.one_of(
        tight_orders(), tight_orders(), tight_orders(), sweeps(), sweeps(), others(), maker_orders()
    )
    return st.lists(one, min_size=5, max_size=60)


@SETTINGS
@given(cash=st.integers(60, 2_000), long=st.booleans(), stream=streams())
def test_holds_match_orders_and_positions_after_every_command(
    cash: int, long: bool, stream: list[c.Command]
) -> None:
    engine = Engine()
    for command in setup(cash, long):
        engine.apply(command)
    check_invariants(engine)
    for command in stream:
        engine.apply(command)
        check_invariants(engine)
