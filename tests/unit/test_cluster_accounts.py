"""An account across a cluster's shards: its parts added up (balances per currency, equity, P&L), the
home shard's part giving everything else."""

from __future__ import annotations

import dataclasses

import pytest

from tradehall.domain import commands as c
from tradehall.engine import Engine, views
from tradehall.engine.valuation import Valuation
from tradehall.engine.views import AccountView, BalanceView
from tradehall.service.cluster.accounts import merged_account, merged_valuation


def part(balances: tuple[BalanceView, ...], valuation: Valuation) -> AccountView:
    engine = Engine()
    engine.apply(c.OpenAccount(account_id="acc", owner="ann"))
    view = views.account(engine, "acc")
    assert view is not None
    return dataclasses.replace(view, balances=balances, valuation=valuation)


def valuation(equity: int, scale: int, exact: int, *, realized: int = 0) -> Valuation:
    return Valuation(
        currency="USD", cash=equity, holdings=0, positions=0, unrealized_pnl=0, realized_pnl=realized,
        maintenance=1, equity=equity, scale=scale, exact_equity=exact, exact_maintenance=scale,
    )


def test_balances_are_summed_per_currency_and_valuations_over_a_common_denominator() -> None:
    home = part(
        (BalanceView("BTC", 5, 0), BalanceView("USD", 60_000, 10_020)),
        valuation(60_000, 4, 240_001, realized=-3),
    )
    other = part((BalanceView("USD", 39_990, 2_000), BalanceView("ETH", 7, 7)), valuation(39_990, 6, 239_943))
    merged = merged_account([home, other])
    assert merged.balances == (
        BalanceView("BTC", 5, 0),
        BalanceView("ETH", 7, 7),
        BalanceView("USD", 99_990, 12_020),
    )
    value = merged.valuation
    assert (value.equity, value.cash, value.realized_pnl, value.maintenance) == (99_990, 99_990, -3, 2)
    # 240001/4 + 239943/6 = 720003/12 + 479886/12
    assert (value.scale, value.exact_equity, value.exact_maintenance) == (12, 1_199_889, 24)
    assert (merged.owner, merged.account_id, merged.status) == (home.owner, "acc", home.status)
    assert merged_valuation([home]) == home.valuation


def test_one_part_is_the_account_itself_and_none_is_an_error() -> None:
    only = part((BalanceView("USD", 1, 0),), valuation(1, 1, 1))
    assert merged_account([only]) is only
    with pytest.raises(ValueError):
        merged_account([])
