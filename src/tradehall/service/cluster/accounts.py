"""One account as a cluster holds it: its parts in every shard, merged for people to read.

Collateral is allocated per shard (docs/cluster.md, "Accounts across shards"): each shard's engine
holds the account's balances for that shard and values its positions in that shard's markets. What the
account owns is the sum of the parts: balances summed per currency (total and held), equity and P&L
summed (each shard values only what it holds, in the account's currency, so no part counts twice).
Everything else (owner, kind, status, trading state, tier, an assessment's state) is the home shard's:
an account is opened there first, and an assessment account lives only there.

Money in transit between shards (a transfer between its two steps) is in neither part: the sum is
lower by it until the transfer ends (`GET /admin/transfers/{id}`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from math import lcm

from tradehall.engine.views import AccountView, BalanceView, Valuation


def merged_account(parts: Sequence[AccountView]) -> AccountView:
    """The account across shards from its parts, the home shard's first (ValueError: no part)."""
    if not parts:
        raise ValueError("an account has at least its home shard's part")
    home = parts[0]
    if len(parts) == 1:
        return home
    totals: dict[str, tuple[int, int]] = {}
    for part in parts:
        for entry in part.balances:
            total, held = totals.get(entry.currency, (0, 0))
            totals[entry.currency] = (total + entry.total, held + entry.held)
    balances = tuple(BalanceView(currency, *totals[currency]) for currency in sorted(totals))
    return dataclasses.replace(home, balances=balances, valuation=merged_valuation(parts))


def merged_valuation(parts: Sequence[AccountView]) -> Valuation:
    """The parts' valuations added (the exact figures over a common denominator)."""
    valuations = [part.valuation for part in parts]
    scale = lcm(*(valuation.scale for valuation in valuations))

    def total(field: str) -> int:
        return sum(int(getattr(valuation, field)) for valuation in valuations)

    return Valuation(
        currency=valuations[0].currency,
        cash=total("cash"),
        holdings=total("holdings"),
        positions=total("positions"),
        unrealized_pnl=total("unrealized_pnl"),
        realized_pnl=total("realized_pnl"),
        maintenance=total("maintenance"),
        equity=total("equity"),
        scale=scale,
        exact_equity=sum(v.exact_equity * (scale // v.scale) for v in valuations),
        exact_maintenance=sum(v.exact_maintenance * (scale // v.scale) for v in valuations),
    )
