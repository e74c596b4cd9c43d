"""Execution analytics in the read models, from a real engine's records through the projector (SQLite):
exact figures, and an order open across a projector restart keeps being followed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import Engine as StoreEngine
from sqlalchemy.orm import Session

from tests.engine_support import spot_spec
from tradehall.domain import commands as c
from tradehall.engine import Engine
from tradehall.journal.records import JournalRecord
from tradehall.store import Projector, ProjectorConfig, upgrade
from tradehall.store.db import create_store_engine
from tradehall.store.models import OrderExecution

T0 = 1_900_000_000_000_000_000
S = 1_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = create_store_engine(url)
    yield engine
    engine.dispose()


class Run:
    """A real engine whose every command becomes a journal record."""

    def __init__(self) -> None:
        self.engine = Engine()
        self.records: list[JournalRecord] = []

    def __call__(self, command: c.Command, at: float = 0) -> list[object]:
        ts = T0 + int(at * S)
        command = type(command)(**{**{f: getattr(command, f) for f in command.__struct_fields__}, "ts": ts})
        events = self.engine.apply(command)
        self.records.append(
            JournalRecord(seq=len(self.records) + 1, ts=ts, command=command, events=tuple(events))  # type: ignore[arg-type]
        )
        return events  # type: ignore[return-value]


async def feed(records: Iterable[JournalRecord]) -> AsyncIterator[JournalRecord]:
    for record in records:
        yield record


def execution(store: StoreEngine, order_id: int) -> OrderExecution:
    with Session(store) as session:
        row = session.get(OrderExecution, str(order_id))
        assert row is not None
        return row


async def test_an_order_open_across_a_projector_restart_keeps_its_figures(store: StoreEngine) -> None:
    run = Run()
    run(c.CreateMarket(spec=spot_spec("BTC-USD", taker_fee=D("0.002"), maker_fee=D("0"))))
    for account in ("m", "t"):
        run(c.OpenAccount(account_id=account, owner=account))
        run(c.Deposit(account_id=account, amount=D("100000")))
    run(c.Deposit(account_id="m", amount=D("10"), currency="BTC"))
    run(c.PlaceOrder(account_id="m", market="BTC-USD", side="buy", quantity=D("1"), price=D("99")))  # type: ignore[arg-type]
    run(c.PlaceOrder(account_id="m", market="BTC-USD", side="sell", quantity=D("0.5"), price=D("100")))  # type: ignore[arg-type]
    run(c.PlaceOrder(account_id="t", market="BTC-USD", side="buy", quantity=D("1"), price=D("100")))  # type: ignore[arg-type]
    order_id = run.engine.next_order_id - 1  # rests 0.5 at 100 after taking 0.5
    cut = len(run.records)
    run(c.PlaceOrder(account_id="m", market="BTC-USD", side="sell", quantity=D("1"), price=D("101")), 1)  # type: ignore[arg-type]
    run(c.PlaceOrder(account_id="m", market="BTC-USD", side="sell", quantity=D("0.5"), price=D("100")), 2)  # type: ignore[arg-type]
    run(c.AdvanceTime(), 70)

    config = ProjectorConfig(equity_interval_seconds=0.0)
    first = Projector(store, config)
    await first.run(feed(run.records[:cut]))
    first.close()
    row = execution(store, order_id)
    # mid 99.50 at acceptance; 0.5 filled at 100: -(100 / 99.5 - 1) x 10^4
    assert (row.arrival_mid, row.filled_quantity, row.arrival_slippage_bps, row.ended_at) == (
        D("99.5"),
        D("0.5"),
        D("-50.25"),
        None,
    )

    second = Projector(store, config)
    await second.run(feed(run.records[cut:]))
    second.close()
    row = execution(store, order_id)
    assert (row.filled_quantity, row.arrival_slippage_bps, row.fees) == (D("1"), D("-50.25"), D("0.10"))
    assert row.ended_at is not None
    assert row.vwap is None  # the market's sums at its acceptance were lost with the first projector
    # the second fill's markouts are followed again: mid (99 + 101) / 2 = 100 against its price 100
    assert (row.markout_1s_bps, row.markout_60s_bps) == (D("0"), D("0"))
