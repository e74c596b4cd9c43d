"""Cost basis chosen over HTTP: FIFO, LIFO and average realised P&L against an exact-fraction reference."""

from __future__ import annotations

import uuid
from fractions import Fraction
from pathlib import Path

import pytest

from tests.e2e.test_api_harness import Server, running_server
from tradehall.client import ApiError, Client

BUYS = [(Fraction(2), Fraction(100)), (Fraction(2), Fraction("106.5"))]
SELL = (Fraction(2), Fraction(120))


def reference_realized(
    method: str, buys: list[tuple[Fraction, Fraction]], sell: tuple[Fraction, Fraction]
) -> Fraction:
    """Textbook realised P&L of one sale (fees excluded): lots closed first-in, last-in, or at the average."""
    quantity, price = sell
    if method == "average":
        held = sum(q for q, _ in buys)
        average = sum(q * p for q, p in buys) / held
        return quantity * (price - average)
    lots = list(buys) if method == "fifo" else list(reversed(buys))
    realized = Fraction(0)
    for lot_quantity, lot_price in lots:
        closed = min(quantity, lot_quantity)
        realized += closed * (price - lot_price)
        quantity -= closed
        if quantity == 0:
            break
    return realized


def _trader(server: Server, cost_basis: str | None) -> tuple[Client, str, dict[str, object]]:
    name = "t" + uuid.uuid4().hex[:12]
    Client(server.url).register(name, "pw-" + name)
    client = Client(server.url).login(name, "pw-" + name)
    account = client.create_account("USD", initial_balance="100000", cost_basis=cost_basis)
    return client, account["id"], account


def test_fifo_lifo_and_average_realised_pnl_match_an_exact_reference(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        admin.create_market(
            symbol="CB-USD", kind="spot", base="CB", quote="USD", tick_size="0.5", lot_size="0.001"
        )
        maker, maker_id, _ = _trader(server, None)
        admin.deposit(maker_id, "100", currency="CB")
        for method in ("fifo", "lifo", "average"):
            client, account_id, created = _trader(server, method)
            assert created["cost_basis"] == method
            for quantity, price in BUYS:
                maker.place_order(maker_id, "CB-USD", "sell", str(quantity), str(float(price)))
                assert (
                    client.place_order(account_id, "CB-USD", "buy", str(quantity), str(float(price)))[
                        "status"
                    ]
                    == "filled"
                )
            quantity, price = SELL
            maker.place_order(maker_id, "CB-USD", "buy", str(quantity), str(float(price)))
            assert (
                client.place_order(account_id, "CB-USD", "sell", str(quantity), str(float(price)))["status"]
                == "filled"
            )

            expected = reference_realized(method, BUYS, SELL)
            account = client.account(account_id)
            assert Fraction(account["realized_pnl"]) == expected, method
            assert account["cost_basis"] == method
            # the cash is the same whatever the method: 100000 - 200 - 213 + 240 (no fees)
            assert Fraction(account["balance"]) == 99827
            assert [a["cost_basis"] for a in client.accounts()["items"]] == [method]
        assert {m: reference_realized(m, BUYS, SELL) for m in ("fifo", "lifo", "average")} == {
            "fifo": Fraction(40),
            "lifo": Fraction(27),
            "average": Fraction("33.5"),
        }


def test_cost_basis_defaults_to_average_and_refuses_other_values(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        client, account_id, created = _trader(server, None)
        assert created["cost_basis"] == "average"
        assert client.account(account_id)["cost_basis"] == "average"
        for bad in ("FIFO", "hifo", ""):
            with pytest.raises(ApiError) as refused:
                client.create_account("USD", cost_basis=bad)
            assert (refused.value.status, refused.value.code) == (400, "invalid_request")
