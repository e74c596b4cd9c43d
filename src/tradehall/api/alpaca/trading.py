"""Alpaca's Trading API v2 under `/alpaca/v2`: account, clock, assets, orders, positions, activities and
portfolio history, answered from the native API's own functions and the engine's views.

The surface trades one account per caller (see `context`); orders of other accounts are not found here.
A replace (`PATCH`) amends the order in place: it keeps its id, and the answer is the amended order.
This module is over 400 lines because it is one resource table, Alpaca's, kept in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from tradehall.api import convert
from tradehall.api.alpaca.context import AlpacaSurface, Asset, bad_request, invalid
from tradehall.api.alpaca.errors import AlpacaRoute
from tradehall.api.alpaca.ids import order_number
from tradehall.api.alpaca.orders import AlpacaOrderIn, AlpacaReplaceIn, decimal_field, submit_order
from tradehall.api.alpaca.shapes import (
    OPEN_STATUSES,
    account_out,
    asset_out,
    order_out,
    position_out,
)
from tradehall.api.auth import TRADE, Principal
from tradehall.api.errors import ApiError, not_found
from tradehall.api.gateway import correlation_id
from tradehall.api.routes import orders as native_orders
from tradehall.api.routes.common import json_response
from tradehall.api.routes.orders import engine_order_out, place_order
from tradehall.api.schemas import OrderAmend, OrderCreate
from tradehall.domain.errors import Code
from tradehall.domain.fixedpoint import amount_of, average_of, decimal_of, decimal_str
from tradehall.engine import views
from tradehall.store import models, queries

router = APIRouter(prefix="/alpaca/v2", route_class=AlpacaRoute, tags=["alpaca"], include_in_schema=False)


async def surface_of(request: Request) -> AlpacaSurface:
    surface: AlpacaSurface = request.app.state.alpaca
    return surface


SurfaceDep = Annotated[AlpacaSurface, Depends(surface_of)]


async def caller(request: Request, surface: SurfaceDep) -> Principal:
    return await surface.principal(request)


CallerDep = Annotated[Principal, Depends(caller)]
CorrelationDep = Annotated[str, Depends(correlation_id)]


def _native(response: Response) -> Any:
    """The body of a native route's answer (the surface renames what the native API says)."""
    return orjson.loads(bytes(response.body))


def _now(surface: AlpacaSurface) -> datetime:
    return datetime.fromtimestamp(surface.gateway.service.runner.clock.now_ns() / 1e9, UTC)


def _rfc3339(moment: datetime) -> str:
    return convert.rfc3339(moment)


