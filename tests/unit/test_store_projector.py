"""The projector on SQLite: exact values per event type, exactly-once, resume, retry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.fixtures.journals import SPEC, EngineMarket
from tradehall.domain.commands import AdvanceTime
from tradehall.domain.enums import (
    AccountKind,
    AccountStatus,
    CancelReason,
    CostBasis,
    Liquidity,
    MarketKind,
    MarketStatus,
    OrderSide,
    OrderStatus,
    OrderType,
    Outcome,
    Side,
    TimeInForce,
    TradingState,
)
from tradehall.domain.errors import Code
from tradehall.domain.events import (
    AccountOpened,
    AccountStatusChanged,
    AnyEvent,
    AssessmentUpdated,
    BalanceChanged,
    BookChanged,
    MarketCreated,
    MarketSettled,
    MarketStatusChanged,
    MarkPriceUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    PositionChanged,
    TradeExecuted,
)
from tradehall.domain.market import MarketSpec
from tradehall.journal.records import JournalRecord
from tradehall.store import (
    ProjectionError,
    Projector,
    ProjectorConfig,
    RetryPolicy,
    SequenceGapError,
    upgrade,
)
from tradehall.store.db import create_store_engine
from tradehall.store.models import (
    Account,
    Balance,
    EquityPoint,
    Fill,
    Market,
    Order,
    Position,
    ProjectionState,
)

T0 = 1_790_000_000_000_000_000  # 2026-09-21T14:13:20Z
BTC = MarketSpec(
    symbol="BTC-USD",
    kind=MarketKind.SPOT,
    base="BTC",
    quote="USD",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("0.0001"),
    taker_fee=Decimal("0.001"),
)
ELECTION = MarketSpec(
    symbol="ELECTION",
    kind=MarketKind.BINARY,
    base="YES",
    quote="USD",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("1"),
)
FAST = RetryPolicy(initial_delay=0.001, max_delay=0.01)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = create_store_engine(url)
    yield engine
    engine.dispose()


def projector(engine: Engine, **kwargs: Any) -> Projector:
    config = ProjectorConfig(
        retry=FAST, equity_interval_seconds=0.0, max_batch_records=kwargs.pop("batch", 1000)
    )
    return Projector(engine, config, **kwargs)


class Journal:
    """Builds records: one per `add`, seq from 1, ts one millisecond apart."""

    def __init__(self) -> None:
        self.records: list[JournalRecord] = []

    @property
    def ts(self) -> int:
        return T0 + len(self.records) * 1_000_000

    def add(self, *events: AnyEvent) -> JournalRecord:
        record = JournalRecord(
            seq=len(self.records) + 1, ts=self.ts, command=AdvanceTime(ts=self.ts), events=tuple(events)
        )
        self.records.append(record)
        return record


def accepted(
    order_id: int, account: str, market: str, side: Side, qty: int, price: int | None, **kw: Any
) -> OrderAccepted:
    fields: dict[str, Any] = {
        "order_id": order_id,
        "account_id": account,
        "market": market,
        "side": side,
        "requested_side": OrderSide(side.value),
        "type": OrderType.LIMIT,
        "time_in_force": TimeInForce.GTC,
        "quantity": qty,
        "price": price,
        "stop_price": None,
        "expire_at": None,
        "post_only": False,
        "reduce_only": False,
        "client_order_id": f"cid-{order_id}",
        "status": OrderStatus.OPEN,
        "ts": T0,
    }
    fields.update(kw)
    return OrderAccepted(**fields)


def filled(
    order_id: int, account: str, trade_id: int, side: Side, price: int, qty: int, total: int, **kw: Any
) -> OrderFilled:
    fields: dict[str, Any] = {
        "order_id": order_id,
        "account_id": account,
        "market": "BTC-USD",
        "trade_id": trade_id,
        "side": side,
        "price": price,
        "quantity": qty,
        "fee": 0,
        "liquidity": Liquidity.MAKER,
        "realized_pnl": 0,
        "filled_quantity": total,
        "status": OrderStatus.PARTIALLY_FILLED,
        "ts": T0,
    }
    fields.update(kw)
    return OrderFilled(**fields)


def opened(account: str, currency: str = "USD") -> AccountOpened:
    return AccountOpened(
        account_id=account,
        owner="alice",
        kind=AccountKind.CASH,
        currency=currency,
        cost_basis=CostBasis.AVERAGE,
        tier=None,
        ts=T0,
    )


async def feed(records: Iterable[JournalRecord]) -> AsyncIterator[JournalRecord]:
    for record in records:
        yield record


def count(engine: Engine, model: type[Any]) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def get(engine: Engine, model: type[Any], key: Any) -> Any:
    with Session(engine) as session:
        return session.get(model, key)


async def test_orders_and_fills_carry_exact_decimals_from_ticks_lots_and_minor_units(engine: Engine) -> None:
    journal = Journal()
    journal.add(MarketCreated(spec=BTC, ts=T0), opened("a1"), opened("a2"))
    journal.add(accepted(7, "a1", "BTC-USD", Side.BUY, 30_000, 6_400_050))
    journal.add(
        accepted(8, "a2", "BTC-USD", Side.SELL, 10_000, None, type=OrderType.MARKET),
        filled(7, "a1", 1, Side.BUY, 6_400_050, 10_000, 10_000),
        filled(
            8,
            "a2",
            1,
            Side.SELL,
            6_400_050,
            10_000,
            10_000,
            fee=64,
            liquidity=Liquidity.TAKER,
            status=OrderStatus.FILLED,
        ),
        TradeExecuted(
            trade_id=1,
            market="BTC-USD",
            price=6_400_050,
            quantity=10_000,
            taker_side=Side.SELL,
            maker_order_id=7,
            taker_order_id=8,
            maker_account_id="a1",
            taker_account_id="a2",
            ts=T0,
        ),
    )
    journal.add(
        filled(7, "a1", 2, Side.BUY, 6_400_000, 10_000, 20_000, fee=1),
    )
    p = projector(engine)
    await p.run(feed(journal.records))
    order = get(engine, Order, "7")
    assert (order.side, order.quantity, order.price) == ("buy", Decimal("3"), Decimal("64000.5"))
    assert order.filled_quantity == Decimal("2")
    assert order.average_price == Decimal("64000.25")
    assert order.fees == Decimal("0.01")
    assert order.status == "partially_filled"
    assert order.client_order_id == "cid-7"
    taker = get(engine, Order, "8")
    assert (taker.type, taker.price, taker.status, taker.fees) == ("market", None, "filled", Decimal("0.64"))
    fill = get(engine, Fill, (3, datetime.fromtimestamp(T0 // 10**9, UTC).replace(microsecond=0)))
    assert fill is not None
    assert (fill.trade_id, fill.order_id, fill.liquidity, fill.fee) == (1, "8", "taker", Decimal("0.64"))
    assert (fill.price, fill.quantity) == (Decimal("64000.5"), Decimal("1"))
    assert count(engine, Fill) == 3
    market = get(engine, Market, "BTC-USD")
    assert (market.last_price, market.tick_size, market.status) == (
        Decimal("64000.5"),
        Decimal("0.01"),
        "open",
    )
    assert await p.last_seq() == 4
    p.close()


async def test_a_rejected_order_is_not_stored_and_book_changes_are_ignored(engine: Engine) -> None:
    journal = Journal()
    journal.add(MarketCreated(spec=BTC, ts=T0), opened("a1"))
    journal.add(
        OrderRejected(
            account_id="a1",
            market="BTC-USD",
            client_order_id="x",
            code=Code.INSUFFICIENT_BALANCE,
            reason="no money",
            ts=T0,
        ),
        BookChanged(market="BTC-USD", sequence=1, bids=((1, 1),), asks=()),
    )
    p = projector(engine)
    await p.run(feed(journal.records))
    assert count(engine, Order) == 0
    assert await p.last_seq() == 2
    p.close()


async def test_cancel_expire_amend_and_trigger_update_the_order(engine: Engine) -> None:
    journal = Journal()
    journal.add(MarketCreated(spec=BTC, ts=T0), opened("a1"))
    journal.add(
        accepted(1, "a1", "BTC-USD", Side.BUY, 10, 100),
        accepted(2, "a1", "BTC-USD", Side.BUY, 10, 100, time_in_force=TimeInForce.DAY),
        accepted(3, "a1", "BTC-USD", Side.BUY, 10, 100),
        accepted(
            4,
            "a1",
            "BTC-USD",
            Side.SELL,
            10,
            None,
            stop_price=90,
            type=OrderType.STOP,
            status=OrderStatus.PENDING_TRIGGER,
        ),
    )
    journal.add(
        OrderCancelled(
            order_id=1,
            account_id="a1",
            market="BTC-USD",
            filled_quantity=0,
            reason=CancelReason.USER,
            ts=T0 + 5_000_000,
        ),
        OrderExpired(order_id=2, account_id="a1", market="BTC-USD", filled_quantity=0, ts=T0),
        OrderAmended(
            order_id=3, account_id="a1", market="BTC-USD", price=99, quantity=7, priority_lost=True, ts=T0
        ),
        OrderTriggered(order_id=4, account_id="a1", market="BTC-USD", ts=T0),
    )
    p = projector(engine)
    await p.run(feed(journal.records))
    first = get(engine, Order, "1")
    assert first.status == "cancelled"
    assert first.updated_at == datetime.fromtimestamp((T0 + 5_000_000) / 10**9, UTC)
    assert get(engine, Order, "2").status == "expired"
    amended = get(engine, Order, "3")
    assert (amended.price, amended.quantity, amended.status) == (Decimal("0.99"), Decimal("0.0007"), "open")
    triggered = get(engine, Order, "4")
    assert (triggered.status, triggered.stop_price) == ("open", Decimal("0.90"))
    p.close()


async def test_balances_positions_marks_and_equity(engine: Engine) -> None:
    journal = Journal()
    journal.add(MarketCreated(spec=BTC, ts=T0), opened("a1"))
    journal.add(
        BalanceChanged(
            account_id="a1",
            currency="USD",
            total=10_000_000,
            held=250_000,
            delta=10_000_000,
            reason="deposit",
        )
    )
    # 0.5 BTC bought at 60,000.00: cost = 6,000,000 ticks x 5,000 lots.
    journal.add(
        PositionChanged(
            account_id="a1",
            market="BTC-USD",
            quantity=5_000,
            cost=6_000_000 * 5_000,
            realized_pnl=0,
            margin=0,
        ),
        BalanceChanged(
            account_id="a1", currency="USD", total=7_000_000, held=250_000, delta=-3_000_000, reason="fill"
        ),
        BalanceChanged(
            account_id="a1", currency="BTC", total=50_000_000, held=0, delta=50_000_000, reason="fill"
        ),
    )
    journal.add(MarkPriceUpdated(market="BTC-USD", price=6_200_000, ts=T0))
    p = projector(engine, batch=1)
    await p.run(feed(journal.records))
    usd = get(engine, Balance, ("a1", "USD", 0))
    assert (usd.total, usd.held, usd.available) == (
        Decimal("70000.00"),
        Decimal("2500.00"),
        Decimal("67500.00"),
    )
    assert get(engine, Balance, ("a1", "BTC", 0)).total == Decimal("0.50000000")
    position = get(engine, Position, ("a1", "BTC-USD"))
    assert (position.side, position.quantity, position.average_entry_price) == (
        "long",
        Decimal("0.5"),
        Decimal("60000"),
    )
    assert (position.mark_price, position.unrealized_pnl) == (Decimal("62000"), Decimal("1000"))
    account = get(engine, Account, "a1")
    # Spot: cash 70,000 + 0.5 BTC at 62,000.
    assert (account.balance, account.available) == (Decimal("70000.00"), Decimal("67500.00"))
    assert (account.equity, account.unrealized_pnl) == (Decimal("101000"), Decimal("1000"))
    assert (account.peak_equity, account.drawdown) == (Decimal("101000"), Decimal("0"))
    with Session(engine) as session:
        points = [
            (point.seq, point.equity)
            for point in session.scalars(select(EquityPoint).order_by(EquityPoint.seq))
        ]
    assert points == [
        (1, Decimal("0.00")),
        (2, Decimal("100000.00")),
        (3, Decimal("70000.00")),  # as the engine: no price yet (no trade, no mark), the BTC counts 0
        (4, Decimal("101000.00")),
    ]
    p.close()


async def test_binary_no_position_shows_the_no_price_and_settlement_closes_it(engine: Engine) -> None:
    journal = Journal()
    journal.add(MarketCreated(spec=ELECTION, ts=T0), opened("a1"))
    # 10 NO bought at 0.30 = 10 YES sold at 0.70: signed quantity -10, signed cost -700 tick-lots.
    journal.add(
        PositionChanged(account_id="a1", market="ELECTION", quantity=-10, cost=-700, realized_pnl=0, margin=0)
    )
    journal.add(MarkPriceUpdated(market="ELECTION", price=60, ts=T0))
    p = projector(engine)
    await p.run(feed(journal.records))
    position = get(engine, Position, ("a1", "ELECTION"))
    assert (position.side, position.quantity, position.average_entry_price) == (
        "no",
        Decimal("-10"),
        Decimal("0.30"),
    )
    assert position.unrealized_pnl == Decimal("1.00")
    assert get(engine, Account, "a1").equity == Decimal("4.00")
    journal.add(
        MarketStatusChanged(market="ELECTION", status=MarketStatus.CLOSED, ts=T0),
        MarketSettled(market="ELECTION", outcome=Outcome.NO, payouts=(("a1", 1000),), ts=T0),
        AccountStatusChanged(
            account_id="a1",
            status=AccountStatus.PASSED,
            trading_state=TradingState.HALTED,
            reason="target",
            ts=T0,
        ),
    )
    await p.apply(journal.records[-1:])
    settled = get(engine, Position, ("a1", "ELECTION"))
    assert (settled.side, settled.quantity, settled.unrealized_pnl) == ("flat", Decimal("0"), Decimal("0"))
    market = get(engine, Market, "ELECTION")
    assert (market.status, market.outcome) == ("settled", "no")
    account = get(engine, Account, "a1")
    assert (account.status, account.trading_state) == ("passed", "halted")
    p.close()


async def test_records_already_projected_are_skipped(engine: Engine) -> None:
    market = EngineMarket(accounts=4)
    records = market.setup() + market.steps(300)
    p = projector(engine, batch=50)
    await p.run(feed(records))
    await p.apply(records[100:250])
    await p.run(feed(records))
    assert count(engine, Fill) == market.fills
    assert count(engine, Order) == len(market.statuses)
    assert await p.last_seq() == records[-1].seq
    p.close()


async def test_a_gap_in_the_sequence_is_refused(engine: Engine) -> None:
    market = EngineMarket(accounts=3)
    records = market.setup() + market.steps(20)
    p = projector(engine)
    await p.apply(records[:5])
    with pytest.raises(SequenceGapError) as caught:
        await p.apply(records[6:])
    assert (caught.value.expected, caught.value.got) == (6, 7)
    assert await p.last_seq() == 5
    p.close()


async def test_a_crash_before_commit_rolls_the_whole_batch_back_and_a_restart_resumes(engine: Engine) -> None:
    market = EngineMarket(accounts=6, seed=3)
    records = market.setup() + market.steps(2_000)
    batches = 0

    def crash_on_fourth_batch(point: str) -> None:
        nonlocal batches
        if point != "before_commit":
            return
        batches += 1
        if batches == 4:
            raise RuntimeError("killed")

    first = projector(engine, batch=100, fault=crash_on_fourth_batch)
    with pytest.raises(RuntimeError, match="killed"):
        await first.run(feed(records))
    first.close()
    assert count(engine, Fill) == sum(
        1 for record in records[:300] for ev in record.events if isinstance(ev, OrderFilled)
    )
    second = projector(engine, batch=100)
    resume = await second.last_seq()
    assert resume == 300
    await second.run(feed(r for r in records if r.seq > resume))
    assert count(engine, Fill) == market.fills
    assert_matches_synthetic(engine, market)
    second.close()


async def test_a_transient_database_error_is_retried_and_counted(engine: Engine) -> None:
    market = EngineMarket(accounts=4)
    records = market.setup() + market.steps(500)
    failures = iter([True, True, False])

    def flaky(point: str) -> None:
        if point == "before_commit" and next(failures, False):
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    p = projector(engine, batch=200, fault=flaky)
    await p.run(feed(records))
    assert p.retries == 2
    assert p.connected
    assert_matches_synthetic(engine, market)
    p.close()


async def test_resuming_in_a_new_projector_gives_the_same_tables_as_one_run(tmp_path: Path) -> None:
    market = EngineMarket(accounts=5, seed=11)
    records = market.setup() + market.steps(800) + [market.mark(128_005)] + market.steps(200)
    dumps = []
    for name, cut in (("one", None), ("two", 437)):
        url = f"sqlite:///{tmp_path / name}.db"
        upgrade(url)
        engine = create_store_engine(url)
        if cut is None:
            p = projector(engine, batch=64)
            await p.run(feed(records))
            p.close()
        else:
            for part in (records[:cut], records[cut:]):
                p = projector(engine, batch=64)
                await p.run(feed(part))
                p.close()
        dumps.append(dump(engine))
        engine.dispose()
    assert dumps[0] == dumps[1]


async def test_lag_counts_what_the_engine_sequenced_but_the_store_does_not_show(engine: Engine) -> None:
    market = EngineMarket(accounts=3)
    records = market.setup() + market.steps(40)
    p = projector(engine)
    await p.apply(records[:10])
    p.observe_engine_seq(records[-1].seq)
    assert p.lag == records[-1].seq - 10
    await p.apply(records[10:])
    assert p.lag == 0
    p.close()


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    tables = ("accounts", "balances", "positions", "orders", "fills", "markets", "projection_state")
    with engine.connect() as connection:
        return {
            table: sorted(tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}")))
            for table in tables
        }


def assert_matches_synthetic(engine: Engine, market: EngineMarket) -> None:
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Fill)) == market.fills
        statuses = {row[0]: row[1] for row in session.execute(select(Order.id, Order.status))}
        assert statuses == {str(order_id): status.value for order_id, status in market.statuses.items()}
        balances = {row.account_id: row.total for row in session.scalars(select(Balance))}
        assert balances == {account: Decimal(cash).scaleb(-2) for account, cash in market.cash.items()}
        positions = {row.account_id: row for row in session.scalars(select(Position))}
        for account, (qty, cost, realized) in market.positions.items():
            row = positions[account]
            assert row.quantity == Decimal(qty) * SPEC.lot_size
            assert row.cost == Decimal(cost) * SPEC.tick_size * SPEC.lot_size
            assert row.realized_pnl == Decimal(realized).scaleb(-2)
        state = session.get(ProjectionState, "read_models")
        assert state is not None
        assert state.last_seq == market.seq


async def test_a_batch_the_database_already_holds_is_not_written_twice(engine: Engine) -> None:
    """The write re-checks last_seq under a row lock: a commit whose acknowledgement was lost, or
    another projector that got there first, never leads to a second copy of a batch."""
    market = EngineMarket(accounts=4, seed=6)
    records = market.setup() + market.steps(200)
    late = projector(engine)
    await late.apply(records[:10])
    other = projector(engine)
    await other.apply(records[10:120])
    assert await late.apply(records[10:60]) == 120
    assert count(engine, Fill) == sum(
        1 for record in records[:120] for ev in record.events if isinstance(ev, OrderFilled)
    )
    await late.apply(records[120:130])  # its mirror was reloaded at seq 120, so this just continues
    assert await late.last_seq() == 130
    with pytest.raises(ProjectionError, match="is at seq 130 in the database, expected 120"):
        await other.apply(records[120:140])  # `other` still believes the projection is at 120
    fresh = projector(engine)
    await fresh.apply(records)
    assert_matches_synthetic(engine, market)
    for p in (late, other, fresh):
        p.close()


async def test_a_commit_whose_acknowledgement_is_lost_is_not_applied_again(engine: Engine) -> None:
    market = EngineMarket(accounts=4, seed=12)
    records = market.setup() + market.steps(600)
    lost = iter([False, True, False, True])

    def lose_the_ack(point: str) -> None:
        if point == "after_commit" and next(lost, False):
            raise OperationalError("COMMIT", {}, Exception("connection reset while reading the reply"))

    p = projector(engine, batch=100, fault=lose_the_ack)
    await p.run(feed(records))
    assert p.retries == 2
    assert_matches_synthetic(engine, market)
    p.close()


async def test_an_assessment_account_takes_its_peak_equity_from_the_engine(engine: Engine) -> None:
    journal = Journal()
    journal.add(
        MarketCreated(spec=BTC, ts=T0),
        AccountOpened(
            account_id="eval-1",
            owner="alice",
            kind=AccountKind.ASSESSMENT,
            currency="USD",
            cost_basis=CostBasis.AVERAGE,
            tier="50k",
            ts=T0,
        ),
        opened("cash-1"),
    )
    journal.add(
        BalanceChanged(
            account_id="eval-1", currency="USD", total=5_000_000, held=0, delta=5_000_000, reason="deposit"
        ),
        BalanceChanged(
            account_id="cash-1", currency="USD", total=5_000_000, held=0, delta=5_000_000, reason="deposit"
        ),
        AssessmentUpdated(
            account_id="eval-1",
            equity=5_000_000,
            peak_equity=5_250_000,
            day_start_balance=5_000_000,
            daily_floor=4_750_000,
            total_floor=4_500_000,
            trading_days=1,
            ts=T0,
        ),
    )
    journal.add(
        BalanceChanged(
            account_id="eval-1", currency="USD", total=4_900_000, held=0, delta=-100_000, reason="fill"
        ),
        BalanceChanged(
            account_id="cash-1", currency="USD", total=4_900_000, held=0, delta=-100_000, reason="fill"
        ),
    )
    p = projector(engine, batch=1)
    await p.run(feed(journal.records))
    assessment = get(engine, Account, "eval-1")
    assert (assessment.equity, assessment.peak_equity, assessment.drawdown) == (
        Decimal("49000.00"),
        Decimal("52500.00"),
        Decimal("3500.00"),
    )
    cash = get(engine, Account, "cash-1")
    assert (cash.equity, cash.peak_equity, cash.drawdown) == (
        Decimal("49000.00"),
        Decimal("50000.00"),
        Decimal("1000.00"),
    )
    p.close()
