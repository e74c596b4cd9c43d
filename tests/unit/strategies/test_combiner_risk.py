"""The combiner (weights, threshold, vetoes with reasons), sizing, and the drawdown / weekly rules."""

from __future__ import annotations

import pytest

from tradehall.domain.errors import TradehallError
from tradehall.strategies import (
    Action,
    Combiner,
    FreshnessValidator,
    LiquidityValidator,
    MarketState,
    MaxPositionsValidator,
    RiskLimitValidator,
    RiskManager,
    RiskSettings,
    Signal,
    SpreadValidator,
    TradingStatus,
    VolatilityValidator,
)

DAY = 86_400 * 10**9
MONDAY = 4 * DAY  # 1970-01-05


def sig(strategy: str, action: Action, confidence: float = 1.0) -> Signal:
    return Signal(market="BTC-USD", action=action, confidence=confidence, price=100.0, strategy=strategy,
                  reason=f"{strategy} says {action.value}")


class Book:
    def __init__(self, positions: dict[str, float]) -> None:
        self.positions = positions

    def open_positions(self) -> int:
        return sum(1 for q in self.positions.values() if q)

    def position(self, market: str) -> float:
        return self.positions.get(market, 0.0)


def test_weighted_vote_picks_the_heavier_side_with_its_share_as_confidence() -> None:
    combiner = Combiner({"a": 3.0, "b": 1.0})
    decision = combiner.vote("BTC-USD", [sig("a", Action.BUY, 0.5), sig("b", Action.SELL, 1.0)], ts=7)
    assert decision.action is Action.BUY
    assert decision.confidence == pytest.approx((3 * 0.5 - 1 * 1.0) / 4)
    assert decision.reason == "a: a says buy"


def test_a_hold_dilutes_a_silent_strategy_does_not() -> None:
    combiner = Combiner({"a": 1.0, "b": 1.0})
    assert combiner.vote("BTC-USD", [sig("a", Action.BUY, 0.8)], 0).confidence == 0.8
    diluted = combiner.vote("BTC-USD", [sig("a", Action.BUY, 0.8), sig("b", Action.HOLD, 1.0)], 0)
    assert diluted.confidence == pytest.approx(0.4)


def test_below_min_confidence_is_a_hold_with_the_reason() -> None:
    combiner = Combiner(min_confidence=0.6)
    decision = combiner.vote("BTC-USD", [sig("a", Action.SELL, 0.5)], 0)
    assert decision.action is Action.HOLD
    assert decision.reason == "sell at confidence 0.5000 below min_confidence 0.6"


def test_a_tie_is_a_hold() -> None:
    decision = Combiner().vote("BTC-USD", [sig("a", Action.BUY), sig("b", Action.SELL)], 0)
    assert (decision.action, decision.reason) == (Action.HOLD, "no majority")


def state(**kw: object) -> MarketState:
    values: dict[str, object] = {"market": "BTC-USD", "ts": 10 * 10**9, "price": 100.0, "data_ts": 10 * 10**9}
    values.update(kw)
    return MarketState(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("validator", "market_state", "vetoed_by", "reason"),
    [
        (SpreadValidator(0.01), state(bid=99.0, ask=101.0), "spread", "spread 0.020000 above 0.01"),
        (LiquidityValidator(min_volume=5), state(volume=2.0), "liquidity", "volume 2.0 below 5"),
        (LiquidityValidator(min_depth=3), state(ask_depth=1.0), "liquidity", "quoted depth 1.0 below 3"),
        (VolatilityValidator(0.02), state(volatility=0.05), "volatility", "volatility 0.050000 above 0.02"),
        (FreshnessValidator(5), state(data_ts=3 * 10**9), "data_freshness",
         "market data 7.000 s old, more than 5 s"),
    ],
)
def test_each_validator_vetoes_an_entry_with_its_reason(
    validator: object, market_state: MarketState, vetoed_by: str, reason: str
) -> None:
    combiner = Combiner(validators=[validator])  # type: ignore[list-item]
    decision = combiner.vote("BTC-USD", [sig("a", Action.BUY)], 0)
    decision.opening = True
    combiner.validate(decision, market_state, Book({}))
    assert (decision.vetoed_by, decision.veto_reason) == (vetoed_by, reason)


def test_spread_does_not_veto_an_exit_but_freshness_does() -> None:
    combiner = Combiner(validators=[SpreadValidator(0.01), FreshnessValidator(5)])
    decision = combiner.vote("BTC-USD", [sig("a", Action.SELL)], 0)
    decision.opening = False
    combiner.validate(decision, state(bid=90.0, ask=110.0), Book({"BTC-USD": 1.0}))
    assert decision.vetoed_by is None
    combiner.validate(decision, state(data_ts=0), Book({"BTC-USD": 1.0}))
    assert decision.vetoed_by == "data_freshness"


