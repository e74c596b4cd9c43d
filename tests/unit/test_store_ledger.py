"""The ledger read model from real engine output: each cause of a balance change on its own line,
exact amounts, a running balance that ends at the engine's balance, and the same ledger whether the
projection ran at once, was restarted, or started from balances that predate the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal as D
from pathlib import Path

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from tests.engine_support import binary_spec, perp_spec
from tests.unit.test_store_engine_projection import _commands
from tradehall.domain import commands as c
from tradehall.domain.enums import AccountKind, FeeModel, Outcome
from tradehall.domain.fixedpoint import amount_of
from tradehall.domain.tiers import TierSpec
from tradehall.engine import Engine, EngineConfig
from tradehall.journal.records import JournalRecord
from tradehall.store import Projector, ProjectorConfig, create_store_engine, downgrade, upgrade
from tradehall.store.models import LedgerEntry

T0 = 1_790_000_000_000_000_000
Line = tuple[str, str, str, str]  # (type, amount, currency, balance_after)


def journal(
    engine: Engine, commands: Sequence[c.Command], first_seq: int = 1, strict: bool = True
) -> list[JournalRecord]:
    """The commands applied in order, each stamped and recorded as the runner would (`strict`: none
    may be refused)."""
    records = []
    for seq, command in enumerate(commands, start=first_seq):
        ts = T0 + seq * 1_000_000
        stamped = command.__class__(
            **{**{f: getattr(command, f) for f in command.__struct_fields__}, "ts": ts}
        )
        events = engine.apply(stamped)
        if strict:
            assert not any(type(e).__name__ in ("OrderRejected", "CommandRejected") for e in events), events
        records.append(JournalRecord(seq=seq, ts=ts, command=stamped, events=tuple(events)))  # type: ignore[arg-type]
    return records


def project(db: SqlEngine, records: Sequence[JournalRecord], batch: int = 97) -> int:
    """Project the records; returns how many lines the projector could not attribute (logged)."""
    projector = Projector(
        db, ProjectorConfig(max_batch_records=batch, currency_decimals=EngineConfig().currency_decimals)
    )

    async def source() -> AsyncIterator[JournalRecord]:
        for record in records:
            yield record

    with capture_logs() as logs:
        asyncio.run(projector.run(source()))
    projector.close()
    return sum(1 for entry in logs if entry.get("event") == "ledger_unattributed")


def fresh_db(path: Path) -> SqlEngine:
    url = f"sqlite:///{path}"
    upgrade(url)
    return create_store_engine(url)


def ledger(db: SqlEngine, account_id: str | None = None) -> list[LedgerEntry]:
    query = select(LedgerEntry).order_by(LedgerEntry.id)
    if account_id is not None:
        query = query.where(LedgerEntry.account_id == account_id)
    with Session(db) as session:
        return list(session.scalars(query))


def lines(db: SqlEngine, account_id: str) -> list[Line]:
    return [
        (row.type, str(row.amount), row.currency, str(row.balance_after)) for row in ledger(db, account_id)
    ]


def assert_reconciles(db: SqlEngine, engine: Engine) -> None:
    """Every user balance is the sum of its lines, and each line's balance_after the running sum."""
    running: dict[tuple[str, str], D] = {}
    for row in ledger(db):
        key = (row.account_id, row.currency)
        running[key] = running.get(key, D(0)) + row.amount
        assert row.balance_after == running[key], row.id
    config = engine.config
    expected = {
        (account_id, currency): amount_of(balance.total, config.decimals(currency))
        for account_id, account in engine.accounts.items()
        if not account_id.startswith("system:")
        for currency, balance in account.balances.items()
        if balance.total
    }
    assert {key: value for key, value in running.items() if value} == expected


