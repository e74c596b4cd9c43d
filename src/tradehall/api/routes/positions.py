"""Positions (live, from the engine, valued at the mark) and the account's fills (read models)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from tradehall.api import convert
from tradehall.api.errors import ApiError
from tradehall.api.gateway import CorrelationDep, GatewayDep, PrincipalDep, TraderDep
from tradehall.api.routes.common import ERRORS, Cursor, Limit, json_response, page
from tradehall.api.routes.orders import place_order
from tradehall.api.schemas import ClosePosition, FillsPage, OrderCreate, OrderOut, PositionsPage
from tradehall.domain.enums import MarketKind
from tradehall.domain.errors import Code
from tradehall.domain.fixedpoint import decimal_of, decimal_str
from tradehall.engine import views
from tradehall.store import queries

router = APIRouter(tags=["positions"], responses=ERRORS)


@router.get(
    "/positions",
    response_model=PositionsPage,
    summary="List positions",
    description="Open positions of the caller's accounts (or of `account_id`): side, quantity, average "
    "entry, mark, unrealised and realised P&L, and a perp's liquidation price. Through a cluster gateway: "
    "the positions of every shard.",
)
async def list_positions(
    principal: PrincipalDep,
    gateway: GatewayDep,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if account_id is not None:
        gateway.check_account(principal, account_id)
        accounts = [account_id]
    else:
        accounts = gateway.account_ids_of(principal)
    items = [  # a cluster gateway: every shard's positions (a market is in one shard)
        convert.position_dict(position)
        for account in accounts
        for engine in gateway.engines()
        for position in views.positions(engine, account)
    ]
    return json_response(page(items))


@router.post(
    "/positions/{market}/close",
    status_code=201,
    response_model=OrderOut,
    summary="Close a position",
    description="Places an immediate-or-cancel market order for the whole position of `account_id` in "
    "`market` (reduce-only on perps and binaries) and answers that order. 409 `conflict` if there is "
    "no open position. Needs the `trade` scope.",
)
async def close_position(
    market: str,
    body: ClosePosition,
    principal: TraderDep,
    gateway: GatewayDep,
    correlation_id: CorrelationDep,
) -> Response:
    gateway.check_account(principal, body.account_id)
    gateway.spec(market)
    position = views.position(gateway.engine, body.account_id, market)
    if position is None or position.quantity == 0:
        raise ApiError(Code.CONFLICT, f"no open position in {market}")
    spec = position.spec
    quantity = decimal_str(decimal_of(abs(position.quantity), spec.lot_size))
    side = "sell" if position.quantity > 0 else "buy"
    order = OrderCreate(
        account_id=body.account_id,
        market=market,
        side=side,
        type="market",
        quantity=quantity,
        time_in_force="ioc",
        reduce_only=spec.kind is not MarketKind.SPOT,
    )
    data, status = await place_order(gateway, principal, order, correlation_id)
    return json_response(data, status)


@router.get(
    "/trades",
    response_model=FillsPage,
    summary="List your fills",
    description="The fills of the caller's accounts (of one `account_id` and `market` if given), newest "
    "first, with cursor pagination: price, quantity, fee, maker or taker, gross realised P&L; fills of a "
    "liquidation or an assessment close-out say so in `origin`.",
)
async def list_fills(
    principal: PrincipalDep,
    gateway: GatewayDep,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    market: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    if account_id is not None:
        gateway.check_account(principal, account_id)
        accounts = [account_id]
    else:
        accounts = gateway.account_ids_of(principal)
    await gateway.service.read_barrier()
    result = await gateway.service.store.call(
        queries.list_fills, accounts, market=market, limit=limit, cursor=cursor
    )
    return json_response(page([convert.fill_from_row(row) for row in result.items], result.next_cursor))
