"""Through a real server: bracket, oto and oco orders, their legs, amends, cancels and every refusal."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_api_harness import Server, running_server
from tradehall.client import ApiError, Client


def error_of(call: Any, *args: Any, **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def book_market(server: Server) -> tuple[Client, str, Client, str]:
    """BTC-USD (book, no fees, tick 0.5) with a maker holding BTC and cash, and a funded taker."""
    server.admin().create_market(
        symbol="BTC-USD", kind="spot", base="BTC", quote="USD", tick_size="0.5", lot_size="0.001"
    )
    maker, maker_id = server.trader(funded="10000000")
    server.admin().deposit(maker_id, "100", currency="BTC")
    taker, taker_id = server.trader(funded="100000")
    return maker, maker_id, taker, taker_id


def usd_and_btc(client: Client, account_id: str) -> tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal]]:
    """(total, held) of USD and of BTC."""
    balances = {
        b["currency"]: (Decimal(b["total"]), Decimal(b["held"]))
        for b in client.account(account_id)["balances"]
    }
    zero = (Decimal(0), Decimal(0))
    return balances.get("USD", zero), balances.get("BTC", zero)


def amounts(
    usd: tuple[str, str], btc: tuple[str, str]
) -> tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal]]:
    return (Decimal(usd[0]), Decimal(usd[1])), (Decimal(btc[0]), Decimal(btc[1]))


def test_a_bracket_places_both_exits_when_it_fills_and_the_take_profit_cancels_the_stop(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path) as server:
        maker, maker_id, taker, taker_id = book_market(server)
        maker.place_order(maker_id, "BTC-USD", "sell", "0.01", "64000")
        entry = taker.place_bracket(
            taker_id, "BTC-USD", "buy", "0.01", "64000", take_profit="66000", stop_loss="62000"
        )
        assert (entry["status"], entry["order_class"], entry["filled_quantity"]) == (
            "filled",
            "bracket",
            "0.01",
        )
        assert entry["take_profit"] == {"limit_price": "66000"}
        assert entry["stop_loss"] == {"stop_price": "62000", "limit_price": None}
        take, stop = entry["legs"]
        assert (take["type"], take["side"], take["quantity"], take["price"], take["status"]) == (
            "limit",
            "sell",
            "0.01",
            "66000",
            "open",
        )
        assert (stop["type"], stop["stop_price"], stop["status"], stop["trigger"]) == (
            "stop",
            "62000",
            "pending_trigger",
            "last",
        )
        assert take["parent_order_id"] == stop["parent_order_id"] == entry["id"]
        assert take["order_class"] == stop["order_class"] == "bracket"
        # one hold of the bought BTC for both exits
        assert usd_and_btc(taker, taker_id) == amounts(("99360.00", "0.00"), ("0.01", "0.01"))
        again = taker.order(entry["id"])
        assert [leg["id"] for leg in again["legs"]] == [take["id"], stop["id"]]
        assert [leg["status"] for leg in again["legs"]] == ["open", "pending_trigger"]

        maker.place_order(maker_id, "BTC-USD", "buy", "0.01", "66000")
        assert taker.order(take["id"])["status"] == "filled"
        ended = taker.order(stop["id"])
        assert (ended["status"], ended["cancel_reason"]) == ("cancelled", "oco")
        assert usd_and_btc(taker, taker_id) == amounts(("100020.00", "0.00"), ("0", "0"))
        closed = taker.order(entry["id"])
        assert [(leg["status"], leg["cancel_reason"]) for leg in closed["legs"]] == [
            ("filled", None),
            ("cancelled", "oco"),
        ]
        assert taker.orders(taker_id)["items"] == []


def test_plain_exit_prices_on_a_simple_order_make_a_bracket_or_an_oto(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        maker, maker_id, taker, taker_id = book_market(server)
        maker.place_order(maker_id, "BTC-USD", "sell", "0.02", "64000")
        bracket = taker.place_order(
            taker_id, "BTC-USD", "buy", "0.01", "64000", take_profit="65000", stop_loss="63000"
        )
        assert bracket["order_class"] == "bracket"
        assert [leg["type"] for leg in bracket["legs"]] == ["limit", "stop"]
        oto = taker.place_order(taker_id, "BTC-USD", "buy", "0.01", "64000", stop_loss="63000")
        assert oto["order_class"] == "oto"
        assert [(leg["type"], leg["stop_price"]) for leg in oto["legs"]] == [("stop", "63000")]


def test_an_entry_cancelled_before_any_fill_leaves_nothing_and_a_cancelled_exit_leaves_the_other(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path) as server:
        maker, maker_id, taker, taker_id = book_market(server)
        resting = taker.place_bracket(
            taker_id, "BTC-USD", "buy", "0.01", "63000", take_profit="65000", stop_loss="62000"
        )
        assert (resting["status"], resting["legs"]) == ("open", [])
        cancelled = taker.cancel_order(resting["id"])
        assert (cancelled["status"], cancelled["legs"]) == ("cancelled", [])
        assert taker.orders(taker_id)["items"] == []

        maker.place_order(maker_id, "BTC-USD", "sell", "0.01", "64000")
        entry = taker.place_bracket(
            taker_id, "BTC-USD", "buy", "0.01", type="market", take_profit="65000", stop_loss="62000"
        )
        take, stop = entry["legs"]
        gone = taker.cancel_order(take["id"])
        assert (gone["status"], gone["cancel_reason"]) == ("cancelled", "user")
        alone = taker.order(stop["id"])
        assert alone["status"] == "pending_trigger"
        assert [o["id"] for o in taker.orders(taker_id)["items"]] == [stop["id"]]


def test_an_oco_exits_a_position_and_its_legs_can_be_moved(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        maker, maker_id, taker, taker_id = book_market(server)
        maker.place_order(maker_id, "BTC-USD", "sell", "0.01", "64000")
        taker.place_order(taker_id, "BTC-USD", "buy", "0.01", "64000")
        oco = taker.place_oco(taker_id, "BTC-USD", "sell", "0.01", take_profit="66000", stop_loss="62000")
        assert (oco["order_class"], oco["type"], oco["price"], oco["status"]) == (
            "oco",
            "limit",
            "66000",
            "open",
        )
        (stop,) = oco["legs"]
        assert (stop["parent_order_id"], stop["type"], stop["stop_price"]) == (oco["id"], "stop", "62000")
        moved = taker.amend_order(oco["id"], price="65000")
        assert moved["price"] == "65000"
        moved_stop = taker.amend_order(stop["id"], stop_price="63000")
        assert moved_stop["stop_price"] == "63000"
        crossed = error_of(taker.amend_order, stop["id"], stop_price="65500")
        assert (crossed.status, crossed.code) == (422, "invalid_order")
        sized = error_of(taker.amend_order, oco["id"], quantity="0.005")
        assert (sized.status, sized.code) == (422, "invalid_order")
        assert usd_and_btc(taker, taker_id)[1] == (Decimal("0.01"), Decimal("0.01"))
        # the stop fires on a trade at 63000: the take-profit ends (oco), the stop sells at the bid
        maker.place_order(maker_id, "BTC-USD", "buy", "0.01", "62500")
        other, other_id = server.trader(funded="1000000")
        server.admin().deposit(other_id, "1", currency="BTC")
        maker.place_order(maker_id, "BTC-USD", "buy", "0.001", "63000")
        other.place_order(other_id, "BTC-USD", "sell", "0.001", "63000")
        fired = taker.order(stop["id"])
        assert (fired["status"], fired["average_price"]) == ("filled", "62500")
        take = taker.order(oco["id"])
        assert (take["status"], take["cancel_reason"]) == ("cancelled", "oco")
        assert usd_and_btc(taker, taker_id) == amounts(("99985.00", "0.00"), ("0", "0"))


def test_every_refusal_of_a_contingent_order_is_an_invalid_order_that_changes_nothing(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path) as server:
        maker, maker_id, taker, taker_id = book_market(server)
        maker.place_order(maker_id, "BTC-USD", "sell", "0.01", "64000")
        before = usd_and_btc(taker, taker_id)
        cases: list[dict[str, Any]] = [
            {"price": "64000", "take_profit": "63000", "stop_loss": "62000"},  # take-profit below the entry
            {"price": "64000", "take_profit": "66000", "stop_loss": "65000"},  # stop-loss above the entry
            {"price": "64000", "take_profit": "66000", "stop_loss": "64000"},  # stop-loss at the entry
            {"price": "64000", "take_profit": "66000.3", "stop_loss": "62000"},  # off the tick
            {"price": "64000", "take_profit": "-1", "stop_loss": "62000"},
            {"price": "64000", "take_profit": "0", "stop_loss": "62000"},
            {"price": "64000", "order_class": "bracket", "take_profit": {"limit_price": "66000"}},
            {"price": "64000", "order_class": "oto", "take_profit": "66000", "stop_loss": "62000"},
            {"type": "stop", "stop_price": "65000", "take_profit": "66000", "stop_loss": "62000"},
            {"price": "64000", "stop_loss": {"stop_price": "62000", "limit_price": "62500"}},  # limit above
        ]
        for fields in cases:
            refused = error_of(taker.place_order, taker_id, "BTC-USD", "buy", "0.01", **fields)
            assert (refused.status, refused.code) == (422, "invalid_order"), fields
        no_position = error_of(
            taker.place_oco, taker_id, "BTC-USD", "sell", "0.01", take_profit="66000", stop_loss="62000"
        )
        assert (no_position.status, no_position.code) == (422, "invalid_order")
        assert "exits a position" in no_position.detail
        huge = error_of(
            taker.place_order, taker_id, "BTC-USD", "buy", "0.01", "64000", take_profit="1e20", stop_loss="1"
        )
        assert huge.status in (400, 422)
        assert usd_and_btc(taker, taker_id) == before
        assert taker.orders(taker_id, status="all")["items"] == []


def test_a_bracket_survives_a_restart_mid_entry_and_its_exits_keep_growing_and_cancelling(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as server:
        server.admin().create_market(
            symbol="BTC-USD", kind="spot", base="BTC", quote="USD", tick_size="0.5", lot_size="0.001"
        )
        Client(server.url).register("bracket-maker", "bracket-maker-pw")
        Client(server.url).register("bracket-taker", "bracket-taker-pw")
        maker = Client(server.url).login("bracket-maker", "bracket-maker-pw")
        taker = Client(server.url).login("bracket-taker", "bracket-taker-pw")
        maker_id = maker.create_account("USD", initial_balance="10000000")["id"]
        server.admin().deposit(maker_id, "100", currency="BTC")
        taker_id = taker.create_account("USD", initial_balance="100000")["id"]
        entry = taker.place_bracket(
            taker_id, "BTC-USD", "buy", "0.01", "64000", take_profit="66000", stop_loss="62000"
        )
        maker.place_order(maker_id, "BTC-USD", "sell", "0.004", "64000")
        half = taker.order(entry["id"])
        assert (half["status"], half["filled_quantity"]) == ("partially_filled", "0.004")
        assert [(leg["type"], leg["quantity"]) for leg in half["legs"]] == [
            ("limit", "0.004"),
            ("stop", "0.004"),
        ]
    with running_server(data_dir) as restarted:  # snapshot + journal replay
        maker = Client(restarted.url).login("bracket-maker", "bracket-maker-pw")
        taker = Client(restarted.url).login("bracket-taker", "bracket-taker-pw")
        again = taker.order(entry["id"])
        assert [(leg["id"], leg["quantity"], leg["status"]) for leg in again["legs"]] == [
            (leg["id"], "0.004", leg["status"]) for leg in half["legs"]
        ]
        maker.place_order(maker_id, "BTC-USD", "sell", "0.006", "64000")
        grown = taker.order(entry["id"])
        assert grown["status"] == "filled"
        assert [(leg["quantity"], leg["status"]) for leg in grown["legs"]] == [
            ("0.01", "open"),
            ("0.01", "pending_trigger"),
        ]
        assert usd_and_btc(taker, taker_id)[1] == (Decimal("0.01"), Decimal("0.01"))
        maker.place_order(maker_id, "BTC-USD", "buy", "0.01", "66000")
        done = taker.order(entry["id"])
        assert [(leg["status"], leg["cancel_reason"]) for leg in done["legs"]] == [
            ("filled", None),
            ("cancelled", "oco"),
        ]
        assert usd_and_btc(taker, taker_id) == amounts(("100020.00", "0.00"), ("0", "0"))


def test_a_halt_cancels_the_bracket_and_its_exits_and_releases_their_holds(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        maker, maker_id, taker, taker_id = book_market(server)
        maker.place_order(maker_id, "BTC-USD", "sell", "0.004", "64000")
        entry = taker.place_bracket(
            taker_id, "BTC-USD", "buy", "0.01", "64000", take_profit="66000", stop_loss="62000"
        )
        assert (entry["status"], entry["filled_quantity"]) == ("partially_filled", "0.004")
        plain = taker.place_order(taker_id, "BTC-USD", "buy", "0.01", "60000")
        # 256 spent; the entry's rest holds 384, the plain buy 600; the take-profit holds the 0.004 BTC
        assert usd_and_btc(taker, taker_id) == amounts(("99744", "984"), ("0.004", "0.004"))

        halted = server.admin().halt_market("BTC-USD")
        assert halted["status"] == "halted"
        ended = taker.order(entry["id"])
        assert (ended["status"], ended["cancel_reason"], ended["filled_quantity"]) == (
            "cancelled",
            "market_halted",
            "0.004",
        )
        assert [(leg["type"], leg["status"], leg["cancel_reason"]) for leg in ended["legs"]] == [
            ("limit", "cancelled", "market_halted"),
            ("stop", "cancelled", "market_halted"),
        ]
        # the plain order waits through the halt and holds as before; the exits hold nothing any more
        assert [o["id"] for o in taker.orders(taker_id)["items"]] == [plain["id"]]
        assert usd_and_btc(taker, taker_id) == amounts(("99744", "600"), ("0.004", "0"))
        error = error_of(taker.cancel_order, entry["id"])
        assert (error.status, error.code) == (409, "conflict")

        server.admin().resume_market("BTC-USD")
        other, other_id = server.trader(funded="100000")
        other.place_order(other_id, "BTC-USD", "buy", "0.001", "61000")
        sold = maker.place_order(maker_id, "BTC-USD", "sell", "0.001", "61000")
        assert sold["status"] == "filled"  # the last trade at 61,000 is under the old stop-loss
        assert usd_and_btc(taker, taker_id) == amounts(("99744", "600"), ("0.004", "0"))
        assert [o["id"] for o in taker.orders(taker_id)["items"]] == [plain["id"]]