def test_a_liquidation_shows_its_fee_exempt_close_and_the_funds_takeover(tmp_path: Path) -> None:
    engine = Engine()
    records = journal(
        engine,
        [
            c.CreateMarket(spec=perp_spec()),  # tick 0.5, lot 0.001, IM 10 %, MM 5 %, taker 0.05 %
            c.OpenAccount(account_id="a", owner="a"),
            c.Deposit(account_id="a", amount=D("1100")),
            c.OpenAccount(account_id="b", owner="b"),
            c.Deposit(account_id="b", amount=D("1000000")),
            c.PlaceOrder(account_id="b", market="BTC-PERP", side="short", quantity=D("1"), price=D("10000")),  # type: ignore[arg-type]
            c.PlaceOrder(account_id="a", market="BTC-PERP", side="long", quantity=D("1"), price=D("10000")),  # type: ignore[arg-type]
            c.PlaceOrder(account_id="b", market="BTC-PERP", side="buy", quantity=D("0.4"), price=D("9390")),  # type: ignore[arg-type]
            c.PlaceOrder(account_id="b", market="BTC-PERP", side="buy", quantity=D("1"), price=D("8000")),  # type: ignore[arg-type]
            c.PlaceOrder(account_id="b", market="BTC-PERP", side="sell", quantity=D("1"), price=D("9400")),  # type: ignore[arg-type]
            c.MarkPrice(market="BTC-PERP", price=D("9370")),  # equity 465.00 < maintenance 468.50
        ],
    )
    db = fresh_db(tmp_path / "l.db")
    assert project(db, records) == 0
    assert lines(db, "a") == [
        ("deposit", "1100.00", "USD", "1100.00"),
        ("fee", "-5.00", "USD", "1095.00"),  # 0.05 % of 10,000
        ("liquidation", "-244.00", "USD", "851.00"),  # 0.4 sold at 9,390 (fee exempt)
        ("insurance", "-378.00", "USD", "473.00"),  # 0.6 taken over at the mark 9,370
    ]
    liquidation = ledger(db, "a")[2]
    assert (liquidation.market, liquidation.order_id) == ("BTC-PERP", str(engine.next_order_id - 1))
    assert liquidation.trade_id == engine.next_trade_id - 1
    insurance = ledger(db, "a")[3]
    assert (insurance.market, insurance.order_id, insurance.trade_id) == ("BTC-PERP", None, None)
    assert_reconciles(db, engine)


def test_a_perp_loss_beyond_the_balance_shows_what_the_account_paid(tmp_path: Path) -> None:
    engine = Engine()
    records = journal(
        engine,
        [
            c.CreateMarket(spec=perp_spec()),
            c.OpenAccount(account_id="a", owner="a"),
            c.Deposit(account_id="a", amount=D("1100")),
            c.OpenAccount(account_id="b", owner="b"),
            c.Deposit(account_id="b", amount=D("1000000")),
            c.PlaceOrder(account_id="b", market="BTC-PERP", side="short", quantity=D("1"), price=D("10000")),  # type: ignore[arg-type]
            c.PlaceOrder(account_id="a", market="BTC-PERP", side="long", quantity=D("1"), price=D("10000")),  # type: ignore[arg-type]
            c.MarkPrice(market="BTC-PERP", price=D("8000")),  # no bids: all taken over, loss 2,000.00
        ],
    )
    db = fresh_db(tmp_path / "l.db")
    assert project(db, records) == 0
    assert lines(db, "a") == [
        ("deposit", "1100.00", "USD", "1100.00"),
        ("fee", "-5.00", "USD", "1095.00"),
        ("insurance", "-1095.00", "USD", "0.00"),  # the fund paid the other 905.00
    ]
    assert engine.accounts["a"].balances["USD"].total == 0
    assert_reconciles(db, engine)


def test_binary_fills_that_close_and_flip_and_an_assessments_takeover(tmp_path: Path) -> None:
    tier = TierSpec(
        name="t100k",
        starting_balance=D("100000"),
        max_daily_loss=D("0.01"),
        max_total_loss=D("0.10"),
        profit_target=D("0.5"),
    )
    spec = binary_spec("RAIN", fee_model=FeeModel.PROPORTIONAL, taker_fee=D("0.01"), maker_fee=D("0"))
    engine = Engine(EngineConfig())

    def order(account: str, side: str, quantity: str, price: str) -> c.PlaceOrder:
        return c.PlaceOrder(
            account_id=account, market="RAIN", side=side, quantity=D(quantity), price=D(price)
        )  # type: ignore[arg-type]

    records = journal(
        engine,
        [
            c.Configure(tiers={"t100k": tier}),
            c.CreateMarket(spec=spec),
            c.OpenAccount(account_id="m", owner="m"),
            c.Deposit(account_id="m", amount=D("100000")),
            c.OpenAccount(account_id="x", owner="x"),
            c.Deposit(account_id="x", amount=D("100")),
            order("m", "sell", "10", "0.40"),  # m: 10 NO at 0.60
            order("x", "buy", "10", "0.40"),  # x: 10 YES at 0.40
            order("m", "buy", "15", "0.50"),  # m closes its 10 NO, opens 5 YES
            order("x", "sell", "15", "0.50"),  # x closes 10 YES at 0.50 and opens 5 NO at 0.50
            c.OpenAccount(account_id="p", owner="p", kind=AccountKind.ASSESSMENT, tier="t100k"),
            order("m", "buy", "10000", "0.50"),
            order("p", "no", "10000", "0.50"),  # p: 10,000 NO at 0.50
            c.MarkPrice(market="RAIN", price=D("0.65")),  # NO at 0.35: -1,500.00 breaks the 1,000.00 floor
        ],
    )
    db = fresh_db(tmp_path / "l.db")
    assert project(db, records, batch=3) == 0
    assert lines(db, "x") == [
        ("deposit", "100.00", "USD", "100.00"),
        ("trade", "-4.00", "USD", "96.00"),
        ("fee", "-0.04", "USD", "95.96"),
        ("trade", "2.50", "USD", "98.46"),  # +5.00 for 10 YES at 0.50, -2.50 for 5 NO at 0.50
        ("fee", "-0.08", "USD", "98.38"),  # 1 % of 7.50, rounded up
    ]
    assert lines(db, "p") == [
        ("deposit", "100000.00", "USD", "100000.00"),  # the tier's starting balance
        ("trade", "-5000.00", "USD", "95000.00"),
        ("fee", "-50.00", "USD", "94950.00"),
        ("insurance", "3500.00", "USD", "98450.00"),  # no ask: the fund takes the NO at 0.35
    ]
    assert_reconciles(db, engine)


