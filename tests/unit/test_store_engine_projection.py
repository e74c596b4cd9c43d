"""Real engine output projected into SQLite: the read models converge to the engine's state."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tradehall.domain import commands as cmds
from tradehall.domain.enums import MarketKind, OrderSide, OrderType, Outcome, TimeInForce
from tradehall.domain.events import OrderFilled
from tradehall.domain.fixedpoint import amount_of, decimal_of
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine, EngineConfig, views
from tradehall.journal.records import JournalRecord
from tradehall.store import Projector, ProjectorConfig, create_store_engine, upgrade
from tradehall.store.models import Account, Balance, Fill, Order, Position

T0 = 1_790_000_000_000_000_000
SPECS = (
    MarketSpec(
        symbol="BTC-USD",
        kind=MarketKind.SPOT,
        base="BTC",
        quote="USD",
        tick_size=Decimal("0.5"),
        lot_size=Decimal("0.001"),
        maker_fee=Decimal("0.0005"),
        taker_fee=Decimal("0.001"),
    ),
    MarketSpec(
        symbol="ETH-PERP",
        kind=MarketKind.PERP,
        base="ETH",
        quote="USD",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("0.01"),
        taker_fee=Decimal("0.0007"),
        max_leverage=Decimal("10"),
        initial_margin=Decimal("0.1"),
        maintenance_margin=Decimal("0.05"),
    ),
    MarketSpec(
        symbol="RAIN",
        kind=MarketKind.BINARY,
        base="RAIN",
        quote="USD",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("1"),
        taker_fee=Decimal("0.01"),
    ),
)
MIDS = {"BTC-USD": Decimal("60000"), "ETH-PERP": Decimal("3000"), "RAIN": Decimal("0.5")}


def _commands(seed: int, count: int) -> list[cmds.Command]:
    rnd = random.Random(seed)
    accounts = [f"acct-{i}" for i in range(6)]
    out: list[cmds.Command] = [cmds.CreateMarket(spec=spec) for spec in SPECS]
    for account in accounts:
        out.append(cmds.OpenAccount(account_id=account, owner=f"user-{account}"))
        out.append(cmds.Deposit(account_id=account, amount=Decimal("1000000")))
        out.append(cmds.Deposit(account_id=account, amount=Decimal("5"), currency="BTC"))
    for index in range(count):
        spec = rnd.choice(SPECS)
        roll = rnd.random()
        account = rnd.choice(accounts)
        if roll < 0.08:
            out.append(cmds.CancelAll(account_id=account, market=spec.symbol))
            continue
        if roll < 0.12:
            drift = Decimal(rnd.randint(-20, 20)) * spec.tick_size
            out.append(cmds.MarkPrice(market=spec.symbol, price=MIDS[spec.symbol] + drift))
            continue
        if roll < 0.16:
            out.append(
                cmds.AmendOrder(
                    order_id=rnd.randint(1, index + 1),
                    account_id=account,
                    quantity=spec.lot_size * rnd.randint(1, 20),
                )
            )
            continue
        side = rnd.choice((OrderSide.BUY, OrderSide.SELL))
        quantity = spec.lot_size * rnd.randint(1, 20)
        if roll < 0.35:
            out.append(
                cmds.PlaceOrder(
                    account_id=account,
                    market=spec.symbol,
                    side=side,
                    quantity=quantity,
                    type=OrderType.MARKET,
                    time_in_force=TimeInForce.IOC,
                )
            )
        else:
            price = MIDS[spec.symbol] + spec.tick_size * rnd.randint(-10, 10)
            out.append(
                cmds.PlaceOrder(
                    account_id=account,
                    market=spec.symbol,
                    side=side,
                    quantity=quantity,
                    price=price,
                    client_order_id=f"c{index}",
                )
            )
    out.append(cmds.SettleMarket(market="RAIN", outcome=Outcome.YES))
    return out


def _journal(engine: Engine, commands: list[cmds.Command]) -> list[JournalRecord]:
    records = []
    for seq, command in enumerate(commands, start=1):
        ts = T0 + seq * 1_000_000
        stamped = command.__class__(
            **{**{f: getattr(command, f) for f in command.__struct_fields__}, "ts": ts}
        )
        events = engine.apply(stamped)
        records.append(JournalRecord(seq=seq, ts=ts, command=stamped, events=tuple(events)))  # type: ignore[arg-type]
    return records


async def test_read_models_converge_to_the_engine_state(tmp_path: Path) -> None:
    config = EngineConfig()
    engine = Engine(config)
    records = _journal(engine, _commands(seed=5, count=1500))
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    upgrade(url)
    db = create_store_engine(url)
    projector = Projector(
        db, ProjectorConfig(max_batch_records=97, currency_decimals=config.currency_decimals)
    )

    async def source() -> AsyncIterator[JournalRecord]:
        for record in records:
            yield record

    await projector.run(source())
    projector.close()
    fills = sum(1 for r in records for ev in r.events if isinstance(ev, OrderFilled))
    assert fills > 200
    specs = {spec.symbol: spec for spec in SPECS}
    with Session(db) as session:
        assert len(session.scalars(select(Fill)).all()) == fills
        balances = {(b.account_id, b.currency): (b.total, b.held) for b in session.scalars(select(Balance))}
        for account_id, account in engine.accounts.items():
            for currency, balance in account.balances.items():
                places = config.decimals(currency)
                expected = (amount_of(balance.total, places), amount_of(balance.held, places))
                assert balances.get((account_id, currency), expected) == expected, (account_id, currency)
                if balance.total or balance.held:
                    assert (account_id, currency) in balances
        positions = {(p.account_id, p.market): p for p in session.scalars(select(Position))}
        for symbol, market in engine.markets.items():
            spec = specs[symbol]
            for account_id, position in market.positions.items():
                row = positions.get((account_id, symbol))
                if row is None:
                    assert position.quantity == 0 and position.realized == 0
                    continue
                assert row.quantity == decimal_of(position.quantity, spec.lot_size), (account_id, symbol)
                assert row.cost == decimal_of(position.cost, spec.tick_size * spec.lot_size)
                assert row.realized_pnl == amount_of(position.realized, 2)
                if position.quantity:  # shown in cents, rounded down, as the engine's views show it
                    view = views.position(engine, account_id, symbol)
                    assert view is not None
                    assert row.unrealized_pnl == amount_of(view.unrealized_pnl, 2), (account_id, symbol)
        assert any(p.unrealized_pnl != 0 for p in positions.values())
        for account_row in session.scalars(select(Account)):
            for money in (account_row.equity, account_row.unrealized_pnl, account_row.peak_equity):
                assert money == money.quantize(Decimal("0.01")), (account_row.id, money)
        open_rows = {
            o.id: o
            for o in session.scalars(
                select(Order).where(Order.status.in_(("open", "partially_filled", "pending_trigger")))
            )
        }
        live = {str(order_id): order for order_id, order in engine.orders.items()}
        assert set(open_rows) == set(live)
        for order_id, order in live.items():
            spec = specs[order.market]
            assert open_rows[order_id].filled_quantity == decimal_of(order.filled, spec.lot_size)
    db.dispose()


async def test_account_rows_value_spot_holdings_as_the_engine_bought_or_deposited(tmp_path: Path) -> None:
    """Equity in the read models is the engine's: the whole balance of a spot base at the price (also
    units deposited rather than bought, with the position flat or no position at all), rounded down
    to the cent, revalued by the spot market's mark."""
    config = EngineConfig()
    engine = Engine(config)
    spot = SPECS[0]
    buy, sell = OrderSide.BUY, OrderSide.SELL

    def order(account: str, side: OrderSide, quantity: str, price: str) -> cmds.PlaceOrder:
        return cmds.PlaceOrder(
            account_id=account, market="BTC-USD", side=side, quantity=Decimal(quantity), price=Decimal(price)
        )

    commands: list[cmds.Command] = [cmds.CreateMarket(spec=spot)]
    for account in ("holder", "maker", "keeper"):  # the keeper never trades: deposited BTC only
        commands.append(cmds.OpenAccount(account_id=account, owner=account))
        commands.append(cmds.Deposit(account_id=account, amount=Decimal("100000")))
        commands.append(cmds.Deposit(account_id=account, amount=Decimal("1.2345"), currency="BTC"))
    commands += [
        order("maker", sell, "0.5", "60000.5"),
        order("holder", buy, "0.5", "60000.5"),  # bought: a position of 0.5
        order("maker", buy, "0.5", "60100"),
        order("holder", sell, "0.5", "60100"),  # sold again: the position is flat, 1.2345 deposited BTC held
        cmds.MarkPrice(market="BTC-USD", price=Decimal("61234.5")),  # 1.2345 x 61,234.5 = 75,594.0...
    ]
    records = _journal(engine, commands)
    url = f"sqlite:///{tmp_path / 'spot.db'}"
    upgrade(url)
    db = create_store_engine(url)
    projector = Projector(db, ProjectorConfig(currency_decimals=config.currency_decimals))

    async def source() -> AsyncIterator[JournalRecord]:
        for record in records:
            yield record

    await projector.run(source())
    projector.close()
    with Session(db) as session:
        rows = {row.id: row for row in session.scalars(select(Account))}
    db.dispose()
    for account_id in ("holder", "maker", "keeper"):
        valuation = views.account_valuation(engine, account_id)
        assert valuation.holdings > 0
        assert rows[account_id].equity == amount_of(valuation.equity, 2), account_id
    assert engine.markets["BTC-USD"].positions["holder"].quantity == 0
