"""Through a real server on the manual clock: an order's execution analytics (arrival mid and slippage,
VWAP, implementation shortfall, fees, fill ratio, markouts after their horizons) and their aggregates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.test_api_harness import running_server
from tests.e2e.test_api_manual_clock import eventually
from tradehall.client import ApiError


def test_execution_figures_and_markouts_after_their_horizons(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", clock="manual") as server:
        admin = server.admin()
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=400)
        admin.move_clock(set_to=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
        common = dict(kind="spot", base="BTC", quote="USD", tick_size="0.01", lot_size="0.0001")
        admin.create_market(symbol="BTC-USD", taker_fee="0.002", **common)
        admin.create_market(symbol="BTC-USD.OKX", instrument="BTC-USD", taker_fee="0.0005", **common)
        maker, maker_id = server.trader("1000000")
        admin.deposit(maker_id, "100", currency="BTC")
        trader, account_id = server.trader("100000")
        maker.place_order(maker_id, "BTC-USD", "sell", "1", "100.00")
        maker.place_order(maker_id, "BTC-USD", "buy", "1", "99.00")  # mid 99.50
        maker.place_order(maker_id, "BTC-USD.OKX", "sell", "0.2", "100.10")  # no bid: no mid

        order = trader.place_order(account_id, "BTC-USD", "buy", "0.5", "100", client_order_id="ses1-a")
        okx = trader.place_smart_order(
            account_id, "BTC-USD", "buy", "0.2", "100.10", time_in_force="ioc", decision_price="99.80"
        )
        [okx_child] = okx["children"]
        assert okx_child["market"] == "BTC-USD.OKX"

        figures = trader.order_execution(order["id"])
        assert figures == {
            "order_id": order["id"],
            "account_id": account_id,
            "market": "BTC-USD",
            "venue": "TRADEHALL",
            "side": "buy",
            "quantity": "0.5",
            "filled_quantity": "0.5",
            "average_price": "100",
            "arrival_mid": "99.5",
            "arrival_slippage_bps": "-50.25",  # -(100 / 99.50 - 1) x 10^4 = -50.2513
            "vwap": "100",
            "vwap_slippage_bps": "0",
            "decision_price": None,
            "implementation_shortfall_bps": None,
            "fill_ratio": "1",
            "fees": "0.10",
            "time_to_fill_seconds": "0",
            "markouts_bps": {"1s": None, "10s": None, "60s": None},
            "accepted_at": figures["accepted_at"],
            "ended_at": figures["accepted_at"],
        }
        child = trader.order_execution(okx_child["id"])
        assert (child["venue"], child["arrival_mid"], child["arrival_slippage_bps"]) == ("OKX", None, None)
        # the parent's decision price: -(100.10 / 99.80 - 1) x 10^4 = -30.06
        assert (child["decision_price"], child["implementation_shortfall_bps"]) == ("99.8", "-30.06")

        # the smart order itself, against the consolidated book before it was routed: 99.00 / 100.00
        parent = trader.order_execution(okx["id"])
        assert (parent["venue"], parent["market"], parent["arrival_mid"], parent["average_price"]) == (
            "SMART",
            "BTC-USD",
            "99.5",
            "100.1",
        )
        # -(100.10 / 99.50 - 1) x 10^4 = -60.30; against its decision price 99.80: -30.06
        assert (parent["arrival_slippage_bps"], parent["implementation_shortfall_bps"]) == ("-60.3", "-30.06")
        assert (parent["vwap"], parent["fill_ratio"], parent["fees"]) == ("100.1", "1", "0.02")

        admin.move_clock(advance_seconds="0.5")
        maker.place_order(maker_id, "BTC-USD", "buy", "1", "99.80")  # mid 99.90 from T + 0.5 s
        admin.move_clock(advance_seconds="1")  # T + 1.5 s: the 1 s horizon has passed
        # +1 x (99.90 / 100 - 1) x 10^4 = -10
        eventually(
            lambda: trader.order_execution(order["id"])["markouts_bps"],
            {"1s": "-10", "10s": None, "60s": None},
        )
        admin.move_clock(advance_seconds="9")
        eventually(lambda: trader.order_execution(order["id"])["markouts_bps"]["10s"], "-10")
        assert trader.order_execution(order["id"])["markouts_bps"]["60s"] is None
        admin.move_clock(advance_seconds="60")
        eventually(lambda: trader.order_execution(order["id"])["markouts_bps"]["60s"], "-10")

        by_venue = trader.execution_analytics(group_by="venue")
        assert by_venue["group_by"] == "venue"
        assert [
            (g["key"], g["orders"], g["fill_ratio"], g["notional"], g["fees"]) for g in by_venue["items"]
        ] == [
            ("OKX", 1, "1", "20.02", "0.02"),
            ("TRADEHALL", 1, "1", "50", "0.10"),
        ]
        assert [g["arrival_slippage_bps"] for g in by_venue["items"]] == [None, "-50.25"]
        by_session = trader.execution_analytics(group_by="session")
        assert [(g["key"], g["orders"]) for g in by_session["items"]] == [("ses1", 1), (None, 1)]
        by_day = trader.execution_analytics(group_by="day", market="BTC-USD")
        assert [(g["key"], g["orders"]) for g in by_day["items"]] == [(start.date().isoformat(), 1)]

        for call, expected in (
            (lambda: trader.order_execution("999999"), (404, "not_found")),
            (lambda: maker.order_execution(order["id"]), (403, "forbidden")),
            (lambda: trader.execution_analytics(group_by="week"), (400, "invalid_request")),
            (lambda: trader.execution_analytics(start="yesterday"), (400, "invalid_request")),
        ):
            with pytest.raises(ApiError) as refused:
                call()
            assert (refused.value.status, refused.value.code) == expected
