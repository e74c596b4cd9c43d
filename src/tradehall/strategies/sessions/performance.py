"""A live session's performance: the backtest report's metrics (`backtest.report.performance`) on the
session's account equity at the end of each cycle and on the round trips of its fills.

The trades are the account's fills in the session's markets since the session started: exact when the
account runs one session, which is how sessions are meant to be used (a second session on the same
account and markets shares its fills). Exposure is not tracked live and is reported as null.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from tradehall.engine import Engine, views
from tradehall.store import Store
from tradehall.store import sessions as repo
from tradehall.store.types import ns_of_utc
from tradehall.strategies.backtest.broker import Fill
from tradehall.strategies.backtest.report import Trade, performance, round_trips
from tradehall.strategies.sessions.model import SessionInfo


async def session_performance(store: Store, engine: Engine, info: SessionInfo) -> dict[str, Any]:
    points = await store.call(repo.equity_series, info.id)
    rows = await store.call(repo.account_fills, info.account_id, info.markets, info.created_at)
    account = views.account(engine, info.account_id)
    currency = account.currency if account is not None else "USD"
    places = Decimal(1).scaleb(-views.currency_places(engine, currency))
    equity = [(point.at_ns, float(point.equity)) for point in points]
    initial = (
        info.start_equity if info.start_equity is not None else Decimal(repr(equity[0][1]) if equity else 0)
    )
    by_market: dict[str, list[Fill]] = {}
    fees = Decimal(0)
    for row in rows:
        fees += row.fee
        by_market.setdefault(row.market, []).append(
            Fill(
                ts=ns_of_utc(row.executed_at),
                order_id=int(row.order_id),
                client_order_id=None,
                side=row.side,
                price=row.price,
                quantity=row.quantity,
                fee=row.fee,
                realized_pnl=row.realized_pnl,
                liquidity=row.liquidity,
            )
        )
    trades: list[tuple[str, Trade]] = []
    open_trades: list[dict[str, Any]] = []
    for market in sorted(by_market):
        closed, still_open = round_trips(by_market[market])
        trades.extend((market, trade) for trade in closed)
        if still_open is not None:
            open_trades.append(
                {"market": market, "side": still_open.side, "quantity": str(still_open.quantity)}
            )
    trades.sort(key=lambda item: (item[1].exit_time, item[0]))
    if initial <= 0:
        initial = Decimal(1)  # an account without equity has no returns to speak of
    report = performance(initial, info.anchor_ns, equity, trades, fees, math.nan, places)
    report["open_trades"] = open_trades
    return report
