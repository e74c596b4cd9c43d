"""Close-outs on a book venue (assessment end, liquidation): they trade against the book within the
protection band, and what the book cannot absorb there is taken over by the insurance fund at the
mark, which is a transfer, never a public trade. An assessment that ended says why (`status_reason`),
also after a restart."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.engine_support import expect_no_rejection, of_type, one, perp_spec, place
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import AccountKind, AccountStatus, CancelReason
from tradehall.domain.tiers import TierSpec
from tradehall.engine import Engine, EngineConfig
from tradehall.engine.ledger import SYSTEM_INSURANCE

TIER = TierSpec(
    name="t100k",
    starting_balance=D("100000"),
    max_daily_loss=D("0.01"),
    max_total_loss=D("0.10"),
    profit_target=D("0.01"),
)


def book_perp_assessment(
    bids: list[tuple[str, str]], asks: list[tuple[str, str]]
) -> tuple[Engine, list[c.Command]]:
    """An assessment long 1.53 BTC at 64,000 on a book perp (entry fee 48.96), then the maker's book.

    Returns the engine and the commands that built it (replaying them rebuilds the same state)."""
    commands: list[c.Command] = [
        c.Configure(tiers={"t100k": TIER}),
        c.CreateMarket(
            spec=perp_spec(
                tick_size=D("0.5"),
                lot_size=D("0.01"),
                maker_fee=D("0"),
                taker_fee=D("0.0005"),
                max_leverage=D("100"),
            )
        ),
        c.OpenAccount(account_id="m", owner="m"),
        c.Deposit(account_id="m", amount=D("10000000")),
        c.OpenAccount(account_id="p", owner="p", kind=AccountKind.ASSESSMENT, tier="t100k"),
        c.PlaceOrder(account_id="m", market="BTC-PERP", side="sell", quantity=D("1.53"), price=D("64000")),  # type: ignore[arg-type]
        c.PlaceOrder(account_id="p", market="BTC-PERP", side="buy", quantity=D("1.53"), price=D("64000")),  # type: ignore[arg-type]
    ]
    for side, levels in (("buy", bids), ("sell", asks)):
        for quantity, price in levels:
            commands.append(
                c.PlaceOrder(
                    account_id="m", market="BTC-PERP", side=side, quantity=D(quantity), price=D(price)
                )  # type: ignore[arg-type]
            )
    engine = Engine(EngineConfig())
    for command in commands:
        expect_no_rejection(engine.apply(command))
    assert engine.accounts["p"].balances["USD"].total == 9_995_104  # 100,000.00 - 48.96 entry fee
    return engine, commands


def mark(engine: Engine, price: str) -> list[ev.AnyEvent]:
    return engine.apply(c.MarkPrice(market="BTC-PERP", price=D(price)))


@pytest.mark.parametrize(
    ("bids", "fills", "taken_over", "fees", "balance"),
    [
        # the book absorbs it all within 5 % of the best bid (63,900 -> down to 60,705)
        ([("2", "63900")], [(153, 127_800)], 0, 4_889, 9_995_104 - 15_300 - 4_889),
        # 0.50 at 63,900 and 0.50 at 63,000 trade; 1.00 at 60,000 is beyond the band:
        # the last 0.53 is taken over at 63,300
        (
            [("0.5", "63900"), ("0.5", "63000"), ("1", "60000")],
            [(50, 127_800), (50, 126_000)],
            53,
            3_173,
            9_995_104 - 5_000 - 50_000 - 37_100 - 3_173,
        ),
        # no bid at all (a one-sided book has no mark band): everything is taken over at the mark
        ([], [], 153, 0, 9_995_104 - 107_100),
    ],
)
def test_an_assessment_close_out_trades_within_the_band_and_insurance_takes_over_the_rest(
    bids: list[tuple[str, str]],
    fills: list[tuple[int, int]],
    taken_over: int,
    fees: int,
    balance: int,
) -> None:
    engine, _ = book_perp_assessment(bids, [("1", "64100")])
    trades_before = engine.next_trade_id

    events = expect_no_rejection(mark(engine, "63300"))  # equity 98,880.04 < daily floor 99,000.00

    failed = one(events, ev.AssessmentFailed)
    assert (failed.rule, failed.equity, failed.floor) == ("max_daily_loss", 9_888_004, 9_900_000)
    trades = of_type(events, ev.TradeExecuted)
    assert [(t.quantity, t.price) for t in trades] == fills  # only real matches are trades
    assert all(t.price != 126_600 for t in trades)  # never at the injected mark
    assert engine.next_trade_id == trades_before + len(fills)
    closing = [f for f in of_type(events, ev.OrderFilled) if f.account_id == "p"]
    assert [(f.quantity, f.price) for f in closing] == fills
    assert sum(f.fee for f in closing) == fees  # the book's fills pay the taker fee; the takeover none
    takeovers = of_type(events, ev.PositionTakenOver)
    if taken_over:
        taken = one(events, ev.PositionTakenOver)
        assert (taken.account_id, taken.quantity, taken.price, taken.reason) == (
            "p",
            taken_over,
            126_600,
            "assessment_ended",
        )
        assert taken.pnl == taken_over * (63_300 - 64_000)  # 0.01 BTC x 700.00 USD = 7.00 USD a lot
        cancelled = one(events, ev.OrderCancelled)
        assert (cancelled.reason, cancelled.filled_quantity) == (
            CancelReason.ASSESSMENT_ENDED,
            153 - taken_over,
        )
        assert engine.markets["BTC-PERP"].positions[SYSTEM_INSURANCE].quantity == taken_over
    else:
        assert not takeovers
        assert SYSTEM_INSURANCE not in engine.markets["BTC-PERP"].positions
    account = engine.accounts["p"]
    assert account.status is AccountStatus.FAILED
    assert engine.markets["BTC-PERP"].positions["p"].quantity == 0
    assert account.balances["USD"].total == balance
    assert account.balances["USD"].held == 0
    assert engine.markets["BTC-PERP"].marks.price == 126_600
    assert engine.markets["BTC-PERP"].last_price == (fills[-1][1] if fills else 128_000)
    assert all(total == 0 for total in engine.ledger.totals().values())  # conservation


def test_a_liquidation_sells_into_the_band_and_the_fund_takes_the_rest_at_the_mark() -> None:
    engine = Engine()
    expect_no_rejection(
        engine.apply(c.CreateMarket(spec=perp_spec()))
    )  # tick 0.5, lot 0.001, IM 10 %, MM 5 %
    for account_id, amount in (("a", "1100"), ("b", "1000000")):
        expect_no_rejection(engine.apply(c.OpenAccount(account_id=account_id, owner=account_id)))
        expect_no_rejection(engine.apply(c.Deposit(account_id=account_id, amount=D(amount))))
    expect_no_rejection(place(engine, "b", "BTC-PERP", "short", "1", "10000"))
    expect_no_rejection(place(engine, "a", "BTC-PERP", "long", "1", "10000"))  # fee 5.00
    expect_no_rejection(place(engine, "b", "BTC-PERP", "buy", "0.4", "9390"))
    expect_no_rejection(place(engine, "b", "BTC-PERP", "buy", "1", "8000"))  # beyond 5 % of 9,390
    expect_no_rejection(place(engine, "b", "BTC-PERP", "sell", "1", "9400"))

    events = expect_no_rejection(mark(engine, "9370"))  # equity 465.00 < maintenance 468.50

    liquidated = one(events, ev.PositionLiquidated)
    assert (liquidated.quantity, liquidated.price, liquidated.insurance_paid) == (1_000, 18_740, 0)
    assert [(t.quantity, t.price) for t in of_type(events, ev.TradeExecuted)] == [(400, 18_780)]
    taken = one(events, ev.PositionTakenOver)
    assert (taken.quantity, taken.price, taken.pnl, taken.reason) == (600, 18_740, -37_800, "liquidation")
    cancelled = [e for e in of_type(events, ev.OrderCancelled) if e.account_id == "a"]
    assert [(e.reason, e.filled_quantity) for e in cancelled] == [(CancelReason.LIQUIDATION, 400)]
    fill = next(f for f in of_type(events, ev.OrderFilled) if f.account_id == "a")
    assert (fill.quantity, fill.realized_pnl, fill.fee) == (400, -24_400, 0)  # fee exempt
    assert engine.accounts["a"].balances["USD"].total == 110_000 - 500 - 24_400 - 37_800
    assert engine.markets["BTC-PERP"].positions[SYSTEM_INSURANCE].quantity == 600
    assert engine.markets["BTC-PERP"].last_price == 18_780
    assert all(total == 0 for total in engine.ledger.totals().values())


def test_status_reason_after_a_fail_survives_snapshot_and_replay() -> None:
    engine, commands = book_perp_assessment([("2", "63900")], [("1", "64100")])
    fail = c.MarkPrice(market="BTC-PERP", price=D("63300"), ts=1_767_225_600_000_000_000)
    events = expect_no_rejection(engine.apply(fail))
    changed = one(events, ev.AccountStatusChanged)
    assert (changed.status, changed.reason, changed.value, changed.limit) == (
        AccountStatus.FAILED,
        "max_daily_loss",
        9_888_004,
        9_900_000,
    )
    expected = ("max_daily_loss", 9_888_004, 9_900_000, 1_767_225_600_000_000_000)
    assert engine.accounts["p"].status_reason == expected
    assert Engine.restore(engine.snapshot()).accounts["p"].status_reason == expected
    replayed = Engine(EngineConfig())
    for command in [*commands, fail]:
        replayed.apply(command)
    assert replayed.accounts["p"].status_reason == expected
    assert replayed.state_hash() == engine.state_hash()


def test_status_reason_after_a_pass_names_the_profit_target() -> None:
    engine, _ = book_perp_assessment([("2", "64800")], [("1", "65000")])
    events = expect_no_rejection(mark(engine, "64700"))  # equity 99,951.04 + 1,071.00 >= 101,000.00
    passed = one(events, ev.AssessmentPassed)
    assert passed.target == 10_100_000
    assert engine.accounts["p"].status is AccountStatus.PASSED
    rule, value, limit, _ = engine.accounts["p"].status_reason or ("", 0, 0, 0)
    assert (rule, value, limit) == ("profit_target", 10_102_204, 10_100_000)
    # closed against the bid at 64,800 (fee 49.58), not at the mark
    assert [(t.quantity, t.price) for t in of_type(events, ev.TradeExecuted)] == [(153, 129_600)]
    assert not of_type(events, ev.PositionTakenOver)