def _time(value: str | None, what: str) -> datetime | None:
    """An RFC 3339 time or a date (`2026-01-02`), as Alpaca accepts them; 400 otherwise."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"Invalid format for parameter {what}: {value!r} is not RFC 3339") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _alpaca_order(surface: AlpacaSurface, native: dict[str, Any]) -> dict[str, Any] | None:
    asset = surface.assets.of_market(surface.gateway, native["market"])
    if asset is None:
        return None
    return order_out(native, asset.symbol, asset.asset_id)


# ---- account, clock, assets -------------------------------------------------------------------------


@router.get("/account", summary="Alpaca: the account")
async def get_account(surface: SurfaceDep, principal: CallerDep) -> Response:
    gateway = surface.gateway
    account_id = await surface.account_id(principal)
    view = gateway.account(principal, account_id)
    row = await gateway.service.store.call(queries.get_account, account_id)
    native = gateway.account_dict(view, row.peak_equity if row is not None else None)
    holdings = Decimal(native["equity"]) - Decimal(native["balance"])
    created = _rfc3339(row.created_at) if row is not None else _rfc3339(_now(surface))
    return json_response(account_out(native, holdings, created))


@router.get("/clock", summary="Alpaca: the market clock (crypto trades around the clock)")
async def get_clock(surface: SurfaceDep, principal: CallerDep) -> Response:
    now = _now(surface)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return json_response(
        {
            "timestamp": _rfc3339(now),
            "is_open": True,
            "next_open": _rfc3339(day + timedelta(days=1)),
            "next_close": _rfc3339(day + timedelta(days=1)),
        }
    )


@router.get("/assets", summary="Alpaca: the crypto assets (tradehall's spot markets)")
async def list_assets(
    surface: SurfaceDep,
    principal: CallerDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    asset_class: Annotated[str | None, Query(max_length=16)] = None,
    exchange: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    gateway = surface.gateway
    items = []
    if asset_class in (None, "", "crypto"):
        for asset in surface.assets.all(gateway):
            shown = asset_out(asset, gateway.market(asset.market))
            if status in (None, "") or shown["status"] == status:
                items.append(shown)
    return json_response(items)


@router.get("/assets/{symbol_or_id:path}", summary="Alpaca: one asset")
async def get_asset(symbol_or_id: str, surface: SurfaceDep, principal: CallerDep) -> Response:
    asset = surface.assets.get(surface.gateway, symbol_or_id)
    return json_response(asset_out(asset, surface.gateway.market(asset.market)))


# ---- orders -------------------------------------------------------------------------------------------


@router.post("/orders", summary="Alpaca: place an order")
async def create_order(
    body: AlpacaOrderIn, surface: SurfaceDep, principal: CallerDep, correlation: CorrelationDep
) -> Response:
    order, status = await submit_order(surface, principal, body, correlation)
    return json_response(order, status)


def _orders_query(
    session: Session,
    account_id: str,
    statuses: frozenset[str] | None,
    after: datetime | None,
    until: datetime | None,
    markets: list[str] | None,
    side: str | None,
    ascending: bool,
    limit: int,
) -> list[tuple[models.Order, list[models.Fill]]]:
    conditions = [models.Order.account_id == account_id]
    if statuses is not None:
        conditions.append(models.Order.status.in_(statuses))
    if after is not None:
        conditions.append(models.Order.created_at > after)
    if until is not None:
        conditions.append(models.Order.created_at < until)
    if markets is not None:
        conditions.append(models.Order.market.in_(markets))
    if side is not None:
        conditions.append(models.Order.side == side)
    order = (models.Order.created_at, models.Order.id)
    query = select(models.Order).where(*conditions)
    query = query.order_by(*(order if ascending else (column.desc() for column in order))).limit(limit)
    rows = list(session.scalars(query))
    return [(row, queries.list_order_fills(session, row.id)) for row in rows]


@router.get("/orders", summary="Alpaca: list orders")
async def list_orders(
    surface: SurfaceDep,
    principal: CallerDep,
    status: Literal["open", "closed", "all"] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    direction: Literal["asc", "desc"] = "desc",
    nested: bool = False,
    symbols: Annotated[str | None, Query(max_length=4096)] = None,
    side: Literal["buy", "sell"] | None = None,
) -> Response:
    gateway = surface.gateway
    account_id = await surface.account_id(principal)
    after_at, until_at = _time(after, "after"), _time(until, "until")
    markets: list[str] | None = None
    if symbols:
        found = [surface.assets.find(gateway, name.strip()) for name in symbols.split(",") if name.strip()]
        markets = [asset.market for asset in found if asset is not None]
    statuses = {
        "open": frozenset({"open", "partially_filled", "pending_trigger"}),
        "closed": frozenset({"filled", "cancelled", "rejected", "expired"}),
        "all": None,
    }[status]
    await gateway.service.read_barrier()
    rows = await gateway.service.store.call(
        _orders_query, account_id, statuses, after_at, until_at, markets, side, direction == "asc", limit
    )
    items = []
    for row, fills in rows:
        if nested and row.parent_order_id is not None:
            continue  # shown inside its parent's `legs`
        live = views.order(gateway.engine, int(row.id)) if row.status in OPEN_STATUSES else None
        if nested and row.order_class not in (None, "simple"):
            native = await native_orders.order_out(gateway, principal, int(row.id))
        elif live is not None:
            native = await engine_order_out(gateway, live)
        else:
            native = convert.order_from_row(row, views.spec(gateway.engine, row.market), fills)
        shown = _alpaca_order(surface, native)
        if shown is not None:
            items.append(shown)
    return json_response(items)


async def _native_order(surface: AlpacaSurface, principal: Principal, order_ref: str) -> dict[str, Any]:
    """The caller's order named by its UUID (or tradehall id); 404 `40410000` if it is not this account's."""
    number = order_number(order_ref)
    if number is None and order_ref.isascii() and order_ref.isdigit() and len(order_ref) <= 18:
        number = int(order_ref)
    if number is None:
        raise not_found("order not found")
    account_id = await surface.account_id(principal)
    try:
        native = await native_orders.order_out(surface.gateway, principal, number)
    except ApiError as error:
        if error.code is Code.FORBIDDEN:
            raise not_found("order not found") from None
        raise
    if native["account_id"] != account_id:
        raise not_found("order not found")
    return native


@router.get("/orders:by_client_order_id", summary="Alpaca: an order by its client order id")
async def get_order_by_client_id(
    surface: SurfaceDep,
    principal: CallerDep,
    client_order_id: Annotated[str, Query(min_length=1, max_length=128)],
) -> Response:
    gateway = surface.gateway
    account_id = await surface.account_id(principal)
    number = views.order_id_for(gateway.engine, account_id, client_order_id)
    if number is None:
        await gateway.service.read_barrier()
        row = await gateway.service.store.call(queries.find_order_by_client_id, account_id, client_order_id)
        if row is not None:
            number = int(row.id)
    if number is None:
        number = order_number(client_order_id)  # an order placed without one shows its id there
    if number is None:
        raise not_found("order not found")
    native = await _native_order(surface, principal, str(number))
    shown = _alpaca_order(surface, native)
    if shown is None or (native["client_order_id"] or shown["id"]) != client_order_id:
        raise not_found("order not found")
    return json_response(shown)


@router.get("/orders/{order_id}", summary="Alpaca: one order")
async def get_order(order_id: str, surface: SurfaceDep, principal: CallerDep) -> Response:
    shown = _alpaca_order(surface, await _native_order(surface, principal, order_id))
    if shown is None:
        raise not_found("order not found")
    return json_response(shown)


@router.patch("/orders/{order_id}", summary="Alpaca: replace an order (amended in place)")
async def replace_order(
    order_id: str,
    body: AlpacaReplaceIn,
    surface: SurfaceDep,
    principal: CallerDep,
    correlation: CorrelationDep,
) -> Response:
    principal.require(TRADE)
    native = await _native_order(surface, principal, order_id)
    trail = decimal_field(body.trail, "trail")
    if trail is not None and native["type"] != "trailing_stop":
        raise invalid("trail is only for trailing_stop orders")
    by_percent = native.get("trail_percent") is not None
    price = decimal_field(body.limit_price, "limit_price")
    if price is not None and native["type"] not in ("limit", "stop_limit"):
        raise invalid(f"limit_price cannot be set on a {native['type']} order")
    amend = OrderAmend.model_construct(
        price=price,
        quantity=decimal_field(body.qty, "qty"),
        stop_price=decimal_field(body.stop_price, "stop_price"),
        trail_percent=trail if by_percent else None,
        trail_price=None if by_percent else trail,
    )
    answer = await native_orders.amend_order(native["id"], amend, principal, surface.gateway, correlation)
    shown = _alpaca_order(surface, _native(answer))
    assert shown is not None
    return json_response(shown)


@router.delete("/orders/{order_id}", status_code=204, summary="Alpaca: cancel an order")
async def cancel_order(
    order_id: str, surface: SurfaceDep, principal: CallerDep, correlation: CorrelationDep
) -> Response:
    principal.require(TRADE)
    native = await _native_order(surface, principal, order_id)
    try:
        await native_orders.cancel_order(native["id"], principal, surface.gateway, correlation)
    except ApiError as error:
        if error.code is Code.CONFLICT:
            raise invalid(f"order is not cancelable: it is already {native['status']}") from None
        raise
    return Response(status_code=204)


@router.delete("/orders", status_code=207, summary="Alpaca: cancel every open order")
async def cancel_orders(surface: SurfaceDep, principal: CallerDep, correlation: CorrelationDep) -> Response:
    principal.require(TRADE)
    account_id = await surface.account_id(principal)
    answer = _native(
        await native_orders.cancel_all(principal, surface.gateway, correlation, account_id=account_id)
    )
    items = []
    for native in answer["items"]:
        shown = _alpaca_order(surface, native)
        if shown is not None:
            items.append({"id": shown["id"], "status": 200, "body": shown})
    return json_response(items, 207)


# ---- positions ----------------------------------------------------------------------------------------


def _holdings(surface: AlpacaSurface, account_id: str) -> list[tuple[Asset, dict[str, Any]]]:
    """The account's spot holdings as positions: one per base currency held (the asset quoted in the
    account's currency if there is one, else the first by symbol)."""
    gateway = surface.gateway
    engine = gateway.engine
    account = views.account(engine, account_id)
    if account is None:  # pragma: no cover - the caller's account exists
        return []
    chosen: dict[str, Asset] = {}
    for asset in surface.assets.all(gateway):
        base = asset.spec.base
        current = chosen.get(base)
        if current is None or (
            current.spec.quote != account.currency and asset.spec.quote == account.currency
        ):
            chosen[base] = asset
    found = []
    for base, asset in sorted(chosen.items(), key=lambda item: item[1].symbol):
        balance = account.balance(base)
        if balance is None or balance.total <= 0:
            continue
        places = views.currency_places(engine, base)
        quantity = amount_of(balance.total, places).normalize()
        available = amount_of(balance.total - balance.held, places).normalize()
        spec = asset.spec
        position = views.position(engine, account_id, asset.market)
        average: Decimal | None = None
        if position is not None and position.quantity > 0:
            average = average_of(
                position.cost,
                position.cost_remainder,
                position.cost_denominator,
                position.quantity,
                spec.tick_size * spec.lot_size,
                spec.lot_size,
            )
            average = average.quantize(spec.tick_size * Decimal("0.0001")).normalize()
        market = gateway.market(asset.market)
        price = None if market.mark_price is None else decimal_of(market.mark_price, spec.tick_size)
        found.append((asset, position_out(account_id, asset, quantity, available, average, price)))
    return found


