"""Property: however the journal is cut into batches and wherever the projector crashes, the read
models end up exactly as after one uninterrupted run."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from tests.fixtures.journals import MID_TICKS, SPEC, EngineMarket, differences
from tradehall.domain.enums import Side
from tradehall.domain.fixedpoint import decimal_of
from tradehall.journal.records import JournalRecord
from tradehall.store import Projector, ProjectorConfig, create_store_engine, upgrade

MARKET = EngineMarket(accounts=4, seed=31)
RECORDS = MARKET.setup() + MARKET.steps(240) + [MARKET.mark(128_010)] + MARKET.steps(60)
# Peak equity and drawdown are sampled at batch ends, and equity_history has one point per batch:
# they depend on the batch boundaries by design, everything else must not.
SAMPLED = {"peak_equity", "drawdown"}
TABLES = ("accounts", "balances", "positions", "orders", "fills", "markets", "projection_state")


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for table in TABLES:
            result = connection.execute(text(f"SELECT * FROM {table}"))
            keep = [i for i, name in enumerate(result.keys()) if name not in SAMPLED]
            out[table] = sorted(tuple(row[i] for i in keep) for row in result)
    return out


async def feed(records: Sequence[JournalRecord]) -> AsyncIterator[JournalRecord]:
    for record in records:
        yield record


async def project(url: str, batch: int, crashes: Sequence[int]) -> None:
    """Runs with `batch`, crashing (an error before commit) at each write number in `crashes`."""
    remaining = sorted(set(crashes))
    writes = 0

    def fault(point: str) -> None:
        nonlocal writes
        if point != "before_commit":
            return
        writes += 1
        if remaining and writes == remaining[0]:
            remaining.pop(0)
            raise RuntimeError("crash")

    engine = create_store_engine(url)
    try:
        while True:
            projector = Projector(engine, ProjectorConfig(max_batch_records=batch), fault=fault)
            start = await projector.last_seq()
            try:
                await projector.run(feed([r for r in RECORDS if r.seq > start]))
                return
            except RuntimeError:
                continue
            finally:
                projector.close()
    finally:
        engine.dispose()


REFERENCE: dict[str, list[tuple[Any, ...]]] = {}


async def reference(directory: Path) -> dict[str, list[tuple[Any, ...]]]:
    if not REFERENCE:
        url = f"sqlite:///{directory / 'reference.db'}"
        upgrade(url)
        await project(url, batch=len(RECORDS), crashes=())
        engine = create_store_engine(url)
        REFERENCE.update(dump(engine))
        assert differences(engine, MARKET) == []
        engine.dispose()
    return REFERENCE


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(min_value=1, max_value=90), crashes=st.lists(st.integers(1, 40), max_size=4))
async def test_any_batching_and_any_crashes_give_the_same_read_models(batch: int, crashes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        expected = await reference(path)
        url = f"sqlite:///{path / 'run.db'}"
        upgrade(url)
        await project(url, batch, crashes)
        engine = create_store_engine(url)
        assert dump(engine) == expected
        engine.dispose()


def flat_then_traded() -> list[JournalRecord]:
    """acct-0 goes flat at MID+1, then a trade at MID+5 between the others: the row of acct-0's flat
    position must not depend on whether that trade was in the same batch."""
    market = EngineMarket(accounts=3, seed=1)
    records = market.setup()

    def place(account: int, side: Side, price: int | None) -> None:
        records.append(market._place(f"acct-{account}", side, 10, price, market._expect_id()))

    place(0, Side.BUY, MID_TICKS - 1)
    place(1, Side.SELL, None)  # acct-0 long, acct-1 short
    place(0, Side.SELL, MID_TICKS + 1)
    place(2, Side.BUY, None)  # acct-0 flat at MID+1
    place(1, Side.BUY, MID_TICKS + 5)
    place(2, Side.SELL, None)  # a trade at MID+5 that acct-0 is not in
    return records


async def test_a_flat_positions_row_does_not_depend_on_the_batch_boundaries(tmp_path: Path) -> None:
    records = flat_then_traded()
    dumps = []
    for batch in (len(records), 1):
        url = f"sqlite:///{tmp_path / f'batch-{batch}.db'}"
        upgrade(url)
        engine = create_store_engine(url)
        projector = Projector(engine, ProjectorConfig(max_batch_records=batch))
        for first in range(0, len(records), batch):
            await projector.apply(records[first : first + batch])
        projector.close()
        dumps.append(dump(engine))
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT quantity, mark_price FROM positions WHERE account_id = 'acct-0'")
            ).one()
        assert (Decimal(row[0]), Decimal(row[1])) == (0, decimal_of(MID_TICKS + 1, SPEC.tick_size))
        engine.dispose()
    assert dumps[0] == dumps[1]
