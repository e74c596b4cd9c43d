"""Voiding a binary market through a real server: every YES and NO contract pays 0.50, money is conserved.

The attack from the issue: contracts change hands at 0.01 and at 0.99, then the admin voids the market.
A refund "at cost" paid both holders 99.00 out of 100.00 of collateral while the seller kept its 98.00 gain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_api_harness import running_server
from tradehall.client import ApiError


def eventually(read: Callable[[], Any], expected: Any) -> None:
    """Read models follow the engine asynchronously: poll a read until it matches, within a deadline."""
    deadline = time.monotonic() + 10
    while (value := read()) != expected:
        assert time.monotonic() < deadline, value
        time.sleep(0.05)


def test_void_pays_half_per_contract_cancels_orders_and_conserves_money(tmp_path: Path) -> None:
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
        (a, a_id), (b, b_id), (c, c_id), (d, d_id) = (server.trader(funded="1000") for _ in range(4))
        for client, account, side, quantity, price, status in [
            (a, a_id, "yes", "100", "0.01", "open"),
            (b, b_id, "sell", "100", "0.01", "filled"),  # b: NO at 0.99
            (c, c_id, "yes", "100", "0.99", "open"),
            (a, a_id, "sell", "100", "0.99", "filled"),  # a sells its YES to c: +98.00
            (b, b_id, "buy", "40", "0.60", "open"),  # b closes 40 NO at 0.40
            (c, c_id, "sell", "40", "0.60", "filled"),  # c closes 40 YES at 0.60
        ]:
            assert client.place_order(account, "VOID-ME", side, quantity, price)["status"] == status
        resting = d.place_order(d_id, "VOID-ME", "yes", "10", "0.05")
        assert Decimal(d.account(d_id)["available"]) < Decimal("1000")

        market = admin.void_market("VOID-ME")

        assert market["status"] == "cancelled"
        # fees (maker 0.5 %, taker 1 %, rounded up per order) stay paid: a 1.00, b 0.13, c 0.74
        expected = {
            a_id: (a, "1097.00"),  # -1.00 + 99.00, fees 1.00
            b_id: (b, "946.87"),  # -99.00 + 16.00 + 30.00 (60 NO at 0.50), fees 0.13
            c_id: (c, "954.26"),  # -99.00 + 24.00 + 30.00 (60 YES at 0.50), fees 0.74
            d_id: (d, "1000.00"),  # its order cancelled, its hold released
        }
        for account_id, (client, amount) in expected.items():
            account = client.account(account_id)
            assert (account["balance"], account["available"]) == (amount, amount), account_id
        eventually(lambda: d.order(str(resting["id"]))["status"], "cancelled")
        for client, account_id in ((b, b_id), (c, c_id)):
            eventually(lambda holder=client, held=account_id: holder.positions(held)["items"], [])

        engine = server.app.state.service.engine
        system = {
            name: account.balance("USD").total
            for name, account in engine.accounts.items()
            if name.startswith("system:") and name != "system:external"
        }
        assert system["system:collateral:VOID-ME"] == 0
        assert system["system:fees"] == 187
        assert all(total >= 0 for total in system.values()), system
        assert all(total == 0 for total in engine.ledger.totals().values())

        with pytest.raises(ApiError) as again:
            admin.void_market("VOID-ME")
        assert (again.value.status, again.value.code) == (409, "conflict")
        with pytest.raises(ApiError) as closed:
            a.place_order(a_id, "VOID-ME", "yes", "1", "0.50")
        assert (closed.value.status, closed.value.code) == (409, "market_closed")
