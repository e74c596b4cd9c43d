"""The ledger a user can reconcile, binary markets in one set of terms, and volume_24h across a
restart, through a real server (issue 11, items 7, 8 and 9).

One trader does everything that moves a balance: a deposit, a spot buy with its fee, a perp round
trip (fees, funding, realised P&L), a binary position held into a YES settlement and another into a
void. Its ledger lists each change exactly, with the running balance, newest first; the amounts of
each currency sum to the account's balance; pages walk it; other users get 403; and all of it (with
the markets' outcomes and the 24 h volumes) is the same after the server restarts on its data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_api_harness import Server, running_server
from tradehall.client import ApiError, Client

Line = tuple[str, str, str, str, str | None]
"""(type, amount, currency, balance_after, market) of a ledger item."""


def _markets(admin: Client) -> None:
    admin.create_market(
        symbol="LG-USD", kind="spot", base="LGC", quote="USD", tick_size="0.5", lot_size="0.001",
        taker_fee="0.001",
    )  # fmt: skip
    admin.create_market(
        symbol="LG-PERP", kind="perp", base="LGC", quote="USD", tick_size="0.5", lot_size="0.001",
        max_leverage="10", taker_fee="0.0005",
    )  # fmt: skip
    for symbol in ("LG-YES", "LG-VOID"):
        admin.create_market(
            symbol=symbol, kind="binary", base=symbol, quote="USD", tick_size="0.01", lot_size="1",
            taker_fee="0.01",
        )  # fmt: skip


def _walk(client: Client, account_id: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.ledger(account_id, limit=limit, cursor=cursor)
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _trade(
    maker: tuple[Client, str],
    taker: tuple[Client, str],
    market: str,
    sides: tuple[str, str],
    qty: str,
    price: str,
) -> dict[str, Any]:
    """The maker rests, the taker takes it all: returns the taker's (filled) order."""
    resting = maker[0].place_order(maker[1], market, sides[0], qty, price)
    assert resting["status"] == "open", resting
    order: dict[str, Any] = taker[0].place_order(taker[1], market, sides[1], qty, price)
    assert order["status"] == "filled", order
    return order


def _session(server: Server) -> dict[str, Any]:
    """Everything the trader does; returns what the assertions need."""
    admin = server.admin()
    _markets(admin)
    a, a_id = server.trader(funded="10000")
    b, b_id = server.trader(funded="10000")
    admin.deposit(b_id, "1", currency="LGC")
    orders: dict[str, dict[str, Any]] = {}
    orders["spot"] = _trade((b, b_id), (a, a_id), "LG-USD", ("sell", "buy"), "0.1", "20000")
    orders["perp_open"] = _trade((b, b_id), (a, a_id), "LG-PERP", ("sell", "buy"), "1", "1000")
    admin.set_price("LG-PERP", "1000")
    admin.apply_funding("LG-PERP", "0.001")  # the long pays 1 x 1000 x 0.1 % = 1.00
    orders["perp_close"] = _trade((b, b_id), (a, a_id), "LG-PERP", ("buy", "sell"), "1", "1100")
    orders["yes"] = _trade((b, b_id), (a, a_id), "LG-YES", ("sell", "yes"), "10", "0.40")
    orders["void"] = _trade((b, b_id), (a, a_id), "LG-VOID", ("sell", "yes"), "10", "0.30")

    # item 8: b holds 10 NO at 0.70 on LG-VOID; a YES mark of 0.35 is a NO mark of 0.65
    admin.set_price("LG-VOID", "0.35")
    (no,) = [p for p in b.positions(b_id)["items"] if p["market"] == "LG-VOID"]
    assert (no["side"], no["quantity"], no["average_entry_price"], no["mark_price"]) == (
        "no",
        "10",
        "0.7",
        "0.65",
    )
    assert Decimal(no["unrealized_pnl"]) == Decimal("-0.50")  # (0.65 - 0.70) x 10, in NO terms too
    (yes,) = [p for p in a.positions(a_id)["items"] if p["market"] == "LG-VOID"]
    assert (yes["side"], yes["average_entry_price"], yes["mark_price"]) == ("yes", "0.3", "0.35")

    before = datetime.now(UTC)
    settled = admin.settle_market("LG-YES", "yes")
    voided = admin.void_market("LG-VOID")
    after = datetime.now(UTC)
    assert (settled["status"], settled["outcome"]) == ("settled", "yes")
    assert (voided["status"], voided["outcome"]) == ("cancelled", None)
    for market in (settled, voided):
        assert before <= datetime.fromisoformat(market["settled_at"]) <= after
    return {"a": a, "a_id": a_id, "b": b, "b_id": b_id, "orders": orders}


