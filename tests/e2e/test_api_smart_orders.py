"""Through a real server: a smart order on an instrument listed on two venues is split by fee-adjusted
price, shown as a parent with its children, listed, and cancelled with its resting child."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_api_harness import running_server
from tradehall.client import ApiError, Client


def test_a_smart_order_is_routed_listed_and_cancelled(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        common = dict(kind="spot", base="BTC", quote="USD", tick_size="0.01", lot_size="0.0001")
        home = admin.create_market(symbol="BTC-USD", taker_fee="0.002", **common)
        okx = admin.create_market(
            symbol="BTC-USD.OKX", instrument="BTC-USD", taker_fee="0.0005", maker_fee="0", **common
        )
        assert (home["instrument"], home["exchange"]) == ("BTC-USD", "TRADEHALL")
        assert (okx["instrument"], okx["exchange"]) == ("BTC-USD", "OKX")
        admin.create_market(
            symbol="ETH-USD", kind="spot", base="ETH", quote="USD", tick_size="0.01", lot_size="1"
        )
        assert [m["symbol"] for m in admin.markets(instrument="BTC-USD")["items"]] == [
            "BTC-USD",
            "BTC-USD.OKX",
        ]
        maker, maker_id = server.trader("1000000")
        admin.deposit(maker_id, "100", currency="BTC")
        trader, account_id = server.trader("100000")
        maker.place_order(maker_id, "BTC-USD", "sell", "0.5", "100.00")
        maker.place_order(maker_id, "BTC-USD.OKX", "sell", "0.3", "100.10")

        parent = trader.place_smart_order(account_id, "BTC-USD", "buy", "1.25", "101", decision_price="99.5")
        assert (parent["venue"], parent["market"], parent["status"]) == (
            "smart",
            "BTC-USD",
            "partially_filled",
        )
        # fees: 0.3 x 100.10 x 0.05 % = 0.015015 -> 0.02 and 0.5 x 100 x 0.2 % = 0.10
        assert (parent["filled_quantity"], parent["fees"], parent["decision_price"]) == (
            "0.8",
            "0.12",
            "99.5",
        )
        # 0.3 x 100.10 + 0.5 x 100 = 80.03 over 0.8
        assert parent["average_price"].startswith("100.0375")
        children = {c["market"]: c for c in parent["children"]}
        assert {m: (c["quantity"], c["filled_quantity"], c["status"]) for m, c in children.items()} == {
            "BTC-USD.OKX": ("0.75", "0.3", "partially_filled"),  # the rest waits on the first venue
            "BTC-USD": ("0.5", "0.5", "filled"),
        }
        assert trader.order(parent["id"])["children"] == parent["children"]
        open_ids = [o["id"] for o in trader.orders(account_id)["items"]]
        assert open_ids == [children["BTC-USD.OKX"]["id"]]
        closed = trader.orders(account_id, status="closed")["items"]
        assert children["BTC-USD"]["id"] in [o["id"] for o in closed]

        cancelled = trader.cancel_order(parent["id"])
        assert (cancelled["status"], cancelled["cancel_reason"], cancelled["filled_quantity"]) == (
            "cancelled",
            "user",
            "0.8",
        )
        assert trader.orders(account_id)["items"] == []
        with pytest.raises(ApiError) as again:
            trader.cancel_order(parent["id"])
        assert (again.value.status, again.value.code) == (409, "conflict")

        for body, expected in (
            (dict(market="SOL-USD", quantity="1", price="100"), (404, "not_found")),
            (dict(market="BTC-USD", quantity="0.00001", price="100"), (422, "invalid_order")),
            (dict(market="BTC-USD", quantity="1", price="100", time_in_force="fok"), (422, "invalid_order")),
            (dict(market="BTC-USD", quantity="1", price="100", stop_price="90"), (422, "invalid_order")),
            (dict(market="BTC-USD", quantity="100000", price="100"), (422, "insufficient_balance")),
        ):
            with pytest.raises(ApiError) as refused:
                trader.place_order(account_id, side="buy", venue="smart", **body)  # type: ignore[arg-type]
            assert (refused.value.status, refused.value.code) == expected, body


def test_a_resting_smart_order_survives_a_restart_and_is_cancelled_after_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    common = dict(kind="spot", base="BTC", quote="USD", tick_size="0.01", lot_size="0.0001")
    with running_server(data) as server:
        admin = server.admin()
        admin.create_market(symbol="BTC-USD", taker_fee="0.002", maker_fee="0.001", **common)
        admin.create_market(symbol="BTC-USD.OKX", instrument="BTC-USD", maker_fee="0", **common)
        trader, account_id = server.trader("100000")
        # nothing to take: it rests on the lowest maker fee
        parent = trader.place_smart_order(account_id, "BTC-USD", "buy", "1", "90", client_order_id="sm-1")
        again = trader.place_smart_order(account_id, "BTC-USD", "buy", "1", "90.0", client_order_id="sm-1")
        assert again["id"] == parent["id"]  # a repeat answers the original (200)
        [child] = parent["children"]
        assert (child["market"], child["status"], parent["status"]) == ("BTC-USD.OKX", "open", "open")
        key = trader.create_api_key("after-restart")["api_key"]
    with running_server(data) as server:
        trader = Client(server.url, api_key=key)
        assert trader.order(parent["id"])["children"][0]["status"] == "open"
        cancelled = trader.cancel_order(parent["id"])
        assert (cancelled["status"], cancelled["cancel_reason"]) == ("cancelled", "user")
        assert trader.account(account_id)["available"] == "100000.00"
