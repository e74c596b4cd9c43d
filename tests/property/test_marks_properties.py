"""Mark-to-market properties: incremental evaluation equals evaluating everyone, floors only rise,
and no account's balance goes below zero (liquidation and the insurance fund absorb the rest)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine_support import perp_spec
from tradehall.domain import commands as c
from tradehall.domain.enums import AccountKind, AccountStatus, Venue
from tradehall.domain.tiers import DrawdownMode, TierSpec
from tradehall.engine import Engine, EngineConfig

HOUR = 3_600 * 10**9
TIERS = {
    "static": TierSpec(name="static", starting_balance=D("10000"), profit_target=D("0.3")),
    "eod": TierSpec(
        name="eod",
        starting_balance=D("10000"),
        drawdown_mode=DrawdownMode.EOD_TRAILING,
        max_daily_loss=D("0.04"),
        profit_target=D("0.3"),
    ),
    "intraday": TierSpec(
        name="intraday",
        starting_balance=D("10000"),
        profit_target=D("0.3"),
        drawdown_mode=DrawdownMode.INTRADAY_TRAILING,
        max_daily_loss=D("0"),
    ),
}
TRADERS = ("s1", "s2", "e1", "i1", "cash")


def setup() -> list[c.Command]:
    commands: list[c.Command] = [
        c.CreateMarket(
            spec=perp_spec(
                "Q-PERP",
                venue=Venue.QUOTE,
                tick_size=D("1"),
                lot_size=D("0.01"),
                max_leverage=D("20"),
                quote_max_age_ms=10**12,
            )
        ),
        c.CreateMarket(spec=perp_spec("B-PERP", tick_size=D("1"), lot_size=D("0.01"), max_leverage=D("20"))),
        c.Quote(market="Q-PERP", bid=D("9995"), ask=D("10005")),
        c.MarkPrice(market="B-PERP", price=D("10000")),
    ]
    for account, tier in (("s1", "static"), ("s2", "static"), ("e1", "eod"), ("i1", "intraday")):
        commands.append(
            c.OpenAccount(account_id=account, owner=account, kind=AccountKind.ASSESSMENT, tier=tier)
        )
    commands += [
        c.OpenAccount(account_id="cash", owner="cash"),
        c.Deposit(account_id="cash", amount=D("3000")),
        c.OpenAccount(account_id="mm", owner="mm"),
        c.Deposit(account_id="mm", amount=D("10000000")),
    ]
    return commands


@st.composite
def actions(draw: st.DrawFn) -> c.Command:
    kind = draw(st.sampled_from(("quote", "quote", "quote", "mark", "trade", "trade", "book", "time")))
    if kind == "quote":
        mid = draw(st.integers(8_000, 12_000))
        return c.Quote(market="Q-PERP", bid=D(mid - 5), ask=D(mid + 5))
    if kind == "mark":
        return c.MarkPrice(market="B-PERP", price=D(draw(st.integers(8_000, 12_000))))
    if kind == "time":
        return c.AdvanceTime(ts=draw(st.integers(1, 96)) * HOUR)
    account = draw(st.sampled_from(TRADERS))
    side = draw(st.sampled_from(("buy", "sell")))
    quantity = D(draw(st.integers(1, 300))) / 100
    if kind == "trade":
        return c.PlaceOrder(account_id=account, market="Q-PERP", side=side, quantity=quantity, type="market")  # type: ignore[arg-type]
    price = D(draw(st.integers(9_000, 11_000)))
    maker_side = "sell" if side == "buy" else "buy"
    if draw(st.booleans()):
        return c.PlaceOrder(account_id="mm", market="B-PERP", side=maker_side, quantity=quantity, price=price)  # type: ignore[arg-type]
    return c.PlaceOrder(account_id=account, market="B-PERP", side=side, quantity=quantity, price=price)  # type: ignore[arg-type]


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(stream=st.lists(actions(), min_size=5, max_size=60))
def test_incremental_mark_to_market_matches_evaluating_every_account(stream: list[c.Command]) -> None:
    incremental = Engine(EngineConfig(tiers=TIERS))
    everyone = Engine(EngineConfig(tiers=TIERS, incremental_marks=False))
    for command in setup() + sorted_in_time(stream):
        assert incremental.apply(command) == everyone.apply(command), command


@SETTINGS
@given(stream=st.lists(actions(), min_size=5, max_size=60))
def test_floors_never_move_down_and_balances_never_go_below_zero(stream: list[c.Command]) -> None:
    engine = Engine(EngineConfig(tiers=TIERS))
    for command in setup():
        engine.apply(command)
    floors = {a: engine.accounts[a].assessment.total_floor for a in ("s1", "s2", "e1", "i1")}  # type: ignore[union-attr]
    for command in sorted_in_time(stream):
        engine.apply(command)
        for account_id, before in floors.items():
            state = engine.accounts[account_id].assessment
            assert state is not None and state.total_floor >= before
            floors[account_id] = state.total_floor
        for account_id in (*TRADERS, "mm"):
            assert engine.accounts[account_id].balances["USD"].total >= 0, account_id
        assert all(total == 0 for total in engine.ledger.totals().values())


def sorted_in_time(stream: list[c.Command]) -> list[c.Command]:
    """AdvanceTime commands only move forward: keep them in increasing order where they stand."""
    latest = 0
    result: list[c.Command] = []
    for command in stream:
        if isinstance(command, c.AdvanceTime):
            latest = max(latest, command.ts)
            command = c.AdvanceTime(ts=latest)
        result.append(command)
    return result


def test_a_move_inside_one_markets_interval_leaves_the_others_room_for_theirs() -> None:
    """Found by the property above: a quote on Q-PERP moved inside s1's Q interval (no evaluation), and
    s1's B-PERP interval, computed when Q stood higher, then let a B-PERP mark through that fails s1."""
    stream = [
        c.Quote(market="Q-PERP", bid=D("8477"), ask=D("8487")),
        c.PlaceOrder(account_id="s1", market="Q-PERP", side="buy", quantity=D("0.98"), type="market"),  # type: ignore[arg-type]
        c.PlaceOrder(account_id="s1", market="B-PERP", side="buy", quantity=D("0.01"), price=D("9000")),  # type: ignore[arg-type]
        c.PlaceOrder(account_id="mm", market="B-PERP", side="sell", quantity=D("0.01"), price=D("9000")),  # type: ignore[arg-type]
        c.Quote(market="Q-PERP", bid=D("7995"), ask=D("8005")),
        c.MarkPrice(market="B-PERP", price=D("8000")),
    ]
    incremental = Engine(EngineConfig(tiers=TIERS))
    everyone = Engine(EngineConfig(tiers=TIERS, incremental_marks=False))
    for command in [*setup(), *stream]:
        assert incremental.apply(command) == everyone.apply(command), command
    assert incremental.accounts["s1"].status is AccountStatus.FAILED
