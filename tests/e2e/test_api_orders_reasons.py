"""Through a real server: honest stops, movable stops, a reason on every end, price protection, ids.

The issue's reproductions: a stop already through its trigger was accepted and fired at random; a
stop could not be moved (409); ended orders did not say why; a 0.5 BTC market buy swept the book;
a repeated client_order_id with other parameters answered the original.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_api_harness import Server, running_server
from tradehall.client import ApiError, AsyncClient, Client


def error_of(call: Any, *args: Any, **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


TAKER, PASSWORD = "reasons-taker", "reasons-taker-password"


def book_market(server: Server) -> tuple[Client, str, Client, str]:
    """BTC-USD (book, no fees) with a last trade at 64000, a bid at 63990 and an ask at 64010."""
    server.admin().create_market(
        symbol="BTC-USD", kind="spot", base="BTC", quote="USD", tick_size="0.5", lot_size="0.001"
    )
    maker, maker_id = server.trader(funded="10000000")
    server.admin().deposit(maker_id, "100", currency="BTC")
    Client(server.url).register(TAKER, PASSWORD)
    taker = Client(server.url).login(TAKER, PASSWORD)
    taker_id = taker.create_account("USD", initial_balance="10000000")["id"]
    maker.place_order(maker_id, "BTC-USD", "sell", "0.01", "64000")
    assert taker.place_order(taker_id, "BTC-USD", "buy", "0.01", "64000")["status"] == "filled"
    maker.place_order(maker_id, "BTC-USD", "buy", "0.01", "63990")
    maker.place_order(maker_id, "BTC-USD", "sell", "0.01", "64010")
    return maker, maker_id, taker, taker_id


def test_stops_through_their_trigger_are_refused_and_the_source_is_explicit(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        _, _, taker, taker_id = book_market(server)
        # the issue: a buy stop at 60000 with the last at 64000 would fire at once
        refused = error_of(
            taker.place_order, taker_id, "BTC-USD", "buy", "0.01", type="stop", stop_price="60000"
        )
        assert (refused.status, refused.code) == (422, "invalid_order")
        assert refused.detail == (
            "a buy stop at 60000 would trigger immediately:"
            " the last trade price is 64000, already at or above it"
        )
        assert refused.body["reject_reason"] == "would_trigger"
        # bid_ask: a buy stop watches the ask (64010)
        refused = error_of(
            taker.place_order,
            taker_id,
            "BTC-USD",
            "buy",
            "0.01",
            type="stop",
            stop_price="64010",
            trigger="bid_ask",
        )
        assert refused.detail == (
            "a buy stop at 64010 would trigger immediately: the best ask is 64010, already at or above it"
        )
        accepted = taker.place_order(taker_id, "BTC-USD", "buy", "0.01", type="stop", stop_price="64000.5")
        assert (accepted["status"], accepted["trigger"], accepted["stop_price"]) == (
            "pending_trigger",
            "last",
            "64000.5",
        )
        # mark: with no mark posted it reads the last trade (64000); an admin mark then fires it
        by_mark = taker.place_order(
            taker_id, "BTC-USD", "sell", "0.01", type="stop", stop_price="63995", trigger="mark"
        )
        assert by_mark["trigger"] == "mark"
        server.admin().set_price("BTC-USD", "63995")
        fired = taker.order(by_mark["id"])
        assert (fired["status"], fired["filled_quantity"], fired["fills"][0]["price"]) == (
            "filled",
            "0.01",
            "63990",
        )
        unknown = error_of(
            taker.place_order,
            taker_id,
            "BTC-USD",
            "buy",
            "0.01",
            type="stop",
            stop_price="70000",
            trigger="index",
        )
        assert (unknown.status, unknown.code) == (422, "invalid_order")


def test_a_quote_venue_stop_watches_the_touch_by_default(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        admin = server.admin()
        admin.create_market(
            symbol="ETH-USD",
            kind="spot",
            venue="quote",
            base="ETH",
            quote="USD",
            tick_size="0.01",
            lot_size="0.001",
        )
        admin.set_price("ETH-USD", "3199.95", bid="3199.90", ask="3200.00")
        trader, account = server.trader()
        admin.deposit(account, "10", currency="ETH")
        # the issue: a sell stop at 4000 with ETH at 3199.95
        refused = error_of(
            trader.place_order, account, "ETH-USD", "sell", "1", type="stop", stop_price="4000"
        )
        assert (refused.status, refused.code, refused.body["reject_reason"]) == (
            422,
            "invalid_order",
            "would_trigger",
        )
        assert refused.detail == (
            "a sell stop at 4000 would trigger immediately: the best bid is 3199.9, already at or below it"
        )
        waiting = trader.place_order(account, "ETH-USD", "sell", "1", type="stop", stop_price="3100")
        assert (waiting["status"], waiting["trigger"]) == ("pending_trigger", "bid_ask")


def test_an_untriggered_stop_moves_and_cannot_be_moved_through_its_trigger(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        _, _, taker, taker_id = book_market(server)
        stop = taker.place_order(
            taker_id, "BTC-USD", "buy", "0.01", "66000", type="stop_limit", stop_price="65000"
        )
        moved = taker.amend_order(stop["id"], stop_price="65500", price="66500")
        assert (moved["status"], moved["stop_price"], moved["price"]) == ("pending_trigger", "65500", "66500")
        assert at(moved["updated_at"]) > at(stop["updated_at"])
        assert taker.order(stop["id"])["stop_price"] == "65500"
        refused = error_of(taker.amend_order, stop["id"], stop_price="63000")
        assert (refused.status, refused.code) == (422, "invalid_order")
        assert refused.detail == (
            "a buy stop at 63000 would trigger immediately:"
            " the last trade price is 64000, already at or above it"
        )
        limit = taker.place_order(taker_id, "BTC-USD", "buy", "0.01", "60000")
        refused = error_of(taker.amend_order, limit["id"], stop_price="61000")
        assert (refused.status, refused.code, refused.detail) == (
            422,
            "invalid_order",
            "a limit order has no stop_price",
        )


def test_every_end_says_why_live_in_history_and_after_a_restart(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        maker, maker_id, taker, taker_id = book_market(server)
        assert server.admin().market("BTC-USD")["price_protection"] == "0.05"
        # the sweep: 64010 x 1.05 = 67210.5; the ask at 68000 is beyond the band
        maker.place_order(maker_id, "BTC-USD", "sell", "0.2", "67000")
        maker.place_order(maker_id, "BTC-USD", "sell", "0.5", "68000")
        swept = taker.place_order(taker_id, "BTC-USD", "buy", "0.5")
        assert (swept["status"], swept["filled_quantity"], swept["cancel_reason"]) == (
            "cancelled",
            "0.21",
            "price_protection",
        )
        assert [(f["price"], f["quantity"]) for f in swept["fills"]] == [("64010", "0.01"), ("67000", "0.2")]
        ioc = taker.place_order(taker_id, "BTC-USD", "buy", "0.6", "68000", time_in_force="ioc")
        assert (ioc["status"], ioc["filled_quantity"], ioc["cancel_reason"]) == (
            "cancelled",
            "0.5",
            "ioc_remainder",
        )
        fok = taker.place_order(taker_id, "BTC-USD", "buy", "1", "68000", time_in_force="fok")
        assert (fok["status"], fok["filled_quantity"], fok["cancel_reason"]) == (
            "cancelled",
            "0",
            "fok_unfilled",
        )
        resting = taker.place_order(taker_id, "BTC-USD", "buy", "0.01", "60000")
        assert resting["cancel_reason"] is None
        cancelled = taker.cancel_order(resting["id"])
        assert (cancelled["status"], cancelled["cancel_reason"]) == ("cancelled", "user")
        assert at(cancelled["updated_at"]) > at(resting["created_at"])
        stop = taker.place_order(
            taker_id, "BTC-USD", "sell", "0.01", type="stop", stop_price="50000", trigger="mark"
        )
        refused = error_of(taker.place_order, taker_id, "BTC-USD", "sell", "0.01", "63000", post_only=True)
        assert (refused.code, refused.body["reject_reason"]) == ("invalid_order", "post_only")
        refused = error_of(taker.place_order, taker_id, "BTC-USD", "buy", "1000", "68000")
        assert (refused.code, refused.body["reject_reason"]) == (
            "insufficient_balance",
            "insufficient_balance",
        )
        ids = {
            name: order["id"]
            for name, order in (("swept", swept), ("ioc", ioc), ("fok", fok), ("user", resting))
        }
        closed = {o["id"]: o["cancel_reason"] for o in taker.orders(taker_id, status="closed")["items"]}
        assert {name: closed[order_id] for name, order_id in ids.items()} == {
            "swept": "price_protection",
            "ioc": "ioc_remainder",
            "fok": "fok_unfilled",
            "user": "user",
        }
    with running_server(tmp_path) as server:
        client = Client(server.url).login(TAKER, PASSWORD)
        closed = {o["id"]: o["cancel_reason"] for o in client.orders(taker_id, status="closed")["items"]}
        assert {name: closed[order_id] for name, order_id in ids.items()} == {
            "swept": "price_protection",
            "ioc": "ioc_remainder",
            "fok": "fok_unfilled",
            "user": "user",
        }
        kept = client.order(stop["id"])
        assert (kept["status"], kept["trigger"], kept["stop_price"]) == ("pending_trigger", "mark", "50000")


def test_a_repeated_client_order_id_answers_the_original_or_a_conflict(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        _, _, taker, taker_id = book_market(server)
        first = taker.place_order(taker_id, "BTC-USD", "buy", "0.01", "60000", client_order_id="mine-1")
        again = taker.place_order(taker_id, "BTC-USD", "buy", "0.010", "60000.0", client_order_id="mine-1")
        assert again["id"] == first["id"]
        other = error_of(
            taker.place_order, taker_id, "BTC-USD", "buy", "0.02", "60000", client_order_id="mine-1"
        )
        assert (other.status, other.code) == (409, "conflict")
        assert (
            other.detail
            == f"client_order_id 'mine-1' belongs to order {first['id']}, placed with different parameters"
        )
        assert len(taker.orders(taker_id)["items"]) == 1


async def test_the_orders_channel_says_why_an_order_ended(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        _, _, taker, taker_id = book_market(server)
        async with AsyncClient(server.url, token=taker.auth_token).stream() as stream:
            await stream.subscribe(["orders"])
            ioc = taker.place_order(taker_id, "BTC-USD", "buy", "0.02", "64010", time_in_force="ioc")
            resting = taker.place_order(taker_id, "BTC-USD", "buy", "0.01", "60000")
            taker.cancel_order(resting["id"])
            ended: dict[str, dict[str, Any]] = {}
            while len(ended) < 2:  # each wait is bounded by the stream's timeout
                message = await stream.next(5.0)
                if message.get("channel") == "orders" and message.get("event") == "OrderCancelled":
                    ended[message["data"]["id"]] = message["data"]
        assert (ended[ioc["id"]]["status"], ended[ioc["id"]]["cancel_reason"]) == (
            "cancelled",
            "ioc_remainder",
        )
        assert ended[ioc["id"]]["filled_quantity"] == "0.01"
        assert (ended[resting["id"]]["status"], ended[resting["id"]]["cancel_reason"]) == (
            "cancelled",
            "user",
        )