@router.get("/positions", summary="Alpaca: open positions (spot holdings)")
async def list_positions(surface: SurfaceDep, principal: CallerDep) -> Response:
    account_id = await surface.account_id(principal)
    return json_response([shown for _, shown in _holdings(surface, account_id)])


def _position(surface: AlpacaSurface, account_id: str, name: str) -> tuple[Asset, dict[str, Any]]:
    asset = surface.assets.find(surface.gateway, name)
    for held, shown in _holdings(surface, account_id):
        if asset is not None and held.spec.base == asset.spec.base:
            return held, shown
    raise not_found("position does not exist")


@router.get("/positions/{symbol_or_asset_id:path}", summary="Alpaca: one position")
async def get_position(symbol_or_asset_id: str, surface: SurfaceDep, principal: CallerDep) -> Response:
    account_id = await surface.account_id(principal)
    return json_response(_position(surface, account_id, symbol_or_asset_id)[1])


async def _close(
    surface: AlpacaSurface,
    principal: Principal,
    account_id: str,
    asset: Asset,
    held: str,
    correlation: str,
    qty: str | None = None,
    percentage: str | None = None,
) -> dict[str, Any]:
    """A market sell of the holding (or `qty` of it, or `percentage` %, floored to the lot)."""
    spec = asset.spec
    quantity = Decimal(qty if qty is not None else held)
    if percentage is not None:
        if Decimal(percentage) > 100:
            raise invalid("percentage must be at most 100")
        quantity = Decimal(held) * Decimal(percentage) / 100
    quantity = (quantity / spec.lot_size).to_integral_value(ROUND_DOWN) * spec.lot_size
    if quantity <= 0:
        raise invalid("the quantity to close is less than one lot")
    create = OrderCreate.model_construct(
        account_id=account_id,
        market=asset.market,
        side="sell",
        type="market",
        quantity=decimal_str(quantity.normalize()),
        time_in_force="ioc",
    )
    native, _ = await place_order(surface.gateway, principal, create, correlation, transport="alpaca")
    return order_out(native, asset.symbol, asset.asset_id)


