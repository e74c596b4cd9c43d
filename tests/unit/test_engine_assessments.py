"""Prop-firm assessments: funding by tier, floors by drawdown mode across days, fail and pass."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from tests.engine_support import expect_no_rejection, of_type, one, perp_spec, place
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import AccountKind, AccountStatus, CancelReason, TradingState, Venue
from tradehall.domain.tiers import DrawdownMode, TierSpec
from tradehall.engine import Engine, EngineConfig

PRAGUE = ZoneInfo("Europe/Prague")


def at(day: int, hour: int = 12) -> int:
    """ns of 2026-01-<day> <hour>:00 in Prague."""
    return int(datetime(2026, 1, day, hour, tzinfo=PRAGUE).timestamp()) * 1_000_000_000


def assessment_engine(**tier_fields: object) -> Engine:
    fields: dict[str, object] = {"name": "t", "starting_balance": D("10000"), "min_trading_days": 0}
    fields.update(tier_fields)
    engine = Engine(EngineConfig(tiers={"t": TierSpec(**fields)}))  # type: ignore[arg-type]
    spec = perp_spec(
        venue=Venue.QUOTE,
        tick_size=D("1"),
        lot_size=D("0.01"),
        maker_fee=D("0"),
        taker_fee=D("0"),
        slippage=D("0"),
        max_leverage=D("100"),
        quote_max_age_ms=10**12,
    )
    expect_no_rejection(engine.apply(c.AdvanceTime(ts=at(5))))
    expect_no_rejection(engine.apply(c.CreateMarket(spec=spec)))
    expect_no_rejection(
        engine.apply(c.OpenAccount(account_id="p", owner="p", kind=AccountKind.ASSESSMENT, tier="t"))
    )
    return engine


def quote(engine: Engine, bid: str, ask: str | None = None, ts: int | None = None) -> list[ev.AnyEvent]:
    command = c.Quote(market="BTC-PERP", bid=D(bid), ask=D(ask or bid), ts=ts or engine.now)
    return expect_no_rejection(engine.apply(command))


def buy(engine: Engine, quantity: str = "1", **fields: object) -> list[ev.AnyEvent]:
    return place(engine, "p", "BTC-PERP", "buy", quantity, None, type="market", **fields)


def equity_floor(engine: Engine) -> tuple[int, int, int]:
    state = engine.accounts["p"].assessment
    assert state is not None
    return state.total_floor, state.daily_floor, state.peak_equity


def test_an_assessment_account_is_funded_by_its_tier() -> None:
    engine = assessment_engine()
    account = engine.accounts["p"]
    assert account.balances["USD"].total == 1_000_000
    assert equity_floor(engine) == (900_000, 950_000, 1_000_000)
    rejected = engine.apply(
        c.OpenAccount(account_id="q", owner="q", kind=AccountKind.ASSESSMENT, tier="nope")
    )
    assert one(rejected, ev.CommandRejected).code == "invalid_request"


def test_daily_loss_on_equity_fails_the_account_and_closes_everything() -> None:
    engine = assessment_engine()
    quote(engine, "10000")
    expect_no_rejection(buy(engine))
    resting = one(place(engine, "p", "BTC-PERP", "buy", "0.1", "5000"), ev.OrderAccepted).order_id
    assert not of_type(quote(engine, "9600"), ev.AssessmentFailed)  # equity 9,600 >= 9,500
    events = quote(engine, "9490")
    failed = one(events, ev.AssessmentFailed)
    assert (failed.rule, failed.equity, failed.floor) == ("max_daily_loss", 949_000, 950_000)
    assert one(events, ev.OrderCancelled).order_id == resting
    assert one(events, ev.OrderCancelled).reason is CancelReason.ASSESSMENT_ENDED
    assert engine.markets["BTC-PERP"].positions["p"].quantity == 0
    account = engine.accounts["p"]
    assert (account.status, account.trading_state) == (AccountStatus.FAILED, TradingState.HALTED)
    assert account.balances["USD"].total == 949_000 and account.balances["USD"].held == 0
    assert one(buy(engine), ev.OrderRejected).code == "account_not_active"


def test_static_max_loss_fails_below_initial_minus_the_limit() -> None:
    engine = assessment_engine(max_daily_loss=D("0"))
    quote(engine, "10000")
    buy(engine)
    assert not of_type(quote(engine, "9000"), ev.AssessmentFailed)  # equity 9,000 == floor: not below
    failed = one(quote(engine, "8999"), ev.AssessmentFailed)
    assert (failed.rule, failed.floor) == ("max_total_loss", 900_000)


def test_an_order_whose_fill_would_cross_the_drawdown_floor_is_refused_up_front() -> None:
    engine = assessment_engine(max_total_loss=D("0.001"), max_daily_loss=D("0"))
    quote(engine, "9990", "10010")  # mark 10,000: buying at 10,010 loses 10.00 a coin at once
    assert one(buy(engine, "2"), ev.OrderRejected).code == "drawdown_violation"
    assert engine.markets["BTC-PERP"].positions.get("p") is None
    expect_no_rejection(buy(engine, "1"))  # equity 9,990 == floor: allowed


def test_an_order_whose_fill_would_cross_the_daily_floor_is_refused_up_front() -> None:
    engine = assessment_engine(max_daily_loss=D("0.0005"))
    quote(engine, "9990", "10010")
    assert one(buy(engine, "1.01"), ev.OrderRejected).code == "daily_loss_limit"


def test_risk_per_trade_uses_the_stop_loss_or_the_margin() -> None:
    engine = assessment_engine(max_risk_per_trade=D("0.01"))  # 100.00 of a 10,000 start
    quote(engine, "10000")
    expect_no_rejection(buy(engine, "1", stop_loss=D("9900")))
    assert one(buy(engine, "1", stop_loss=D("9899")), ev.OrderRejected).code == "risk_limit_exceeded"
    assert one(buy(engine, "2"), ev.OrderRejected).code == "risk_limit_exceeded"  # margin 1 % x 20,000


def test_target_passes_only_after_the_minimum_trading_days() -> None:
    engine = assessment_engine(min_trading_days=2)
    quote(engine, "10000")
    buy(engine)
    assert not of_type(quote(engine, "11000"), ev.AssessmentPassed)  # target reached on day 1 of 2
    engine.apply(c.AdvanceTime(ts=at(6)))
    events = buy(engine, "0.01", ts=at(6))  # opening a position on a second day counts it
    passed = one(events, ev.AssessmentPassed)
    assert (passed.trading_days, passed.target) == (2, 1_100_000)
    account = engine.accounts["p"]
    assert (account.status, account.trading_state) == (AccountStatus.PASSED, TradingState.HALTED)
    assert engine.markets["BTC-PERP"].positions["p"].quantity == 0


def test_end_of_day_trailing_floor_moves_at_the_reset_never_down_and_locks_at_the_start() -> None:
    engine = assessment_engine(
        drawdown_mode=DrawdownMode.EOD_TRAILING, max_daily_loss=D("0"), profit_target=D("0.5")
    )

    def trade_day(day: int, exit_price: str) -> None:
        quote(engine, "10000", ts=at(day))
        buy(engine, ts=at(day))
        quote(engine, exit_price, ts=at(day, 13))
        place(engine, "p", "BTC-PERP", "sell", "1", None, type="market", ts=at(day, 13))
        engine.apply(c.AdvanceTime(ts=at(day + 1, 0) + 1))  # just past midnight in Prague

    trade_day(5, "10500")  # end of day balance 10,500
    assert equity_floor(engine)[0] == 950_000
    trade_day(6, "10300")  # 10,800
    assert equity_floor(engine)[0] == 980_000
    trade_day(7, "10400")  # 11,200: 10,200 would be above the start, so the floor locks at 10,000
    assert equity_floor(engine)[0] == 1_000_000
    trade_day(8, "9900")  # 11,100: a lower end of day never moves the floor down
    assert equity_floor(engine)[0] == 1_000_000


def test_intraday_trailing_floor_follows_peak_equity_on_every_mark() -> None:
    engine = assessment_engine(drawdown_mode=DrawdownMode.INTRADAY_TRAILING, max_daily_loss=D("0"))
    quote(engine, "10000")
    buy(engine)
    quote(engine, "10500")
    assert equity_floor(engine)[0] == 950_000 and equity_floor(engine)[2] == 1_050_000
    assert not of_type(quote(engine, "9600"), ev.AssessmentFailed)
    failed = one(quote(engine, "9499"), ev.AssessmentFailed)
    assert (failed.rule, failed.floor) == ("max_total_loss", 950_000)


def test_intraday_trailing_floor_locks_at_the_starting_balance_plus_buffer() -> None:
    engine = assessment_engine(
        drawdown_mode=DrawdownMode.INTRADAY_TRAILING, max_daily_loss=D("0"), trailing_lock_buffer=D("0.01")
    )
    quote(engine, "10000")
    buy(engine)
    quote(engine, "12000")
    assert equity_floor(engine)[0] == 1_010_000  # would be 11,000; locked at 10,000 + 1 %


def test_daily_floor_restarts_from_the_balance_at_the_reset() -> None:
    engine = assessment_engine()
    quote(engine, "10000", ts=at(5))
    buy(engine, ts=at(5))
    quote(engine, "10300", ts=at(5, 13))
    place(engine, "p", "BTC-PERP", "sell", "1", None, type="market", ts=at(5, 13))
    events = engine.apply(c.AdvanceTime(ts=at(6, 0) + 1))
    assert one(events, ev.AssessmentUpdated).day_start_balance == 1_030_000
    assert equity_floor(engine)[1] == 980_000  # 10,300 - 5 % of 10,000


def test_configure_replaces_tiers_for_new_accounts_and_open_ones_keep_theirs() -> None:
    engine = assessment_engine()
    new_tier = TierSpec(name="big", starting_balance=D("50000"))
    events = expect_no_rejection(engine.apply(c.Configure(tiers={"big": new_tier}, max_open_orders=5)))
    assert one(events, ev.EngineConfigured).tiers == ("big",)
    expect_no_rejection(
        engine.apply(c.OpenAccount(account_id="q", owner="q", kind=AccountKind.ASSESSMENT, tier="big"))
    )
    assert engine.accounts["q"].balances["USD"].total == 5_000_000
    rejected = engine.apply(c.OpenAccount(account_id="r", owner="r", kind=AccountKind.ASSESSMENT, tier="t"))
    assert one(rejected, ev.CommandRejected).code == "invalid_request"
    state = engine.accounts["p"].assessment
    assert state is not None and state.tier.name == "t"  # the open assessment keeps its tier
    restored = Engine.restore(engine.snapshot())
    assert restored.state_hash() == engine.state_hash()
    assert restored.config.max_open_orders == 5
    bad = engine.apply(
        c.Configure(tiers={"x": TierSpec(name="x", starting_balance=D("1"), timezone="Mars/Base")})
    )
    assert one(bad, ev.CommandRejected).code == "invalid_request"
