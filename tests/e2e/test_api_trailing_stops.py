"""Trailing stops through a real server: placement, the watermark as GET shows it, re-trailing, a restart
in the middle (snapshot + journal), the fire and its fill, a quote venue's gap, and every refusal code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_api_harness import Server, running_server
from tradehall.client import ApiError, Client

PASSWORD = "trailing-password"


def error_of(call: Any, *args: Any, **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


class Book:
    """BTC-USD (book, tick 0.5, no fees) with a last trade at 64000 and the maker's bid of 1 at 63000;
    `trader` holds 1 BTC; `maker` and `other` trade with each other to move the last price."""

    def __init__(self, server: Server) -> None:
        admin = server.admin()
        admin.create_market(
            symbol="BTC-USD", kind="spot", base="BTC", quote="USD", tick_size="0.5", lot_size="0.001"
        )
        self.maker, self.maker_id = server.trader(funded="10000000")
        admin.deposit(self.maker_id, "100", currency="BTC")
        self.other, self.other_id = server.trader(funded="10000000")
        Client(server.url).register("trailer", PASSWORD)
        self.trader = Client(server.url).login("trailer", PASSWORD)
        self.trader_id = self.trader.create_account("USD", initial_balance="1000000")["id"]
        admin.deposit(self.trader_id, "1", currency="BTC")
        self.trade_at("64000")
        self.maker.place_order(self.maker_id, "BTC-USD", "buy", "1", "63000")

    def trade_at(self, price: str) -> None:
        self.maker.place_order(self.maker_id, "BTC-USD", "sell", "0.001", price)
        assert self.other.place_order(self.other_id, "BTC-USD", "buy", "0.001", price)["status"] == "filled"


def test_a_trailing_stop_follows_the_market_survives_a_restart_and_fires(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as server:
        book = Book(server)
        trader, trader_id = book.trader, book.trader_id
        placed = trader.place_trailing_stop(trader_id, "BTC-USD", "sell", "0.1", trail_price="100")
        assert {k: placed[k] for k in ("type", "status", "trigger", "hwm", "stop_price", "trail_price")} == {
            "type": "trailing_stop",
            "status": "pending_trigger",
            "trigger": "last",
            "hwm": "64000",
            "stop_price": "63900",
            "trail_price": "100",
        }
        assert (placed["trail_percent"], placed["activation_price"], placed["price"]) == (None, None, None)
        order_id = placed["id"]
        book.trade_at("64500")  # two other users trade: the last price
        shown = trader.order(order_id)
        assert (shown["hwm"], shown["stop_price"]) == ("64500", "64400")
        listed = trader.orders(account_id=trader_id)["items"]
        assert [(o["id"], o["hwm"], o["stop_price"]) for o in listed] == [(order_id, "64500", "64400")]
        amended = trader.amend_order(order_id, trail_percent="0.5")
        # 64,500 x 0.995 = 64,177.5, on the 0.5 tick
        assert (amended["trail_percent"], amended["trail_price"], amended["stop_price"], amended["hwm"]) == (
            "0.5",
            None,
            "64177.5",
            "64500",
        )
    with running_server(data_dir) as restarted:  # snapshot + journal replay
        trader = Client(restarted.url).login("trailer", PASSWORD)
        shown = trader.order(order_id)
        assert (shown["status"], shown["hwm"], shown["stop_price"], shown["trail_percent"]) == (
            "pending_trigger",
            "64500",
            "64177.5",
            "0.5",
        )
        # a fresh pair of users trades at 64,100: through the stop
        seller, seller_id = restarted.trader(funded="1000000")
        restarted.admin().deposit(seller_id, "1", currency="BTC")
        buyer, buyer_id = restarted.trader(funded="1000000")
        seller.place_order(seller_id, "BTC-USD", "sell", "0.001", "64100")
        buyer.place_order(buyer_id, "BTC-USD", "buy", "0.001", "64100")
        fired = trader.order(order_id)
        assert (fired["status"], fired["filled_quantity"], fired["average_price"]) == (
            "filled",
            "0.1",
            "63000",
        )
        assert (fired["hwm"], fired["stop_price"]) == ("64500", "64177.5")  # as it fired
        assert [(f["price"], f["quantity"]) for f in fired["fills"]] == [("63000", "0.1")]


def test_every_refusal_of_a_trailing_stop(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", quote_max_age_seconds=3600) as server:
        book = Book(server)
        trader, trader_id = book.trader, book.trader_id
        stranger, stranger_id = server.trader()

        def refused(status: int, code: str, **fields: Any) -> ApiError:
            fields.setdefault("trail_price", "100")
            price = fields.pop("price", None)
            fields["trail_price"] = fields.get("trail_price")
            error = error_of(
                trader.place_order, trader_id, "BTC-USD", "sell", "0.1", price, "trailing_stop", **fields
            )
            assert (error.status, error.code) == (status, code), (fields, error.detail)
            return error

        assert (
            "exactly one of trail_percent and trail_price"
            in refused(422, "invalid_order", trail_price=None).detail
        )
        refused(422, "invalid_order", trail_percent="1")  # both
        assert (
            "above 0 and below 100"
            in refused(422, "invalid_order", trail_price=None, trail_percent="0").detail
        )
        refused(422, "invalid_order", trail_price=None, trail_percent="100")
        refused(422, "invalid_order", trail_price=None, trail_percent="1.00001")
        refused(422, "invalid_order", trail_price="0")
        assert "not a multiple of 0.5" in refused(422, "invalid_order", trail_price="100.3").detail
        error = refused(422, "invalid_order", activation_price="63500")  # below the last 64000
        assert error.body["reject_reason"] == "would_trigger"
        assert error.detail == (
            "a sell trailing stop's activation_price must be above the current trigger price 64000, got 63500"
        )
        refused(422, "invalid_order", activation_price="64000.3")
        refused(422, "invalid_order", stop_price="63000")
        refused(422, "invalid_order", price="63000")
        refused(422, "invalid_order", time_in_force="day")
        refused(422, "invalid_order", trigger="sometimes")
        refused(422, "invalid_order", trail_price="abc")
        error = error_of(trader.place_order, trader_id, "BTC-USD", "sell", "0.1", "70000", trail_percent="1")
        assert (error.status, error.code) == (422, "invalid_order")
        error = error_of(trader.place_trailing_stop, trader_id, "NOPE-USD", "sell", "0.1", trail_price="1")
        assert (error.status, error.code) == (404, "not_found")
        error = error_of(trader.place_trailing_stop, stranger_id, "BTC-USD", "sell", "0.1", trail_price="1")
        assert (error.status, error.code) == (403, "forbidden")
        answer = httpx.post(
            f"{server.url}/orders",
            json={
                "account_id": trader_id,
                "market": "BTC-USD",
                "side": "sell",
                "type": "trailing_stop",
                "quantity": "0.1",
                "trail_percent": "1",
            },
        )
        assert (answer.status_code, answer.json()["code"]) == (401, "unauthorized")
        # nothing of the above became an order
        assert trader.orders(account_id=trader_id, status="all")["items"] == []

        # amends
        order = trader.place_trailing_stop(trader_id, "BTC-USD", "sell", "0.1", trail_price="500")
        oid = order["id"]
        book.trade_at("63800")  # last 63,800; hwm 64,000, stop 63,500
        for body, status, code in [
            ({"trail_price": "100"}, 422, "invalid_order"),  # stop 63,900 would be through 63,800
            ({"trail_percent": "0"}, 422, "invalid_order"),
            ({"stop_price": "63000"}, 422, "invalid_order"),
            ({"price": "63000"}, 422, "invalid_order"),
            ({"trail_price": "1", "trail_percent": "1"}, 422, "invalid_order"),
        ]:
            error = error_of(trader.amend_order, oid, **body)
            assert (error.status, error.code) == (status, code), body
        assert trader.order(oid)["stop_price"] == "63500"
        error = error_of(stranger.amend_order, oid, trail_price="100")
        assert (error.status, error.code) == (403, "forbidden")
        error = error_of(trader.amend_order, "999999", trail_price="100")
        assert (error.status, error.code) == (404, "not_found")
        limit = trader.place_order(trader_id, "BTC-USD", "sell", "0.01", "70000")
        error = error_of(trader.amend_order, limit["id"], trail_price="100")
        assert (error.status, error.code) == (422, "invalid_order")
        cancelled = trader.cancel_order(oid)
        assert (cancelled["status"], cancelled["cancel_reason"], cancelled["hwm"]) == (
            "cancelled",
            "user",
            "64000",
        )
        error = error_of(trader.amend_order, oid, trail_price="600")
        assert (error.status, error.code) == (409, "conflict")
        # a halt ends a trailing stop (market_halted, with its last watermark); the plain limit waits
        halted_id = trader.place_trailing_stop(trader_id, "BTC-USD", "sell", "0.1", trail_price="500")["id"]
        admin = server.admin()
        admin.halt_market("BTC-USD")
        halted = trader.order(halted_id)
        assert (halted["status"], halted["cancel_reason"], halted["hwm"], halted["stop_price"]) == (
            "cancelled",
            "market_halted",
            "63800",
            "63300",
        )
        error = error_of(trader.amend_order, limit["id"], price="69000")
        assert (error.status, error.code) == (409, "market_closed")
        error = error_of(trader.place_trailing_stop, trader_id, "BTC-USD", "sell", "0.1", trail_price="1")
        assert (error.status, error.code) == (409, "market_closed")
        admin.resume_market("BTC-USD")
        assert [o["id"] for o in trader.orders(account_id=trader_id)["items"]] == [limit["id"]]

        # a quote venue without a quote yet
        admin.create_market(
            symbol="ETH-Q",
            kind="spot",
            venue="quote",
            base="ETH",
            quote="USD",
            tick_size="0.01",
            lot_size="0.001",
        )
        error = error_of(trader.place_trailing_stop, trader_id, "ETH-Q", "sell", "0.1", trail_price="1")
        assert (error.status, error.code) == (503, "market_data_unavailable")


def test_on_a_quote_venue_a_gap_fills_at_the_quote_after_it(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", quote_max_age_seconds=3600) as server:
        admin = server.admin()
        admin.create_market(
            symbol="ETH-Q",
            kind="spot",
            venue="quote",
            base="ETH",
            quote="USD",
            tick_size="0.01",
            lot_size="0.001",
            taker_fee="0.001",
            maker_fee="0.001",
            slippage="0.001",
        )
        admin.set_price("ETH-Q", "3000", bid="2999", ask="3001")
        trader, trader_id = server.trader(funded="100000")
        admin.deposit(trader_id, "2", currency="ETH")
        order = trader.place_trailing_stop(trader_id, "ETH-Q", "sell", "1", trail_percent="1")
        # the bid is the source: 2,999 x 0.99 = 2,969.01
        assert (order["trigger"], order["hwm"], order["stop_price"]) == ("bid_ask", "2999", "2969.01")
        admin.set_price("ETH-Q", "3100", bid="3099", ask="3101")
        assert (trader.order(order["id"])["hwm"], trader.order(order["id"])["stop_price"]) == (
            "3099",
            "3068.01",
        )
        admin.set_price("ETH-Q", "2900", bid="2899", ask="2901")  # a gap through 3,068.01
        fired = trader.order(order["id"])
        # at the bid after the gap less 0.1 % slippage (2,896.101 -> 2,896.10), never at the stop; fee 0.1 %
        assert (fired["status"], fired["average_price"], fired["fees"]) == ("filled", "2896.1", "2.90")