EXPECTED: list[Line] = [  # oldest first
    ("deposit", "10000.00", "USD", "10000.00", None),
    ("trade", "0.10000000", "LGC", "0.10000000", "LG-USD"),  # one command's currencies in order
    ("trade", "-2000.00", "USD", "8000.00", "LG-USD"),  # 0.1 x 20,000
    ("fee", "-2.00", "USD", "7998.00", "LG-USD"),  # 0.1 %
    ("fee", "-0.50", "USD", "7997.50", "LG-PERP"),  # opening a perp moves no cash but its fee
    ("funding", "-1.00", "USD", "7996.50", "LG-PERP"),
    ("fee", "-0.55", "USD", "7995.95", "LG-PERP"),  # a perp fill's fee comes before its P&L
    ("trade", "100.00", "USD", "8095.95", "LG-PERP"),  # realised 1 x (1,100 - 1,000)
    ("trade", "-4.00", "USD", "8091.95", "LG-YES"),  # 10 YES at 0.40
    ("fee", "-0.04", "USD", "8091.91", "LG-YES"),
    ("trade", "-3.00", "USD", "8088.91", "LG-VOID"),  # 10 YES at 0.30
    ("fee", "-0.03", "USD", "8088.88", "LG-VOID"),
    ("settlement", "10.00", "USD", "8098.88", "LG-YES"),  # 10 YES x 1.00
    ("void_refund", "5.00", "USD", "8103.88", "LG-VOID"),  # 10 x 0.50
]


def _check_ledger(client: Client, account_id: str, orders: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    items = client.ledger(account_id)["items"]
    lines = [(i["type"], i["amount"], i["currency"], i["balance_after"], i.get("market")) for i in items]
    assert lines == EXPECTED[::-1]  # newest first
    ids = [int(item["id"]) for item in items]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    times = [datetime.fromisoformat(item["at"]) for item in items]
    assert times == sorted(times, reverse=True)
    # fill lines name their order and trade; the others name neither
    by_order = {order["id"]: {str(fill["trade_id"]) for fill in order["fills"]} for order in orders.values()}
    for item in items:
        if item["type"] in ("trade", "fee"):
            assert item["trade_id"] in by_order[item["order_id"]], item
        else:
            assert item["order_id"] is None and item["trade_id"] is None, item
    spot = [i for i in items if i["market"] == "LG-USD"]
    assert {i["order_id"] for i in spot} == {orders["spot"]["id"]}
    # it reconciles: the amounts of each currency sum to the account's balance
    account = client.account(account_id)
    totals: dict[str, Decimal] = {}
    for item in items:
        totals[item["currency"]] = totals.get(item["currency"], Decimal(0)) + Decimal(item["amount"])
    balances = {b["currency"]: Decimal(b["total"]) for b in account["balances"]}
    assert totals == balances == {"USD": Decimal("8103.88"), "LGC": Decimal("0.1")}
    assert account["balance"] == "8103.88"
    return items


def test_the_ledger_lists_every_balance_change_and_reconciles_also_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_server(data) as server:
        session = _session(server)
        a, a_id, b, b_id = session["a"], session["a_id"], session["b"], session["b_id"]
        items = _check_ledger(a, a_id, session["orders"])
        credentials = _credentials(a)

        # pages: the same items in the same order, whatever the page size
        for limit in (1, 3, 5, 1000):
            assert _walk(a, a_id, limit) == items
        page = a.ledger(a_id, limit=4)
        assert len(page["items"]) == 4 and page["next_cursor"] is not None
        # b's side: the counterparty of each trade, its void refund, its funding received
        b_lines = [(i["type"], i["amount"], i.get("market")) for i in b.ledger(b_id)["items"]]
        assert ("funding", "1.00", "LG-PERP") in b_lines
        assert ("void_refund", "5.00", "LG-VOID") in b_lines
        assert ("trade", "-0.10000000", "LG-USD") in b_lines
        # another user's account, an unknown one, a bad limit, a bad cursor
        with pytest.raises(ApiError) as foreign:
            b.ledger(a_id)
        assert (foreign.value.status, foreign.value.code) == (403, "forbidden")
        with pytest.raises(ApiError) as unknown:
            a.ledger("acc_doesnotexist")
        assert (unknown.value.status, unknown.value.code) == (404, "not_found")
        for bad in ({"limit": 1001}, {"limit": 0}, {"cursor": "not-a-cursor"}):
            with pytest.raises(ApiError) as refused:
                a.ledger(a_id, **bad)
            assert (refused.value.status, refused.value.code) == (400, "invalid_request"), bad
        # an admin may read any account's ledger
        assert server.admin().ledger(a_id)["items"] == items

        markets = {m: a.market(m) for m in ("LG-YES", "LG-VOID", "LG-USD")}
        listed = {m["symbol"]: m for m in a.markets()["items"]}
        assert {m: (listed[m]["outcome"], listed[m]["settled_at"]) for m in markets} == {
            m: (markets[m]["outcome"], markets[m]["settled_at"]) for m in markets
        }
        assert (markets["LG-USD"]["outcome"], markets["LG-USD"]["settled_at"]) == (None, None)
        volumes = {m: a.ticker(m)["volume_24h"] for m in ("LG-USD", "LG-PERP", "LG-YES")}
        assert volumes == {"LG-USD": "0.1", "LG-PERP": "2", "LG-YES": "10"}

    with running_server(data) as server:
        a = Client(server.url).login(*credentials)
        assert a.ledger(a_id)["items"] == items
        for symbol, market in markets.items():
            again = a.market(symbol)
            assert (again["status"], again["outcome"], again["settled_at"]) == (
                market["status"],
                market["outcome"],
                market["settled_at"],
            )
        assert {m: a.ticker(m)["volume_24h"] for m in volumes} == volumes


def _credentials(client: Client) -> tuple[str, str]:
    name = client.me()["username"]
    return name, "pw-" + name