def test_max_positions_vetoes_a_new_market_only() -> None:
    validator = MaxPositionsValidator(2)
    combiner = Combiner(validators=[validator])
    decision = combiner.vote("BTC-USD", [sig("a", Action.BUY)], 0)
    decision.opening = True
    combiner.validate(decision, state(), Book({"ETH-USD": 1.0, "SOL-USD": -2.0}))
    assert decision.veto_reason == "2 open position(s), max_positions 2"


def test_sizing_takes_the_smallest_configured_limit() -> None:
    risk = RiskManager(RiskSettings(max_position_size=5000, risk_per_trade=0.01, stop_loss_percent=2))
    exits = risk.exits("buy", 100.0)
    assert exits.stop_loss == pytest.approx(98.0)
    # equity 10,000: risk 100 over a 2.0 stop distance = 50 units; notional cap 5,000 / 100 = 50
    assert risk.size(100.0, 10_000, exits.stop_loss) == pytest.approx(50.0)
    assert risk.size(100.0, 4_000, exits.stop_loss) == pytest.approx(20.0)
    fixed = RiskManager(RiskSettings(order_quantity=3, max_position_size=200))
    assert fixed.size(100.0, 10_000, None) == 2.0
    assert RiskManager(RiskSettings()).size(50.0, 10_000, None) == 20.0  # 10 % of equity


def test_short_exits_mirror_long_ones() -> None:
    risk = RiskManager(RiskSettings(stop_loss_percent=2, take_profit_percent=4, trailing_stop_percent=1.5))
    exits = risk.exits("sell", 100.0)
    assert (exits.stop_loss, exits.take_profit, exits.trail_percent) == (102.0, 96.0, 1.5)


def test_settings_are_parsed_from_decimal_strings_and_checked() -> None:
    settings = RiskSettings.from_settings({"max_positions": "3", "max_drawdown": "0.2", "min_confidence": 1})
    assert (settings.max_positions, settings.max_drawdown) == (3, 0.2)
    for bad in ({"max_drawdown": "1.5"}, {"max_positions": 0}, {"stop_loss_percent": "-1"},
                {"risk_per_trade": "0.01"}, {"max_position_size": "lots"}):
        with pytest.raises(TradehallError):
            RiskSettings.from_settings(bad)


def test_max_drawdown_stops_and_the_risk_validator_vetoes_entries() -> None:
    risk = RiskManager(RiskSettings(max_drawdown=0.1))
    assert risk.on_equity(MONDAY, 1000.0) is TradingStatus.RUNNING
    assert risk.on_equity(MONDAY + 1, 1200.0) is TradingStatus.RUNNING
    assert risk.on_equity(MONDAY + 2, 1081.0) is TradingStatus.RUNNING
    assert risk.on_equity(MONDAY + 3, 1080.0) is TradingStatus.STOPPED
    assert risk.on_equity(MONDAY + 4, 5000.0) is TradingStatus.STOPPED  # for good
    combiner = Combiner(validators=[RiskLimitValidator(risk)])
    decision = combiner.vote("BTC-USD", [sig("a", Action.BUY)], 0)
    decision.opening = True
    combiner.validate(decision, state(), Book({}))
    assert decision.vetoed_by == "risk_limits"
    assert decision.veto_reason == "trading stopped: max_drawdown: drawdown 0.100000 reached 0.1"


def test_weekly_target_pauses_until_the_next_utc_week() -> None:
    risk = RiskManager(RiskSettings(weekly_target=0.05))
    risk.on_equity(MONDAY + DAY, 1000.0)
    assert risk.on_equity(MONDAY + 2 * DAY, 1049.0) is TradingStatus.RUNNING
    assert risk.on_equity(MONDAY + 3 * DAY, 1050.0) is TradingStatus.PAUSED
    assert risk.on_equity(MONDAY + 6 * DAY, 1000.0) is TradingStatus.PAUSED
    assert risk.on_equity(MONDAY + 7 * DAY, 1000.0) is TradingStatus.RUNNING  # next Monday 00:00 UTC


def test_signal_confidence_is_bounded() -> None:
    with pytest.raises(ValueError):
        Signal(market="X", action=Action.BUY, confidence=1.5)
    with pytest.raises(TradehallError):
        Combiner  # noqa: B018 - keeps the import list honest
        RiskSettings(max_positions=0)
