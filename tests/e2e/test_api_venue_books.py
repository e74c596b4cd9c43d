"""The venue's own books over HTTP: system accounts, conservation per currency and its metric.

Deposits, a binary market traded with fees at 0.01 and 0.99, then voided (the figures of
test_api_void): every cent is either in a user's balance or in a system account.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_api_harness import running_server
from tradehall.client import ApiError


def test_system_accounts_and_conservation_after_deposits_fees_and_a_void(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        admin.create_market(
            symbol="VOID-ME",
            kind="binary",
            base="VOID-ME",
            quote="USD",
            tick_size="0.01",
            lot_size="1",
            maker_fee="0.005",
            taker_fee="0.01",
        )
        (a, a_id), (b, b_id), (c, c_id) = (server.trader(funded="1000") for _ in range(3))
        admin.deposit(c_id, "250.5")
        for client, account, side, quantity, price in [
            (a, a_id, "yes", "100", "0.01"),
            (b, b_id, "sell", "100", "0.01"),
            (c, c_id, "yes", "100", "0.99"),
            (a, a_id, "sell", "100", "0.99"),
            (b, b_id, "buy", "40", "0.60"),
            (c, c_id, "sell", "40", "0.60"),
        ]:
            client.place_order(account, "VOID-ME", side, quantity, price)

        before = {(i["name"], i["currency"]): Decimal(i["balance"]) for i in admin.system_accounts()["items"]}
        assert before[("system:collateral:VOID-ME", "USD")] == Decimal(60)  # 60 pairs of YES and NO
        assert before[("system:external", "USD")] == Decimal("-3250.5")

        admin.void_market("VOID-ME")

        after = {(i["name"], i["currency"]): Decimal(i["balance"]) for i in admin.system_accounts()["items"]}
        assert after[("system:collateral:VOID-ME", "USD")] == 0
        assert after[("system:fees", "USD")] == Decimal("1.87")  # a 1.00, b 0.13, c 0.74
        assert after[("system:external", "USD")] == Decimal("-3250.5")
        assert all(v >= 0 for (name, _), v in after.items() if name != "system:external"), after
        system = sum(v for (name, _), v in after.items() if name != "system:external")

        [usd] = admin.conservation()["items"]
        assert usd["currency"] == "USD"
        assert (Decimal(usd["deposits"]), Decimal(usd["withdrawals"])) == (Decimal("3250.5"), 0)
        users = sum(Decimal(client.account(i)["balance"]) for client, i in ((a, a_id), (b, b_id), (c, c_id)))
        assert users == Decimal("3248.63")  # 1097.00 + 946.87 + 1204.76
        assert Decimal(usd["user_balances"]) == users
        assert Decimal(usd["system_balances"]) == system == Decimal("1.87")
        assert usd["difference"] == "0"

        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'tradehall_conservation_difference{currency="USD"} 0.0' in metrics


def test_the_venue_books_are_for_admins_only(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        trader, _ = server.trader()
        for read in (trader.system_accounts, trader.conservation):
            with pytest.raises(ApiError) as refused:
                read()
            assert (refused.value.status, refused.value.code) == (403, "forbidden")