@router.delete("/positions/{symbol_or_asset_id:path}", summary="Alpaca: close a position")
async def close_position(
    symbol_or_asset_id: str,
    surface: SurfaceDep,
    principal: CallerDep,
    correlation: CorrelationDep,
    qty: Annotated[str | None, Query(max_length=40)] = None,
    percentage: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    principal.require(TRADE)
    if qty is not None and percentage is not None:
        raise invalid("only one of qty or percentage may be given")
    account_id = await surface.account_id(principal)
    asset, shown = _position(surface, account_id, symbol_or_asset_id)
    order = await _close(
        surface,
        principal,
        account_id,
        asset,
        shown["qty"],
        correlation,
        decimal_field(qty, "qty"),
        decimal_field(percentage, "percentage"),
    )
    return json_response(order)


@router.delete("/positions", status_code=207, summary="Alpaca: close every position")
async def close_positions(
    surface: SurfaceDep, principal: CallerDep, correlation: CorrelationDep, cancel_orders: bool = False
) -> Response:
    principal.require(TRADE)
    account_id = await surface.account_id(principal)
    if cancel_orders:
        await native_orders.cancel_all(principal, surface.gateway, correlation, account_id=account_id)
    items = []
    for asset, shown in _holdings(surface, account_id):
        try:
            order = await _close(surface, principal, account_id, asset, shown["qty"], correlation)
        except ApiError as refused:
            items.append(
                {"symbol": asset.symbol, "status": 422, "body": {"code": 42210000, "message": refused.detail}}
            )
            continue
        items.append({"symbol": asset.symbol, "order_id": order["id"], "status": 200, "body": order})
    return json_response(items, 207)
