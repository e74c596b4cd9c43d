"""Issue 21 items 1-3 over HTTP, with the issue's figures: rounding never creates money.

A real server: perp P&L of +0.006 against -0.003 and -0.003, funding of 0.010001 against two
0.0050005, the average entry over partial closes, a funding rate of 0.00019999 and one finer than 8
decimals; `system:rounding` holds the residue and conservation shows a difference of "0".
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_api_harness import running_server
from tradehall.client import ApiError, Client

PERP = {"kind": "perp", "base": "BTC", "quote": "USD", "lot_size": "0.001", "max_leverage": "10"}


def balances(pairs: dict[str, tuple[Client, str]]) -> dict[str, Decimal]:
    return {name: Decimal(client.account(account)["balance"]) for name, (client, account) in pairs.items()}


def venue(admin: Client) -> dict[str, Decimal]:
    return {
        i["name"]: Decimal(i["balance"]) for i in admin.system_accounts()["items"] if i["currency"] == "USD"
    }


def position(client: Client, account: str, market: str) -> dict[str, Any]:
    [found] = [p for p in client.positions(account)["items"] if p["market"] == market]
    return found


def realized(client: Client, account: str, market: str) -> Decimal:
    """The sum of the realised P&L of the account's fills in `market`."""
    return sum(
        (Decimal(t["realized_pnl"]) for t in client.trades(account, market)["items"]), start=Decimal(0)
    )


def test_perp_pnl_and_funding_round_in_the_venues_favour_and_conserve_money(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        admin.create_market(symbol="PNL-PERP", tick_size="0.5", **PERP)
        admin.create_market(symbol="FUND-PERP", tick_size="0.5", **PERP)
        assert venue(admin)["system:rounding"] == 0  # listed from the first market in USD on
        traders = {name: server.trader(funded="1000") for name in "abcd"}
        (a, a_id), (b, b_id), (c, c_id), (d, d_id) = traders.values()

        # item 1, P&L: a long 0.002 at 100 against b and c; a sells to d at 103 (+0.006), then b and
        # c buy back from d at 103 (-0.003 each); d ends flat with no P&L
        for client, account, side, quantity, price in [
            (b, b_id, "sell", "0.001", "100"),
            (c, c_id, "sell", "0.001", "100"),
            (a, a_id, "buy", "0.002", "100"),
            (d, d_id, "buy", "0.002", "103"),
            (a, a_id, "sell", "0.002", "103"),
            (d, d_id, "sell", "0.002", "103"),
            (b, b_id, "buy", "0.001", "103"),
            (c, c_id, "buy", "0.001", "103"),
        ]:
            client.place_order(account, "PNL-PERP", side, quantity, price)
        assert balances(traders) == {
            "a": Decimal("1000.00"),  # +0.006 credited rounded down: 0.00 (it was +0.01)
            "b": Decimal("999.99"),  # -0.003 debited rounded up: -0.01 (it was 0.00)
            "c": Decimal("999.99"),
            "d": Decimal("1000.00"),
        }
        assert [realized(cl, i, "PNL-PERP") for cl, i in traders.values()] == [
            0,
            Decimal("-0.01"),
            Decimal("-0.01"),
            0,
        ]
        books = venue(admin)
        assert books["system:perp_settlement"] == 0  # nothing open: clearing is empty (it was -0.01)
        assert books["system:rounding"] == Decimal("0.02")

        # item 1, funding: a long 0.002, b and c short 0.001 each at mark 100; 0.050005 x 0.2 USD is
        # 0.010001 for a (pays 0.02), 0.0050005 for b and c (each gets 0.00)
        for client, account, side in [(b, b_id, "sell"), (c, c_id, "sell")]:
            client.place_order(account, "FUND-PERP", side, "0.001", "100")
        a.place_order(a_id, "FUND-PERP", "buy", "0.002", "100")
        admin.set_price("FUND-PERP", "100")
        admin.apply_funding("FUND-PERP", "0.050005")
        assert balances(traders) == {
            "a": Decimal("999.98"),
            "b": Decimal("999.99"),
            "c": Decimal("999.99"),
            "d": Decimal("1000.00"),
        }
        assert venue(admin)["system:rounding"] == Decimal("0.04")

        [usd] = admin.conservation()["items"]
        assert (usd["currency"], usd["difference"]) == ("USD", "0")
        assert Decimal(usd["deposits"]) - Decimal(usd["withdrawals"]) == Decimal(4000)
        assert Decimal(usd["user_balances"]) + Decimal(usd["system_balances"]) == Decimal(4000)
        assert all(v >= 0 for name, v in venue(admin).items() if name != "system:external")


def test_average_entry_is_exact_and_funding_rates_carry_8_decimals(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        admin.create_market(symbol="AVG-PERP", tick_size="0.01", **PERP)
        admin.create_market(symbol="RATE-PERP", tick_size="0.5", **PERP)
        (a, a_id), (mm, mm_id) = server.trader(funded="100000"), server.trader(funded="100000")

        # item 2: 0.003 at 100.87 and 0.004 at 100.88, then two partial closes; the entry stays
        # 100.875714 (it drifted to 100.8775 when each close removed a floored cost)
        for side, quantity, price in [
            ("buy", "0.003", "100.87"),
            ("buy", "0.004", "100.88"),
            ("sell", "0.002", "101.00"),
            ("sell", "0.001", "100.50"),
        ]:
            mm.place_order(mm_id, "AVG-PERP", "sell" if side == "buy" else "buy", quantity, price)
            a.place_order(a_id, "AVG-PERP", side, quantity, price)
        held = position(a, a_id, "AVG-PERP")
        assert (held["quantity"], held["average_entry_price"]) == ("0.004", "100.875714")

        # item 3: 0.00019999 on 1 BTC at 10,700 is 2.1398930: the long pays 2.14 (it paid 2.13 when the
        # rate was cut to 6 decimals), the short gets 2.13; 0.000000499 is refused, never paid as 0
        mm.place_order(mm_id, "RATE-PERP", "sell", "1", "10700")
        a.place_order(a_id, "RATE-PERP", "buy", "1", "10700")
        admin.set_price("RATE-PERP", "10700")
        before = Decimal(a.account(a_id)["balance"]), Decimal(mm.account(mm_id)["balance"])
        rounding = venue(admin).get("system:rounding", Decimal(0))
        admin.apply_funding("RATE-PERP", "0.00019999")
        after = Decimal(a.account(a_id)["balance"]), Decimal(mm.account(mm_id)["balance"])
        assert (after[0] - before[0], after[1] - before[1]) == (Decimal("-2.14"), Decimal("2.13"))
        assert venue(admin)["system:rounding"] - rounding == Decimal("0.01")
        with pytest.raises(ApiError) as refused:
            admin.apply_funding("RATE-PERP", "0.000000499")
        assert (refused.value.status, refused.value.code) == (422, "invalid_order")
        assert (Decimal(a.account(a_id)["balance"]), Decimal(mm.account(mm_id)["balance"])) == after
        [usd] = admin.conservation()["items"]
        assert usd["difference"] == "0"
