"""TRADEHALL_CLOCK=manual: the sequencer's time moves only by `POST /admin/clock`, forward only.

Time-based rules are tested by moving the clock, never by waiting: a GTD order expires when the
clock passes its expiry, trades on either side of a minute boundary fall in two candles.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_api_harness import running_server
from tradehall.client import ApiError, Client


def eventually(read: Callable[[], Any], expected: Any) -> None:
    """Read models follow the engine asynchronously: poll until the read matches, within a deadline."""
    deadline = time.monotonic() + 10
    while (value := read()) != expected:
        assert time.monotonic() < deadline, value
        time.sleep(0.05)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _refused(call: Callable[[], Any]) -> tuple[int, str]:
    with pytest.raises(ApiError) as refused:
        call()
    return refused.value.status, refused.value.code


def test_the_clock_endpoint_is_409_without_the_manual_clock(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        assert _refused(lambda: server.admin().move_clock(advance_seconds=60)) == (409, "conflict")


def test_the_manual_clock_moves_forward_only_and_is_for_admins(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", clock="manual") as server:
        admin = server.admin()
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=400)
        assert admin.move_clock(set_to=_rfc3339(start)) == {"now": _rfc3339(start)}
        assert admin.move_clock(advance_seconds="1.5")["now"] == _rfc3339(
            start + timedelta(seconds=1)
        ).replace("Z", ".500000Z")
        assert admin.move_clock(advance_seconds=0.5)["now"] == _rfc3339(start + timedelta(seconds=2))
        assert _refused(lambda: admin.move_clock(set_to=_rfc3339(start))) == (409, "conflict")
        assert _refused(lambda: admin.move_clock(advance_seconds=-1)) == (409, "conflict")
        assert _refused(lambda: admin.move_clock()) == (400, "invalid_request")
        both = _rfc3339(start + timedelta(days=1))
        assert _refused(lambda: admin.move_clock(advance_seconds=1, set_to=both)) == (400, "invalid_request")
        assert _refused(lambda: admin.move_clock(advance_seconds="soon")) == (400, "invalid_request")
        trader, _ = server.trader()
        assert _refused(lambda: trader.move_clock(advance_seconds=1)) == (403, "forbidden")
        assert admin.move_clock(advance_seconds=0)["now"] == _rfc3339(start + timedelta(seconds=2))


def _market(admin: Client) -> None:
    admin.create_market(symbol="CLK-USD", kind="spot", base="CLK", quote="USD", tick_size="0.5", lot_size="1")


def test_a_gtd_order_expires_when_the_manual_clock_passes_its_expiry(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", clock="manual", clock_tick_seconds=0) as server:
        admin = server.admin()
        _market(admin)
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        admin.move_clock(set_to=_rfc3339(start))
        trader, account_id = server.trader()
        expiry = start + timedelta(hours=2)
        order = trader.place_order(
            account_id, "CLK-USD", "buy", "1", "10", time_in_force="gtd", expire_at=_rfc3339(expiry)
        )
        assert order["status"] == "open"
        admin.move_clock(advance_seconds=7199)  # one second short of the expiry
        assert trader.order(str(order["id"]))["status"] == "open"
        admin.move_clock(advance_seconds=1)
        eventually(lambda: trader.order(str(order["id"]))["status"], "expired")


def test_trades_across_a_minute_boundary_of_the_manual_clock_make_two_candles(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", clock="manual", clock_tick_seconds=0) as server:
        admin = server.admin()
        _market(admin)
        minute = (datetime.now(UTC) + timedelta(days=30)).replace(second=0, microsecond=0)
        admin.move_clock(set_to=_rfc3339(minute + timedelta(seconds=10)))
        (buyer, buyer_id), (seller, seller_id) = server.trader(), server.trader()
        admin.deposit(seller_id, "10", currency="CLK")

        def trade(price: str) -> None:
            seller.place_order(seller_id, "CLK-USD", "sell", "1", price)
            assert buyer.place_order(buyer_id, "CLK-USD", "buy", "1", price)["status"] == "filled"

        trade("100")
        admin.move_clock(advance_seconds=49)  # 59 s past the minute: the same bar
        trade("101.5")
        admin.move_clock(advance_seconds=1)  # the next minute
        trade("99")
        bars = sorted(admin.candles("CLK-USD", "1m")["items"], key=lambda bar: bar["t"])
        assert [(b["t"], b["open"], b["high"], b["low"], b["close"]) for b in bars] == [
            (_rfc3339(minute), "100", "101.5", "100", "101.5"),
            (_rfc3339(minute + timedelta(minutes=1)), "99", "99", "99", "99"),
        ]


def test_the_ticker_24h_window_follows_the_manual_clock(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", clock="manual", clock_tick_seconds=0) as server:
        admin = server.admin()
        _market(admin)
        admin.move_clock(set_to=_rfc3339(datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)))
        (buyer, buyer_id), (seller, seller_id) = server.trader(), server.trader()
        admin.deposit(seller_id, "10", currency="CLK")
        seller.place_order(seller_id, "CLK-USD", "sell", "3", "100")
        assert buyer.place_order(buyer_id, "CLK-USD", "buy", "3", "100")["status"] == "filled"
        eventually(lambda: admin.ticker("CLK-USD")["volume_24h"], "3")
        admin.move_clock(advance_seconds=86_400)  # the trade is at the window's start, which is in it
        assert admin.ticker("CLK-USD")["volume_24h"] == "3"
        admin.move_clock(advance_seconds="0.000000001")
        assert admin.ticker("CLK-USD")["volume_24h"] == "0"
