"""Parity: one strategy run as a backtest and as a live paper session through a real server, on the same
quotes, sends the same orders and gets the same fills (times aside).

The backtest replays the recorded quotes through its own engine (`Backtest.run_events`). The live side
replays the same quotes into a real server on the manual clock, as a feed would: each quote at its
time (`POST /admin/clock`, `POST /admin/markets/{s}/price`), and, when a quote is the first of a new
minute, the clock first moves to the minute's start, which closes the session's cycle before that
quote applies: exactly where the backtest closes its bar. The test waits for the session to have
answered each cycle (no decision pending) before the next quote, as the backtest's loop does.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.e2e.test_api_harness import running_server
from tests.e2e.test_api_sessions import rfc3339
from tradehall.client import Client
from tradehall.domain.enums import MarketKind, Venue
from tradehall.domain.market import MarketSpec
from tradehall.marketdata.models import Quote
from tradehall.strategies.backtest.runner import Backtest, BacktestSettings, FillModel, StrategyChoice

S = 1_000_000_000
MINUTE = 60 * S
T0 = 1_900_000_020 * S  # a whole minute, far from today
STRATEGY = {"name": "sma_crossover", "parameters": {"fast": 2, "slow": 4}}
SETTINGS = {"max_position_size": "1000", "stop_loss_percent": "1.5", "take_profit_percent": "2"}
SPEC = MarketSpec(
    symbol="SIM-USD",
    kind=MarketKind.SPOT,
    base="SIM",
    quote="USD",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("0.001"),
    venue=Venue.QUOTE,
    taker_fee=Decimal("0.001"),
    slippage=Decimal("0"),
    quote_max_age_ms=180_000,
)


def quotes() -> list[Quote]:
    """Forty minutes of quotes every 10 s: a wave with a drift, so the averages cross several times."""
    found = []
    for k in range(240):
        mid = Decimal(repr(round(100 + 4 * math.sin(k / 11) + k / 60, 2)))
        ts = T0 + k * 10 * S
        found.append(
            Quote("replay", "SIM-USD", mid - Decimal("0.05"), mid + Decimal("0.05"), None, None, mid, ts, ts)
        )
    return found


def backtest(
    events: list[Quote],
) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str, str, str, str]]]:
    settings = BacktestSettings.parse({"interval": "1m", "initial_balance": "10000", **SETTINGS})
    run = Backtest([StrategyChoice.parse(STRATEGY)], SPEC, settings, FillModel()).run_events(events)
    orders = [(o.side, o.type, _plain(o.quantity), o.tag or "exit") for o in run.orders]
    fills = [(f.side, _plain(f.price), _plain(f.quantity), _plain(f.fee), f.liquidity) for f in run.fills]
    return orders, fills


def _plain(value: Decimal | str) -> str:
    return format(Decimal(value).normalize(), "f")


def _settled(trader: Client, session_id: str, cycle: int) -> bool:
    if trader.session(session_id)["cycles"] < cycle:
        return False
    return all(d["status"] != "pending" for d in trader.session_decisions(session_id, limit=20)["items"])


def _wait(trader: Client, session_id: str, cycle: int) -> None:
    deadline = time.monotonic() + 15
    while not _settled(trader, session_id, cycle):
        assert time.monotonic() < deadline, f"cycle {cycle} not answered"
        time.sleep(0.01)


def live(
    tmp_path: Path, events: list[Quote]
) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str, str, str, str]]]:
    def at(ns: int) -> str:
        return rfc3339(datetime.fromtimestamp(ns // S, UTC))  # every time here is a whole second

    with running_server(tmp_path / "data", clock="manual", clock_tick_seconds=0) as server:
        admin = server.admin()
        admin.move_clock(set_to=at(T0))
        admin.create_market(
            symbol="SIM-USD",
            kind="spot",
            venue="quote",
            base="SIM",
            quote="USD",
            tick_size="0.01",
            lot_size="0.001",
            taker_fee="0.001",
            maker_fee="0",  # as SPEC (a paper market's default maker fee is 0.1 %)
            slippage="0",
            quote_max_age_ms=180_000,
        )
        trader, account_id = server.trader(funded="10000")
        session = trader.start_session(
            account_id, ["SIM-USD"], [STRATEGY], {"interval_seconds": 60, **SETTINGS}
        )
        window = 0
        for event in events:
            ts = event.receive_ts
            current = (ts - T0) // MINUTE
            if current > window:
                admin.move_clock(set_to=at(T0 + current * MINUTE))
                _wait(trader, session["id"], current)
                window = current
            admin.move_clock(set_to=at(ts))
            mid = str(event.last)
            admin.set_price("SIM-USD", mid, bid=str(event.bid), ask=str(event.ask))
        admin.move_clock(set_to=at(T0 + (window + 1) * MINUTE))
        _wait(trader, session["id"], window + 1)
        orders = _all(lambda cursor: trader.orders(account_id, status="all", cursor=cursor))
        fills = _all(lambda cursor: trader.trades(account_id, cursor=cursor))
    orders.sort(key=lambda o: int(o["id"]))
    fills.sort(key=lambda f: int(f["id"]))
    tags = {"-e": "entry", "-x": "close", "-t": "exit"}
    return (
        [
            (o["side"], o["type"], _plain(o["quantity"]), tags.get((o["client_order_id"] or "")[-2:], "exit"))
            for o in orders
        ],
        [
            (f["side"], _plain(f["price"]), _plain(f["quantity"]), _plain(f["fee"]), f["liquidity"])
            for f in fills
        ],
    )


def _all(page: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        found = page(cursor)
        items.extend(found["items"])
        cursor = found["next_cursor"]
        if cursor is None:
            return items


def test_a_backtest_and_a_live_paper_session_send_the_same_orders_and_get_the_same_fills(
    tmp_path: Path,
) -> None:
    events = quotes()
    backtest_orders, backtest_fills = backtest(events)
    live_orders, live_fills = live(tmp_path, events)
    assert len(backtest_fills) >= 4, backtest_orders  # the data makes the strategy trade
    assert live_orders == backtest_orders
    assert live_fills == backtest_fills
