"""Through a real server: units deposited rather than bought have no cost basis, so selling them
realises 0 and never opens a short; bought units realise against their basis, in the same order. A
deposit may give its units a basis (`cost_price`); then they realise against it like bought ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_api_harness import running_server
from tests.e2e.test_api_manual_clock import eventually
from tradehall.client import ApiError


def test_a_sale_of_deposited_and_bought_units_realises_only_the_bought_units_p_and_l(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        admin.create_market(
            symbol="DEP-USD", kind="spot", base="DEP", quote="USD", tick_size="0.5", lot_size="0.001"
        )
        maker, maker_id = server.trader("1000000")
        trader, account_id = server.trader("100000")
        admin.deposit(maker_id, "10", currency="DEP")
        admin.deposit(account_id, "1", currency="DEP")  # deposited: no basis
        maker.place_order(maker_id, "DEP-USD", "sell", "0.5", "60000")
        assert trader.place_order(account_id, "DEP-USD", "buy", "0.5", "60000")["status"] == "filled"
        maker.place_order(maker_id, "DEP-USD", "buy", "1.5", "61000")
        sale = trader.place_order(account_id, "DEP-USD", "sell", "1.5", "61000")
        assert sale["status"] == "filled"

        def sale_fills() -> list[tuple[str, str]]:  # fills are read from the read models
            items = trader.trades(account_id=account_id)["items"]
            return [(f["quantity"], f["realized_pnl"]) for f in items if f["order_id"] == sale["id"]]

        # the 0.5 bought at 60,000 realise 0.5 x 1,000; the deposited 1.0 realises nothing
        eventually(sale_fills, [("1.5", "500.00")])
        assert trader.positions(account_id)["items"] == []  # flat, not short
        account = trader.account(account_id)
        assert (account["balance"], account["realized_pnl"]) == ("161500.00", "500.00")


def test_deposited_units_with_a_cost_price_realise_against_that_basis(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        admin.create_market(
            symbol="DEP-USD", kind="spot", base="DEP", quote="USD", tick_size="0.5", lot_size="0.001"
        )
        maker, maker_id = server.trader("1000000")
        trader, account_id = server.trader("100000")
        admin.deposit(maker_id, "10", currency="DEP")
        admin.deposit(account_id, "1", currency="DEP", cost_price="59000")
        [position] = trader.positions(account_id)["items"]
        assert (position["side"], position["quantity"], position["average_entry_price"]) == (
            "long",
            "1",
            "59000",
        )
        maker.place_order(maker_id, "DEP-USD", "sell", "0.5", "60000")
        assert trader.place_order(account_id, "DEP-USD", "buy", "0.5", "60000")["status"] == "filled"
        maker.place_order(maker_id, "DEP-USD", "buy", "1.5", "61000")
        assert trader.place_order(account_id, "DEP-USD", "sell", "1.5", "61000")["status"] == "filled"
        # 1.5 x 61,000 against the basis 59,000 + 0.5 x 60,000 = 89,000
        assert trader.account(account_id)["realized_pnl"] == "2500.00"
        assert trader.positions(account_id)["items"] == []

        before = trader.account(account_id)
        for body, expected in (
            ({"amount": "5", "cost_price": "1"}, (400, "invalid_request")),  # USD: no spot market prices it
            (
                {"amount": "0.0005", "currency": "DEP", "cost_price": "60000"},
                (400, "invalid_request"),
            ),  # < a lot
            (
                {"amount": "1", "currency": "DEP", "cost_price": "60000.25"},
                (422, "invalid_order"),
            ),  # off tick
            ({"amount": "1", "currency": "DEP", "cost_price": "0"}, (422, "invalid_order")),
            ({"amount": "1", "currency": "DEP", "cost_price": "abc"}, (400, "invalid_request")),
        ):
            with pytest.raises(ApiError) as refused:
                admin.deposit(account_id, **body)
            assert (refused.value.status, refused.value.code) == expected, body
        assert trader.account(account_id) == before  # a refused deposit changes nothing
