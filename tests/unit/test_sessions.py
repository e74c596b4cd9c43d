"""Live sessions inside a real service (manual clock, SQLite read models): a cycle's bar reaches the
strategies, their signal becomes a decision and an order with its exits; vetoes are recorded with the
validator's name; pause, resume and stop; a restart rebuilds the strategies from the stored bars and
never sends an order twice.

Time moves only by the manual clock and `AdvanceTime`; the tests wait on the session's own progress
(`LiveSession.caught_up(seq)`), never on a sleep.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradehall.domain.commands import AdvanceTime, AnyCommand, CreateMarket, Deposit, OpenAccount, Quote
from tradehall.domain.enums import AccountKind, MarketKind, Venue
from tradehall.domain.errors import TradehallError
from tradehall.domain.events import AnyEvent, OrderAccepted, QuoteUpdated
from tradehall.domain.market import MarketSpec
from tradehall.engine import views
from tradehall.journal import read_records
from tradehall.journal.records import JournalRecord
from tradehall.service.clock import ManualClock
from tradehall.service.settings import Settings
from tradehall.service.wiring import Service
from tradehall.store import CandleRow, upsert_candles
from tradehall.store import sessions as repo
from tradehall.store.types import utc_of_ns
from tradehall.strategies.base import Strategy
from tradehall.strategies.sessions import LiveSession, SessionInfo, SessionStatus

D = Decimal
S = 1_000_000_000
START = 1_900_000_020 * S  # 2030-03-17: far from today, on a whole minute (cycles align to the epoch)
SCRIPTED = Path(__file__).parents[1] / "data" / "strategies" / "scripted.py"


def _scripted() -> type[Strategy]:
    spec = importlib.util.spec_from_file_location("tests_scripted_strategy", SCRIPTED)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls: type[Strategy] = module.Scripted
    return cls


SCRIPTED_CLASS = _scripted()


def spot(symbol: str) -> MarketSpec:
    return MarketSpec(
        symbol=symbol,
        kind=MarketKind.SPOT,
        base=symbol.split("-")[0],
        quote="USD",
        tick_size=D("0.01"),
        lot_size=D("0.001"),
        venue=Venue.QUOTE,
        slippage=D(0),
    )


class Harness:
    """A service on a manual clock with quote-venue markets and one funded account of user `u1`."""

    def __init__(self, service: Service, clock: ManualClock) -> None:
        self.service = service
        self.clock = clock

    @property
    def manager(self) -> Any:
        return self.service.sessions

    async def submit(self, command: AnyCommand) -> int:
        return (await self.service.submit(command)).seq

    async def quote(self, market: str, mid: str, at: int) -> int:
        self.clock.set(at)
        price = D(mid)
        return await self.submit(Quote(market=market, bid=price - D("0.05"), ask=price + D("0.05")))

    async def tick(self, at: int) -> int:
        self.clock.set(at)
        return await self.submit(AdvanceTime())

    def live(self, session_id: str) -> LiveSession:
        return self.manager.sessions[session_id]  # type: ignore[no-any-return]

    async def cycle(self, session_id: str, market_mids: dict[str, str], n: int) -> int:
        """Prices in cycle `n` (60 s cycles from START), then the tick that closes it; waits until the
        session has worked through it."""
        seq = 0
        for market, mid in market_mids.items():
            seq = await self.quote(market, mid, START + n * 60 * S - 5 * S)
        seq = await self.tick(START + n * 60 * S)
        await self.live(session_id).caught_up(seq)
        return seq

    async def decisions(self, session_id: str) -> list[Any]:
        page = await self.service.store.call(repo.list_decisions, session_id, limit=1000)
        return list(reversed(page.items))

    async def signals(self, session_id: str) -> list[Any]:
        page = await self.service.store.call(repo.list_signals, session_id, limit=1000)
        return list(reversed(page.items))


async def start_service(data_dir: Path, clock: ManualClock) -> Service:
    settings = Settings(data_dir=data_dir, fsync="none", clock_tick_seconds=0)
    service = Service(settings, clock=clock)
    service.strategies.register(SCRIPTED_CLASS, "test")  # before start: resumed sessions name it
    await service.start()
    return service


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    clock = ManualClock(START)
    service = await start_service(tmp_path, clock)
    for symbol in ("SIM-USD", "ALT-USD"):
        await service.submit(CreateMarket(spec=spot(symbol)))
    await service.submit(OpenAccount(account_id="acc-1", owner="u1"))
    await service.submit(Deposit(account_id="acc-1", amount=D("10000")))
    yield Harness(service, clock)
    await service.stop()


async def create(
    harness: Harness, script: str, markets: list[str] | None = None, **settings: Any
) -> SessionInfo:
    values: dict[str, Any] = {"interval_seconds": 60, "max_position_size": "1000"}
    values.update(settings)
    info: SessionInfo = await harness.manager.create(
        "u1",
        "acc-1",
        markets or ["SIM-USD"],
        [{"name": "scripted", "parameters": {"script": script}}],
        values,
    )
    return info


async def test_a_cycle_makes_a_bar_a_signal_a_decision_and_an_order_with_its_exits(harness: Harness) -> None:
    info = await create(harness, "buy@2", stop_loss_percent="2", take_profit_percent="5")
    assert info.status is SessionStatus.RUNNING and info.anchor_ns == START
    await harness.cycle(info.id, {"SIM-USD": "100"}, 1)
    # a cycle with no price makes no bar
    await harness.cycle(info.id, {}, 2)
    await harness.cycle(info.id, {"SIM-USD": "101"}, 3)
    bars = await harness.service.store.call(repo.session_bars, info.id)
    assert [(b.cycle, b.close, b.start_ns, b.end_ns) for b in bars] == [
        (1, D("100"), START, START + 60 * S),
        (3, D("101"), START + 120 * S, START + 180 * S),
    ]
    signals = await harness.signals(info.id)
    assert [(s.action, s.price, s.reason) for s in signals] == [
        ("hold", D("100"), "bar 1"),
        ("buy", D("101"), "bar 2"),
    ]
    decisions = await harness.decisions(info.id)
    assert [(d.seq, d.action, d.status, d.vetoed_by) for d in decisions] == [
        (1, "hold", "hold", None),
        (2, "buy", "placed", None),
    ]
    entry = decisions[1]
    # 1000 USD at 101 -> 9.900990... rounded down to the lot
    assert entry.quantity == D("9.900")
    assert entry.client_order_id is not None and entry.client_order_id.startswith(info.id)
    order = json.loads(entry.order)
    assert (order["stop_loss"], order["take_profit"], order["type"]) == ("98.98", "106.05", "market")
    assert entry.order_id is not None
    # the order filled against the quote's ask (no slippage, no fee)
    position = harness.service.engine.positions_of("acc-1")
    assert [(p.market, p.quantity) for p in position] == [("SIM-USD", 9900)]


async def test_a_vetoed_decision_records_its_validator_and_sends_nothing(harness: Harness) -> None:
    info = await create(harness, "buy@2", markets=["SIM-USD", "ALT-USD"], max_positions=1)
    await harness.cycle(info.id, {"ALT-USD": "50"}, 1)
    await harness.cycle(info.id, {"ALT-USD": "50", "SIM-USD": "100"}, 2)  # ALT's 2nd bar: its entry
    await harness.cycle(info.id, {"SIM-USD": "100"}, 3)  # SIM's 2nd bar: a second position
    decisions = [
        (d.cycle, d.market, d.action, d.status, d.vetoed_by) for d in await harness.decisions(info.id)
    ]
    assert decisions == [
        (1, "ALT-USD", "hold", "hold", None),
        (2, "ALT-USD", "buy", "placed", None),
        (2, "SIM-USD", "hold", "hold", None),
        (3, "SIM-USD", "buy", "vetoed", "max_positions"),
    ]
    vetoed = (await harness.decisions(info.id))[-1]
    assert vetoed.reason == "scripted: bar 2; vetoed: 1 open position(s), max_positions 1"
    assert vetoed.order_id is None and vetoed.order is None


async def test_min_confidence_turns_a_weak_signal_into_a_hold(harness: Harness) -> None:
    info = await create(harness, "buy@1:0.4", min_confidence="0.5")
    await harness.cycle(info.id, {"SIM-USD": "100"}, 1)
    [decision] = await harness.decisions(info.id)
    assert (decision.action, decision.status, decision.confidence) == ("hold", "hold", D("0.4"))
    assert "below min_confidence" in decision.reason


async def test_pause_keeps_indicators_current_but_acts_on_nothing_then_resume_and_stop(
    harness: Harness,
) -> None:
    info = await create(harness, "buy@2,sell@3")
    await harness.cycle(info.id, {"SIM-USD": "100"}, 1)
    paused = await harness.manager.pause(info.id)
    assert (paused.status, paused.status_reason) == (SessionStatus.PAUSED, "paused by the user")
    await harness.cycle(info.id, {"SIM-USD": "101"}, 2)  # bar 2 (a buy) seen while paused: no decision
    assert [d.action for d in await harness.decisions(info.id)] == ["hold"]
    resumed = await harness.manager.resume(info.id)
    assert resumed.status is SessionStatus.RUNNING and resumed.status_reason is None
    await harness.cycle(info.id, {"SIM-USD": "102"}, 3)  # bar 3 is the sell: no position to close
    decisions = await harness.decisions(info.id)
    assert [(d.action, d.status) for d in decisions] == [("hold", "hold"), ("sell", "hold")]
    assert "no short entries" in decisions[1].reason
    stopped = await harness.manager.stop_session(info.id)
    assert (stopped.status, stopped.status_reason) == (SessionStatus.STOPPED, "stopped by the user")
    assert info.id not in harness.manager.sessions
    with pytest.raises(TradehallError) as refused:
        await harness.manager.resume(info.id)
    assert refused.value.code.value == "conflict"
    bars = await harness.service.store.call(repo.session_bars, info.id)
    assert [b.cycle for b in bars] == [1, 2, 3]


async def test_a_failing_strategy_fails_its_session_only(harness: Harness) -> None:
    failing: SessionInfo = await harness.manager.create(
        "u1",
        "acc-1",
        ["SIM-USD"],
        [{"name": "scripted", "parameters": {"fail_at": 1}}],
        {"interval_seconds": 60},
    )
    failing_task = harness.manager._tasks[failing.id]
    healthy = await create(harness, "buy@1")
    await harness.cycle(healthy.id, {"SIM-USD": "100"}, 1)
    await asyncio.wait([failing_task], timeout=10)  # it ends on the same record, after storing its status
    stored = await harness.manager.get(failing.id)
    assert stored.status is SessionStatus.FAILED
    assert stored.status_reason == "RuntimeError: scripted failure at bar 1"
    assert [d.status for d in await harness.decisions(healthy.id)] == ["placed"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"interval_seconds": 0}, "settings.interval_seconds must be in [1, 604800], not 0"),
        ({"min_confidence": "1.5"}, "settings.min_confidence must be in [0, 1], not '1.5'"),
        ({"stop_loss_percnt": "2"}, "unknown setting(s) ['stop_loss_percnt']"),
        ({"order_type": "stop"}, "settings.order_type must be one of ['market', 'limit'], not 'stop'"),
        ({"risk_per_trade": "0.01"}, "settings.risk_per_trade needs stop_loss_percent (the stop distance)"),
    ],
)
async def test_bad_settings_are_refused_and_create_nothing(
    harness: Harness, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(TradehallError) as refused:
        await harness.manager.create("u1", "acc-1", ["SIM-USD"], [{"name": "scripted"}], settings)
    assert (refused.value.code.value, refused.value.detail) == ("invalid_request", message)
    page = await harness.service.store.call(repo.list_sessions, owner="u1")
    assert page.items == []


async def test_unknown_strategy_market_and_parameter_are_refused(harness: Harness) -> None:
    cases: list[tuple[list[str], list[dict[str, Any]], str, str]] = [
        (["SIM-USD"], [{"name": "nope"}], "invalid_request", "strategies[0].name: no strategy named 'nope'"),
        (["NOPE-USD"], [{"name": "scripted"}], "not_found", "market NOPE-USD not found"),
        (
            ["SIM-USD"],
            [{"name": "scripted", "parameters": {"speed": 1}}],
            "invalid_request",
            "strategies[0] (scripted): unknown parameter(s) ['speed']; "
            "this strategy takes ['fail_at', 'script', 'warmup_bars']",
        ),
    ]
    for markets, strategies, code, detail in cases:
        with pytest.raises(TradehallError) as refused:
            await harness.manager.create("u1", "acc-1", markets, strategies, {})
        assert (refused.value.code.value, refused.value.detail) == (code, detail)


async def test_a_restart_rebuilds_indicators_and_never_sends_an_order_twice(tmp_path: Path) -> None:
    clock = ManualClock(START)
    service = await start_service(tmp_path, clock)
    await service.submit(CreateMarket(spec=spot("SIM-USD")))
    await service.submit(OpenAccount(account_id="acc-1", owner="u1"))
    await service.submit(Deposit(account_id="acc-1", amount=D("10000")))
    harness = Harness(service, clock)
    info = await create(harness, "buy@2,sell@4")
    await harness.cycle(info.id, {"SIM-USD": "100"}, 1)

    # the crash: the engine accepts the entry, the process dies before the decision is marked placed
    live = harness.live(info.id)
    real_submit = live.ports.submit

    async def accept_then_die(command: AnyCommand) -> tuple[AnyEvent, ...]:
        await real_submit(command)
        raise asyncio.CancelledError

    live.ports = replace(live.ports, submit=accept_then_die)
    task = harness.manager._tasks[info.id]
    await harness.quote("SIM-USD", "101", START + 115 * S)
    await harness.tick(START + 120 * S)
    await asyncio.wait([task], timeout=10)
    assert task.cancelled()
    [_, pending] = await harness.decisions(info.id)
    assert (pending.action, pending.status, pending.order_id) == ("buy", "pending", None)
    await service.stop()

    service = await start_service(tmp_path, clock)
    harness = Harness(service, clock)
    live = harness.live(info.id)
    await live.caught_up(0)
    await harness.cycle(info.id, {"SIM-USD": "102"}, 3)
    await harness.cycle(info.id, {"SIM-USD": "103"}, 4)  # bar 4 after the restart: the sell
    decisions = await harness.decisions(info.id)
    assert [(d.seq, d.action, d.status) for d in decisions] == [
        (1, "hold", "hold"),
        (2, "buy", "placed"),
        (3, "hold", "hold"),
        (4, "sell", "placed"),
    ]
    accepted = [
        event
        for record in read_records(tmp_path / "journal")
        for event in record.events
        if isinstance(event, OrderAccepted) and event.account_id == "acc-1"
    ]
    assert [event.client_order_id for event in accepted] == [
        decisions[1].client_order_id,
        decisions[3].client_order_id,
    ]
    assert decisions[1].order_id == str(accepted[0].order_id)
    assert service.engine.positions_of("acc-1") == [] or all(
        p.quantity == 0 for p in service.engine.positions_of("acc-1")
    )
    await service.stop()


async def test_an_entry_with_a_trailing_stop_percent_gets_its_trailing_stop(harness: Harness) -> None:
    info = await create(harness, "buy@1", trailing_stop_percent="1.5")
    await harness.cycle(info.id, {"SIM-USD": "100"}, 1)
    # the entry's fill is a record of its own: the session sees it and sends the exit
    seq = await harness.tick(START + 61 * S)
    await harness.live(info.id).caught_up(seq)
    decisions = await harness.decisions(info.id)
    assert [(d.action, d.status, d.reason) for d in decisions] == [
        ("buy", "placed", "scripted: bar 1"),
        ("sell", "placed", "trailing stop exit"),
    ]
    entry, exit_ = decisions
    assert exit_.client_order_id == f"{entry.client_order_id}-t"
    assert exit_.quantity == entry.quantity == D("10")  # 1000 USD at the bar's close (100)
    assert exit_.order_id is not None
    order = views.order(harness.service.engine, int(exit_.order_id))
    assert order is not None
    assert (order.type.value, order.status.value) == ("trailing_stop", "pending_trigger")
    assert order.trail_ppm == 15_000  # 1.5 %


async def test_an_assessment_accounts_session_meets_its_tiers_rules_on_every_order(tmp_path: Path) -> None:
    tiers = tmp_path / "tiers.toml"
    tiers.write_text(
        '[tiers.session-test]\nstarting_balance = "10000"\nmax_risk_per_trade = "0.01"\n'
        'allowed_markets = ["SIM-USD"]\n'
    )
    clock = ManualClock(START)
    settings = Settings(data_dir=tmp_path, fsync="none", clock_tick_seconds=0, assessment_tiers_file=tiers)
    service = Service(settings, clock=clock)
    service.strategies.register(SCRIPTED_CLASS, "test")
    await service.start()
    try:
        for symbol in ("SIM-USD", "ALT-USD"):
            await service.submit(CreateMarket(spec=spot(symbol)))
        await service.submit(
            OpenAccount(account_id="eval-1", owner="u1", kind=AccountKind.ASSESSMENT, tier="session-test")
        )
        harness = Harness(service, clock)
        strategies = [{"name": "scripted", "parameters": {"script": "buy@1"}}]

        async def first_decision(market: str, n: int, **settings: Any) -> Any:
            """One session at a time (they would race for the same balance), its first decision."""
            info = await harness.manager.create(
                "u1", "eval-1", [market], strategies, {"interval_seconds": 60, **settings}
            )
            await harness.cycle(info.id, {market: "100"}, n)
            [decision] = await harness.decisions(info.id)
            await harness.manager.stop_session(info.id)
            return decision

        # no stop-loss: the risk is the whole cost, 5000 USD, over the tier's 1 % of 10000
        refused = await first_decision("SIM-USD", 1, max_position_size="5000")
        assert (refused.status, refused.order_id) == ("refused", None)
        assert refused.error.startswith("risk_limit_exceeded: ")
        # a market the tier does not allow
        outside = await first_decision("ALT-USD", 2, max_position_size="50")
        assert (outside.status, outside.error) == (
            "refused",
            "risk_limit_exceeded: market ALT-USD is not allowed in this tier",
        )
        # with a 1 % stop the risk is 50 USD plus the exit's fee: within the rule
        placed = await first_decision("SIM-USD", 3, max_position_size="5000", stop_loss_percent="1")
        assert (placed.status, placed.quantity) == ("placed", D("50"))
        assert json.loads(placed.order or "{}")["stop_loss"] == "99.00"
    finally:
        await service.stop()


async def test_records_of_other_markets_only_move_time_and_do_not_pile_up(harness: Harness) -> None:
    info = await create(harness, "buy@9")
    live = harness.live(info.id)
    base = harness.service.runner.durable_seq + 100

    def record(n: int, market: str) -> JournalRecord:
        event = QuoteUpdated(market=market, bid=10_000, ask=10_010, last=None, source="t", ts=START + n)
        return JournalRecord(seq=base + n, ts=START + n, command=AdvanceTime(ts=START + n), events=(event,))

    # fed and checked with no await in between: the session's task has not run
    live.feed([record(0, "SIM-USD"), *(record(n, "ALT-USD") for n in range(1, 6)), record(6, "SIM-USD")])
    live.feed([record(n, "ALT-USD") for n in range(7, 10)])
    assert [r.seq - base for r in live._inbox] == [0, 5, 6, 9]
    await harness.manager.stop_session(info.id)  # these records are made up: never worked on


async def test_a_user_has_at_most_max_sessions_per_user_running(harness: Harness) -> None:
    harness.manager.max_per_owner = 2
    first = await create(harness, "")
    await create(harness, "")
    with pytest.raises(TradehallError) as refused:
        await create(harness, "")
    assert (refused.value.code.value, refused.value.detail) == (
        "conflict",
        "at most 2 running or paused sessions per user; stop one first",
    )
    await harness.manager.stop_session(first.id)
    assert (await create(harness, "")).status is SessionStatus.RUNNING


async def test_max_drawdown_stops_the_session_with_its_reason(harness: Harness) -> None:
    info = await create(harness, "buy@1", max_position_size="9000", max_drawdown="0.02")
    task = harness.manager._tasks[info.id]
    await harness.cycle(info.id, {"SIM-USD": "100"}, 1)  # 90 units bought at 100.05
    await harness.cycle(info.id, {"SIM-USD": "99"}, 2)  # equity 9,905.50: under 1 % down
    assert (await harness.manager.get(info.id)).status is SessionStatus.RUNNING
    seq = await harness.quote("SIM-USD", "97", START + 175 * S)
    await harness.tick(START + 180 * S)  # about 3 % below the peak: the session stops
    await asyncio.wait([task], timeout=10)
    stopped = await harness.manager.get(info.id)
    assert stopped.status is SessionStatus.STOPPED
    # the 10,000 peak; 995.50 cash (90 bought at 100.05, no fee on this market) + 90 x 97 = 9,725.50
    assert stopped.status_reason == "max_drawdown: drawdown 0.027450 reached 0.02"
    assert seq > 0 and info.id not in harness.manager.sessions


async def test_the_weekly_target_pauses_the_session_until_the_next_utc_week(harness: Harness) -> None:
    # START is a Sunday 17:47 UTC; the next week begins 373 minutes later (Monday 00:00 UTC)
    info = await create(harness, "buy@1", max_position_size="9000", weekly_target="0.01")
    await harness.cycle(info.id, {"SIM-USD": "100"}, 1)  # the week's first equity: 10,000; 90 bought
    await harness.cycle(info.id, {"SIM-USD": "102"}, 2)  # 995.50 + 90 x 102 = 10,175.50: +1.76 %
    paused = await harness.manager.get(info.id)
    assert paused.status is SessionStatus.PAUSED
    assert paused.status_reason == "weekly_target: 0.01 reached; entries resume next week"
    await harness.cycle(info.id, {"SIM-USD": "102"}, 372)  # its bar ends Sunday 23:59: paused
    assert (await harness.manager.get(info.id)).status is SessionStatus.PAUSED
    await harness.cycle(info.id, {"SIM-USD": "102"}, 373)  # its bar ends Monday 00:00: a new week
    resumed = await harness.manager.get(info.id)
    assert (resumed.status, resumed.status_reason) == (SessionStatus.RUNNING, None)


async def test_a_new_session_starts_warm_on_the_markets_candles_and_sees_them_again_after_a_restart(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    service = await start_service(tmp_path, clock)
    await service.submit(CreateMarket(spec=spot("SIM-USD")))
    await service.submit(OpenAccount(account_id="acc-1", owner="u1"))
    await service.submit(Deposit(account_id="acc-1", amount=D("10000")))
    candles = [
        CandleRow(
            "SIM-USD",
            "1m",
            utc_of_ns(START - (4 - i) * 60 * S),
            D(90 + i),
            D(91 + i),
            D(89 + i),
            D(90 + i),
            D(1),
        )
        for i in range(4)
    ]
    await service.store.call(upsert_candles, candles)
    harness = Harness(service, clock)
    # three bars of warm-up: the 4 stored candles' last 3 are bars 1-3, the first live bar is bar 4
    info: SessionInfo = await harness.manager.create(
        "u1",
        "acc-1",
        ["SIM-USD"],
        [{"name": "scripted", "parameters": {"script": "buy@4,sell@5", "warmup_bars": 3}}],
        {"interval_seconds": 60, "max_position_size": "1000"},
    )
    await harness.cycle(info.id, {"SIM-USD": "100"}, 1)
    assert [(d.action, d.status, d.reason) for d in await harness.decisions(info.id)] == [
        ("buy", "placed", "scripted: bar 4")
    ]
    await service.stop()
    service = await start_service(tmp_path, clock)  # candles, then the stored bar: the next is bar 5
    harness = Harness(service, clock)
    await harness.cycle(info.id, {"SIM-USD": "101"}, 2)
    decisions = await harness.decisions(info.id)
    assert [(d.action, d.reason) for d in decisions] == [
        ("buy", "scripted: bar 4"),
        ("sell", "scripted: bar 5"),
    ]
    await service.stop()