def test_random_trading_reconciles_and_a_restarted_projection_writes_the_same_ledger(tmp_path: Path) -> None:
    commands = _commands(seed=11, count=900)
    settle = commands.pop()
    assert isinstance(settle, c.SettleMarket) and settle.outcome is Outcome.YES
    for _ in range(3):
        commands.append(c.MarkPrice(market="ETH-PERP", price=D("3000")))
        commands.append(c.ApplyFunding(market="ETH-PERP", rate=D("0.0003")))
        commands.append(c.ApplyFunding(market="ETH-PERP", rate=D("-0.0002")))
    commands.append(c.Withdraw(account_id="acct-2", amount=D("12.34")))
    commands.append(c.Withdraw(account_id="acct-3", amount=D("0.5"), currency="BTC"))
    commands.append(c.VoidMarket(market="RAIN"))
    engine = Engine(EngineConfig())
    records = journal(engine, commands, strict=False)

    once = fresh_db(tmp_path / "once.db")
    assert project(once, records) == 0
    assert_reconciles(once, engine)
    types = {row.type for row in ledger(once)}
    assert types == {"deposit", "withdrawal", "trade", "fee", "funding", "void_refund"}

    restarted = fresh_db(tmp_path / "twice.db")
    half = len(records) // 2
    assert project(restarted, records[:half], batch=50) == 0
    assert project(restarted, records[half:], batch=13) == 0
    assert [_row(r) for r in ledger(restarted)] == [_row(r) for r in ledger(once)]


def test_balances_from_before_the_ledger_open_it_and_it_reconciles_from_there(tmp_path: Path) -> None:
    engine = Engine()
    setup = [
        c.CreateMarket(spec=perp_spec()),
        c.OpenAccount(account_id="a", owner="a"),
        c.Deposit(account_id="a", amount=D("1100")),
        c.Deposit(account_id="a", amount=D("0.25"), currency="BTC"),
        c.OpenAccount(account_id="b", owner="b"),
        c.Deposit(account_id="b", amount=D("1000000")),
        c.PlaceOrder(account_id="b", market="BTC-PERP", side="short", quantity=D("1"), price=D("10000")),  # type: ignore[arg-type]
        c.PlaceOrder(account_id="a", market="BTC-PERP", side="long", quantity=D("1"), price=D("10000")),  # type: ignore[arg-type]
    ]
    records = journal(engine, setup)
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url)
    db = create_store_engine(url)
    assert project(db, records) == 0
    with Session(db) as session, session.begin():
        session.execute(delete(LedgerEntry))
    downgrade(url, "0005")  # a database from before the ledger, then upgraded
    upgrade(url)
    assert lines(db, "a") == [
        ("opening_balance", "0.25000000", "BTC", "0.25000000"),
        ("opening_balance", "1095.00", "USD", "1095.00"),
    ]
    more = journal(
        engine,
        [
            c.PlaceOrder(account_id="b", market="BTC-PERP", side="buy", quantity=D("1"), price=D("10100")),  # type: ignore[arg-type]
            c.PlaceOrder(account_id="a", market="BTC-PERP", side="sell", quantity=D("1"), price=D("10100")),  # type: ignore[arg-type]
        ],
        first_seq=len(records) + 1,
    )
    assert project(db, more) == 0
    assert lines(db, "a")[2:] == [
        ("fee", "-5.05", "USD", "1089.95"),
        ("trade", "100.00", "USD", "1189.95"),
    ]
    assert_reconciles(db, engine)
    ids = [row.id for row in ledger(db)]
    assert len(set(ids)) == len(ids)


def _row(row: LedgerEntry) -> tuple[object, ...]:
    return (
        row.id,
        row.account_id,
        row.currency,
        row.type,
        row.amount,
        row.balance_after,
        row.market,
        row.order_id,
        row.trade_id,
        row.at,
    )
