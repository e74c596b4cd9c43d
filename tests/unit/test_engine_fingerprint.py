"""Client-order-id fingerprints are kept in snapshots: a faster computation must give the same bytes.
The digests below were printed by the implementation before the memoised one (commit a686fec)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tradehall.domain import commands as c
from tradehall.domain.enums import StopTrigger
from tradehall.engine.checks import fingerprint

CASES = [
    (
        c.PlaceOrder(account_id="a", market="BTC-USD", side="buy", quantity=D("0.10"), price=D("100.50")),
        None,
        "59039e2ef024717d",
    ),
    (
        c.PlaceOrder(
            account_id="a",
            market="BTC-USD",
            side="sell",
            quantity=D("-0"),
            price=D("1E+2"),
            type="stop_limit",
            stop_price=D("99"),
        ),
        StopTrigger.MARK,
        "72dde5fc0ef02ced",
    ),
    (
        c.PlaceOrder(
            account_id="a",
            market="BTC-USD",
            side="sell",
            quantity=D("2"),
            type="trailing_stop",
            trail_percent=D("1.50"),
            activation_price=D("101"),
        ),
        StopTrigger.LAST,
        "e0f7ea3764c3962a",
    ),
    (
        c.PlaceOrder(
            account_id="a",
            market="BTC-USD",
            side="buy",
            quantity=D("1"),
            price=D("100"),
            order_class="bracket",
            take_profit=D("110"),
            stop_loss=D("90"),
            stop_loss_limit=D("89.90"),
        ),
        None,
        "027c8850ae1251fd",
    ),
    (
        c.PlaceOrder(account_id="a", market="BTC-USD", side="buy", quantity="0.5", price=3),  # type: ignore[arg-type]
        None,
        "fa5ecedfcef486b4",
    ),
]


@pytest.mark.parametrize(("command", "trigger", "digest"), CASES)
def test_fingerprints_keep_their_bytes(
    command: c.PlaceOrder, trigger: StopTrigger | None, digest: str
) -> None:
    assert fingerprint(command, trigger).hex() == digest
    assert fingerprint(command, trigger).hex() == digest  # the second time from the memo


def test_equal_decimals_share_a_fingerprint_and_zero_keeps_its_sign() -> None:
    def order(quantity: D) -> c.PlaceOrder:
        return c.PlaceOrder(account_id="a", market="BTC-USD", side="buy", quantity=quantity, price=D("1"))

    assert fingerprint(order(D("0.10")), None) == fingerprint(order(D("0.1")), None)
    assert fingerprint(order(D("0")), None) != fingerprint(order(D("-0")), None)
