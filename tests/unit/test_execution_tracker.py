"""The execution analytics' arithmetic: signs, VWAP from running sums, quantity-weighted markouts that stay
null until every fill has passed its horizon."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from tradehall.store.projector.execution import ExecutionTracker, bps

S = 1_000_000_000
AT = datetime(2030, 1, 1, tzinfo=UTC)


def test_bps_is_signed_so_that_a_cost_is_negative() -> None:
    assert bps(1, D("100"), D("99.5")) == D("-50.25")  # a buy above the mid
    assert bps(-1, D("99"), D("99.5")) == D("-50.25")  # a sell below it
    assert bps(-1, D("100"), D("99.5")) == D("50.25")
    assert bps(1, D("100"), None) is None


def test_a_sell_filled_twice_has_vwap_slippage_and_weighted_markouts() -> None:
    tracker = ExecutionTracker()
    tracker.on_top("X", D("100"), D("101"))  # mid 100.50
    tracker.on_trade("X", D("200"), D("5"))  # before the order: not in its VWAP
    tracker.on_accepted(7, "a", "X", "TRADEHALL", "ses9-1", False, D("3"), AT, D("101"))
    tracker.on_trade("X", D("100"), D("1"))
    tracker.on_fill(7, D("100"), D("1"), D("0.10"), 0, AT)
    tracker.on_top("X", D("99"), D("100"))  # mid 99.50
    tracker.on_trade("X", D("99"), D("2"))
    tracker.on_fill(7, D("99"), D("2"), D("0.20"), S // 2, AT)
    tracker.on_trade("X", D("98"), D("1"))  # someone else's
    tracker.on_end(7, AT)
    row = tracker.following[7].row
    # p = (100 + 198) / 3 = 99.3333; arrival: +(99.3333 / 100.5 - 1) x 10^4 = -116.086
    assert (row["arrival_slippage_bps"], row["session"]) == (D("-116.09"), "ses9")
    # VWAP = (100 + 198 + 98) / 4 = 99; a sell at 99.3333 beats it: +33.67
    assert (row["vwap"], row["vwap_slippage_bps"]) == (D("99"), D("33.67"))
    assert row["implementation_shortfall_bps"] == D("-165.02")  # against 101
    tracker.advance(S)  # the first fill's 1 s horizon: mid 99.50; the second's is not yet
    assert row["markout_1s_bps"] is None
    tracker.on_top("X", D("97"), D("98"))  # mid 97.50
    tracker.advance(S + S // 2)
    # -1 x (99.5 / 100 - 1) x 10^4 = 50 (x 1) and -1 x (97.5 / 99 - 1) x 10^4 = 151.52 (x 2): 117.68
    assert row["markout_1s_bps"] == D("117.68")
    inserts, updates = tracker.take_writes()
    assert [r["order_id"] for r in inserts] == ["7"] and updates == []
    tracker.advance(61 * S)
    assert 7 not in tracker.following  # every markout known and the order ended: forgotten
    _, updates = tracker.take_writes()
    # at 10 s and 60 s the mid is 97.50 for both fills: (250 x 1 + 151.52 x 2) / 3
    assert [(r["markout_10s_bps"], r["markout_60s_bps"]) for r in updates] == [(D("184.34"), D("184.34"))]
