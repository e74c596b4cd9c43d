"""The read models as comparable data: what two projections of the same journal must agree on.

Left out: what the projector samples at batch ends (accounts' peak equity and drawdown, positions'
`updated_at`, the equity history), which depends on how the records were batched, not on what they
say; and the execution analytics' market context (arrival mid, VWAP, markouts and the slippages),
which the projector keeps in memory and does not reload after a restart of the projector (a known
limitation: an order open across such a restart may show no or a partial VWAP).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, select

from tradehall.journal.segments import read_records
from tradehall.service.projection import Projection
from tradehall.store import Projector, ProjectorConfig, Store, create_store_engine, upgrade

TABLES = ("accounts", "balances", "markets", "orders", "order_executions", "fills", "ledger", "positions")
SAMPLED = {
    "accounts": {"peak_equity", "drawdown"},
    "positions": {"updated_at"},
    "order_executions": {
        "arrival_mid", "vwap", "arrival_slippage_bps", "vwap_slippage_bps", "implementation_shortfall_bps",
        "markout_1s_bps", "markout_10s_bps", "markout_60s_bps",
    },
}


def read_models(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the compared tables, sorted, without the sampled columns."""
    engine = create_store_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine, only=TABLES)
        dumped: dict[str, list[tuple[Any, ...]]] = {}
        with engine.connect() as connection:
            for name in TABLES:
                table = metadata.tables[name]
                columns = [column for column in table.columns if column.name not in SAMPLED.get(name, set())]
                rows = connection.execute(select(*columns)).all()
                names = [column.name for column in columns]
                dumped[name] = sorted((tuple(zip(names, row, strict=True)) for row in rows), key=repr)
        return dumped
    finally:
        engine.dispose()


def projected_seq(url: str) -> int:
    engine = create_store_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine, only=("projection_state",))
        with engine.connect() as connection:
            seqs = connection.execute(select(metadata.tables["projection_state"].c.last_seq)).scalars().all()
        return max(seqs, default=0)
    finally:
        engine.dispose()


async def project_journal(journal_dir: Path, url: str, last: int) -> str:
    """Projects journal records 1..`last` the one-process way into a fresh database at `url`."""
    await asyncio.to_thread(upgrade, url)
    store = Store.from_url(url)
    projection = Projection(Projector(store.engine, ProjectorConfig()), journal_dir)
    try:
        await projection.start(durable_seq=last)
        await projection.stop(last)
    finally:
        projection.projector.close()
        store.close()
    return url


def last_journal_seq(journal_dir: Path) -> int:
    last = 0
    for record in read_records(journal_dir):
        last = record.seq
    return last


def differences(
    left: dict[str, list[tuple[Any, ...]]], right: dict[str, list[tuple[Any, ...]]], shown: int = 3
) -> dict[str, list[object]]:
    """Per table that differs, a few rows that do: the fields that differ of a row on both sides (by its
    first field), else the row only one side has (empty: the same)."""
    found: dict[str, list[object]] = {}
    for name in sorted(set(left) | set(right)):
        mine, theirs = set(left.get(name, [])), set(right.get(name, []))
        if mine == theirs:
            continue
        by_key = {row[0]: row for row in theirs - mine}
        shown_rows: list[object] = []
        for row in sorted(mine - theirs, key=repr)[:shown]:
            other = by_key.pop(row[0], None)
            if other is None:
                shown_rows.append(("only left", row))
            else:
                fields = dict(other)
                shown_rows.append((row[0], {k: (v, fields.get(k)) for k, v in row if fields.get(k) != v}))
        shown_rows += [("only right", row) for row in sorted(by_key.values(), key=repr)[:shown]]
        found[name] = shown_rows
    return found
