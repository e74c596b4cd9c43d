"""Execution analytics (TCA): one order's figures and grouped aggregates, from the read models.

The projector keeps one `order_executions` row per order as the events come (arrival mid, the market's
VWAP over the order's life, fills, fees, markouts; `store/projector/execution.py`), so a request reads
rows, never the trades behind them. Definitions: docs/reference.md, "Execution analytics".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from tradehall.api.convert import dec, rfc3339
from tradehall.api.errors import not_found
from tradehall.api.gateway import GatewayDep, PrincipalDep
from tradehall.api.routes.common import ERRORS, json_response, page, time_ns
from tradehall.api.routes.orders import _check_owner, _order_id
from tradehall.store import models, queries

router = APIRouter(tags=["analytics"], responses=ERRORS)
GroupBy = Literal["venue", "market", "account", "session", "day"]
_CENT = Decimal("0.01")
_HORIZONS = ("1s", "10s", "60s")
SMART_EXECUTION = "SMART"
"""The `venue` of a smart order's own execution record (its children have their venues')."""


def _plain(value: Decimal) -> str:
    """A figure without trailing zeros (and never "-0")."""
    return dec(value.normalize() + 0)


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else _plain(value)


def _ratio(part: Decimal, whole: Decimal) -> Decimal | None:
    return None if not whole else part / whole


def execution_out(row: models.OrderExecution) -> dict[str, Any]:
    filled = row.filled_quantity
    time_to_fill = None
    if filled and row.last_fill_at is not None:
        time_to_fill = Decimal((row.last_fill_at - row.accepted_at).total_seconds()).quantize(
            Decimal("0.000001")
        )
    return {
        "order_id": row.order_id,
        "account_id": row.account_id,
        "market": row.market,
        "venue": row.venue,
        "side": row.side,
        "quantity": _plain(row.quantity),
        "filled_quantity": _plain(filled),
        "average_price": _opt(row.average_price),
        "arrival_mid": _opt(row.arrival_mid),
        "arrival_slippage_bps": _opt(row.arrival_slippage_bps),
        "vwap": _opt(row.vwap),
        "vwap_slippage_bps": _opt(row.vwap_slippage_bps),
        "decision_price": _opt(row.decision_price),
        "implementation_shortfall_bps": _opt(row.implementation_shortfall_bps),
        "fill_ratio": _plain(filled / row.quantity) if row.quantity else "0",
        "fees": dec(row.fees),
        "time_to_fill_seconds": _opt(time_to_fill),
        "markouts_bps": {
            "1s": _opt(row.markout_1s_bps),
            "10s": _opt(row.markout_10s_bps),
            "60s": _opt(row.markout_60s_bps),
        },
        "accepted_at": rfc3339(row.accepted_at),
        "ended_at": None if row.ended_at is None else rfc3339(row.ended_at),
    }


def _key(row: models.OrderExecution, group_by: GroupBy) -> str | None:
    match group_by:
        case "venue":
            return row.venue
        case "market":
            return row.market
        case "account":
            return row.account_id
        case "session":
            return row.session
        case "day":
            return row.day


class _Group:
    """Running sums of one group: slippages weighted by filled notional, markouts by filled quantity."""

    def __init__(self) -> None:
        self.orders = 0
        self.filled_orders = 0
        self.quantity = Decimal(0)
        self.filled = Decimal(0)
        self.notional = Decimal(0)
        self.fees = Decimal(0)
        self.weighted = {name: [Decimal(0), Decimal(0)] for name in ("arrival", "vwap", "shortfall")}
        self.markouts = {name: [Decimal(0), Decimal(0)] for name in _HORIZONS}

    def add(self, row: models.OrderExecution) -> None:
        self.orders += 1
        self.quantity += row.quantity
        self.filled += row.filled_quantity
        self.notional += row.notional
        self.fees += row.fees
        if row.filled_quantity:
            self.filled_orders += 1
        for name, value in (
            ("arrival", row.arrival_slippage_bps),
            ("vwap", row.vwap_slippage_bps),
            ("shortfall", row.implementation_shortfall_bps),
        ):
            if value is not None and row.notional:
                self.weighted[name][0] += value * row.notional
                self.weighted[name][1] += row.notional
        for name, value in zip(
            _HORIZONS, (row.markout_1s_bps, row.markout_10s_bps, row.markout_60s_bps), strict=True
        ):
            if value is not None and row.filled_quantity:
                self.markouts[name][0] += value * row.filled_quantity
                self.markouts[name][1] += row.filled_quantity

    def out(self, key: str | None) -> dict[str, Any]:
        def mean(sums: list[Decimal]) -> str | None:
            value = _ratio(sums[0], sums[1])
            return None if value is None else _plain(value.quantize(_CENT, ROUND_HALF_EVEN))

        fill_ratio = _ratio(self.filled, self.quantity)
        return {
            "key": key,
            "orders": self.orders,
            "filled_orders": self.filled_orders,
            "fill_ratio": None if fill_ratio is None else _plain(fill_ratio),
            "notional": _plain(self.notional),
            "fees": dec(self.fees),
            "arrival_slippage_bps": mean(self.weighted["arrival"]),
            "vwap_slippage_bps": mean(self.weighted["vwap"]),
            "implementation_shortfall_bps": mean(self.weighted["shortfall"]),
            "markouts_bps": {name: mean(self.markouts[name]) for name in _HORIZONS},
        }


def group_executions(rows: Sequence[models.OrderExecution], group_by: GroupBy) -> list[dict[str, Any]]:
    groups: dict[str | None, _Group] = {}
    for row in rows:
        if row.venue == SMART_EXECUTION:  # counted through its children, where it executed
            continue
        key = _key(row, group_by)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        group.add(row)
    return [groups[key].out(key) for key in sorted(groups, key=lambda k: (k is None, k or ""))]


@router.get(
    "/orders/{order_id}/execution",
    summary="An order's execution analytics",
    description="Arrival mid and slippage, the market's VWAP over the order's life and the slippage "
    "against it, implementation shortfall against `decision_price`, fill ratio, fees, time to fill and "
    "markouts at 1 s / 10 s / 60 s after its fills (null until the horizon has passed); bps signed so "
    "that a cost is negative. 404 if unknown, 403 if another user's.",
)
async def order_execution(order_id: str, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    number = _order_id(order_id, gateway)
    await gateway.service.read_barrier()
    row = await gateway.service.store.call(queries.get_order_execution, str(number))
    if row is None:
        raise not_found(f"order {order_id} has no execution record")
    _check_owner(gateway, principal, row.account_id, number)
    return json_response(execution_out(row))


@router.get(
    "/analytics/execution",
    summary="Execution analytics, grouped",
    description="The caller's orders (of `account_id` and `market` if given, accepted in [`start`, "
    "`end`)) grouped by venue, market, account, session (a client order id's prefix before its first "
    "`-`, as trading sessions stamp their orders) or UTC day: orders, fill ratio, notional, fees, and "
    "slippages weighted by filled notional, markouts by filled quantity.",
)
async def execution_groups(
    principal: PrincipalDep,
    gateway: GatewayDep,
    group_by: GroupBy = "venue",
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    market: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[str | None, Query(max_length=64)] = None,
    end: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if account_id is not None:
        gateway.check_account(principal, account_id)
        accounts = [account_id]
    else:
        accounts = gateway.account_ids_of(principal)
    start_ns, end_ns = time_ns(start, "start"), time_ns(end, "end")
    start_at = None if start_ns is None else datetime.fromtimestamp(start_ns / 1e9, UTC)
    end_at = None if end_ns is None else datetime.fromtimestamp(end_ns / 1e9, UTC)
    await gateway.service.read_barrier()
    rows = await gateway.service.store.call(queries.list_order_executions, accounts, market, start_at, end_at)
    return json_response(page(group_executions(rows, group_by)) | {"group_by": group_by})
