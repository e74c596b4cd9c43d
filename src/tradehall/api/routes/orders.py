"""Orders: placement, cancel, amend; open orders from the engine, history from the read models.

Over 400 lines on purpose: every order route (place, smart parents, amend, cancel, cancel-all, open
orders and history) shares one set of ownership and idempotency checks kept here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from tradehall.api import convert
from tradehall.api.auth import TRADE, Principal
from tradehall.api.errors import ApiError, forbidden, not_found
from tradehall.api.gateway import CorrelationDep, Gateway, GatewayDep, PrincipalDep, TraderDep
from tradehall.api.metrics import ORDER_LATENCY, ORDERS_TOTAL, labelled
from tradehall.api.routes.common import ERRORS, Cursor, Limit, json_response, order_number, page, time_ns
from tradehall.api.schemas import (
    CancelAllOut,
    OrderAmend,
    OrderCreate,
    OrderOut,
    OrdersPage,
    StopLossIn,
    TakeProfitIn,
)
from tradehall.domain.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder, RouteOrder
from tradehall.domain.enums import OrderClass, OrderSide, OrderType, StopTrigger, TimeInForce
from tradehall.domain.errors import Code
from tradehall.domain.events import AnyEvent, OrderAccepted, OrderCancelled, OrderRejected, OrderRouted
from tradehall.domain.market import SMART_VENUE, MarketSpec
from tradehall.engine import views
from tradehall.engine.views import OrderView
from tradehall.store import models, queries

router = APIRouter(tags=["orders"], responses=ERRORS)
log = structlog.get_logger(__name__)


def _expire_ns(value: str | None) -> int | None:
    return time_ns(value, "expire_at", Code.INVALID_ORDER)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _exits(body: OrderCreate) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """(take-profit limit, stop-loss stop, stop-loss limit) from Alpaca's objects or plain strings."""
    take = body.take_profit
    stop = body.stop_loss
    take_price = take.limit_price if isinstance(take, TakeProfitIn) else take
    stop_price = stop.stop_price if isinstance(stop, StopLossIn) else stop
    stop_limit = stop.limit_price if isinstance(stop, StopLossIn) else None
    return _decimal(take_price), _decimal(stop_price), _decimal(stop_limit)


def place_order_command(body: OrderCreate, correlation_id: str) -> PlaceOrder:
    take_profit, stop_loss, stop_loss_limit = _exits(body)
    return PlaceOrder(
        account_id=body.account_id,
        market=body.market,
        side=OrderSide(body.side),
        quantity=Decimal(body.quantity),
        type=OrderType(body.type),
        price=_decimal(body.price),
        stop_price=_decimal(body.stop_price),
        time_in_force=TimeInForce(body.time_in_force),
        expire_at=_expire_ns(body.expire_at),
        post_only=body.post_only,
        reduce_only=body.reduce_only,
        client_order_id=body.client_order_id,
        take_profit=take_profit,
        stop_loss=stop_loss,
        stop_loss_limit=stop_loss_limit,
        order_class=None if body.order_class is None else OrderClass(body.order_class),
        trigger=None if body.trigger is None else StopTrigger(body.trigger),
        trail_percent=_decimal(body.trail_percent),
        trail_price=_decimal(body.trail_price),
        activation_price=_decimal(body.activation_price),
        correlation_id=correlation_id,
    )


async def place_order(
    gateway: Gateway, principal: Principal, body: OrderCreate, correlation_id: str, transport: str = "http"
) -> tuple[dict[str, Any], int]:
    """Places an order; returns the order and 201 (new) or 200 (a repeated client_order_id).

    Every transport comes here (FastAPI route, fast path, WebSocket, position close): the `trade`
    scope is checked here too."""
    started = time.perf_counter()
    principal.require(TRADE)
    structlog.contextvars.bind_contextvars(account=body.account_id)
    if gateway.cluster is not None:  # the replica of the shard that matches this order answers it
        if body.venue == SMART_VENUE:
            gateway.read_instrument(body.market)
        else:
            gateway.read_market(body.market)
    gateway.check_account(principal, body.account_id)
    if body.venue == SMART_VENUE:
        return await _place_smart_order(gateway, principal, body, correlation_id)
    spec = gateway.spec(body.market)
    command = place_order_command(body, correlation_id)
    result = await gateway.submit(command)
    events = result.events
    if not events:
        ORDERS_TOTAL.labels(market=body.market, result="repeated").inc()
        assert body.client_order_id is not None
        order_id = views.order_id_for(gateway.engine, body.account_id, body.client_order_id)
        if order_id is None:  # pragma: no cover - the engine only answers nothing for a repeat
            raise ApiError(Code.INTERNAL, "order not found after an idempotent repeat")
        return await order_out(gateway, principal, order_id), 200
    first = events[0]
    if isinstance(first, OrderRejected):
        ORDERS_TOTAL.labels(market=body.market, result=first.code.value).inc()
        log.info("order_refused", market=body.market, code=first.code.value, reason=first.reason)
        # `reject_reason`: the end reason that names the refusal, else its code
        reject_reason = first.reject_reason.value if first.reject_reason is not None else first.code.value
        raise ApiError(first.code, first.reason, fields={"reject_reason": reject_reason})
    assert isinstance(first, OrderAccepted)
    order = convert.order_from_events(events, first.order_id, spec, gateway.quote_places(spec))
    assert order is not None
    labelled(ORDERS_TOTAL, body.market, "accepted").inc()
    labelled(ORDER_LATENCY, transport).observe(time.perf_counter() - started)
    return order, 201


_NOT_SMART = (
    "stop_price",
    "expire_at",
    "take_profit",
    "stop_loss",
    "trigger",
    "trail_percent",
    "trail_price",
)


async def _place_smart_order(
    gateway: Gateway, principal: Principal, body: OrderCreate, correlation_id: str
) -> tuple[dict[str, Any], int]:
    """A smart order: the engine routes it (`RouteOrder`); the answer is the parent with its children,
    read once the read models have the command."""
    if body.post_only or body.reduce_only or body.order_class not in (None, "simple"):
        raise ApiError(Code.INVALID_ORDER, "a smart order is a plain limit or market order")
    for name in _NOT_SMART:
        if getattr(body, name) is not None:
            raise ApiError(Code.INVALID_ORDER, f"a smart order has no {name}")
    command = RouteOrder(
        account_id=body.account_id,
        instrument=body.market,
        side=OrderSide(body.side),
        quantity=Decimal(body.quantity),
        type=OrderType(body.type),
        price=_decimal(body.price),
        time_in_force=TimeInForce(body.time_in_force),
        client_order_id=body.client_order_id,
        decision_price=_decimal(body.decision_price),
        correlation_id=correlation_id,
    )
    result = await gateway.execute(command)
    if not result.events:  # a repeated client_order_id with the same parameters: the original
        assert body.client_order_id is not None
        order_id = views.order_id_for(gateway.engine, body.account_id, body.client_order_id)
        if order_id is None:  # pragma: no cover - the engine only answers nothing for a repeat
            raise ApiError(Code.INTERNAL, "order not found after an idempotent repeat")
        ORDERS_TOTAL.labels(market=body.market, result="repeated").inc()
        return await order_out(gateway, principal, order_id), 200
    routed = next(event for event in result.events if isinstance(event, OrderRouted))
    ORDERS_TOTAL.labels(market=body.market, result="accepted").inc()
    return await order_out(gateway, principal, routed.order_id), 201


def _after_cancel(order: OrderView, events: Sequence[AnyEvent]) -> OrderView:
    """The order as the cancel command's own events left it (a closed order leaves the engine)."""
    for event in events:
        if isinstance(event, OrderCancelled) and event.order_id == order.order_id:
            return order.cancelled(event)
    return order


def _order_with_fills(session: Session, order_id: str) -> tuple[models.Order | None, list[models.Fill]]:
    row = queries.get_order(session, order_id)
    if row is None:
        return None, []
    return row, queries.list_order_fills(session, order_id)


async def _fills_of(gateway: Gateway, order_id: int) -> list[dict[str, Any]]:
    await gateway.service.read_barrier()
    rows = await gateway.service.store.call(queries.list_order_fills, str(order_id))
    return [convert.fill_from_row(row) for row in rows]


def _spec_or_none(gateway: Gateway, symbol: str) -> MarketSpec | None:
    return views.spec(gateway.engine, symbol)


async def engine_order_out(gateway: Gateway, order: OrderView) -> dict[str, Any]:
    spec = gateway.spec(order.market)
    data = convert.order_from_engine(order, spec, gateway.quote_places(spec))
    if order.filled:
        data["fills"] = await _fills_of(gateway, order.order_id)
    if order.legs:
        data["legs"] = await _legs_out(gateway, order.order_id, order.legs)
    return data


async def _legs_out(gateway: Gateway, parent_id: int, leg_ids: Sequence[int] | None) -> list[dict[str, Any]]:
    """A contingent order's exits: open ones as the engine has them, ended ones from the read models
    (`leg_ids` None: the parent has ended too, so the read models name its exits)."""
    store = gateway.service.store
    if leg_ids is None:
        await gateway.service.read_barrier()
        rows = await store.call(queries.list_order_legs, str(parent_id))
        leg_ids = [order_id for row in rows if (order_id := order_number(row.id)) is not None]
    legs: list[dict[str, Any]] = []
    for leg_id in leg_ids:
        view = views.order(gateway.engine, leg_id)
        if view is not None:
            legs.append(await engine_order_out(gateway, view))
            continue
        await gateway.service.read_barrier()
        row, fills = await store.call(_order_with_fills, str(leg_id))
        if row is not None:
            legs.append(convert.order_from_row(row, _spec_or_none(gateway, row.market), fills))
    return legs


def _check_owner(gateway: Gateway, principal: Principal, account_id: str, order_id: object) -> None:
    principal.check_account(account_id)
    owner = views.account_owner(gateway.engine, account_id)
    if principal.is_admin:
        return
    if owner is None or owner != principal.user_id:
        raise forbidden(f"order {order_id} belongs to another user")


async def order_out(gateway: Gateway, principal: Principal, order_id: int) -> dict[str, Any]:
    open_order = views.order(gateway.engine, order_id)
    if open_order is not None:
        _check_owner(gateway, principal, open_order.account_id, order_id)
        return await engine_order_out(gateway, open_order)
    await gateway.service.read_barrier()
    row, fills = await gateway.service.store.call(_order_with_fills, str(order_id))
    if row is None:
        raise not_found(f"order {order_id} not found")
    _check_owner(gateway, principal, row.account_id, order_id)
    data = convert.order_from_row(row, _spec_or_none(gateway, row.market), fills)
    if row.order_class not in (None, "simple"):
        data["legs"] = await _legs_out(gateway, order_id, None)
    if row.venue == SMART_VENUE:
        data["venue"] = SMART_VENUE
        data["decision_price"] = None if row.decision_price is None else convert.dec(row.decision_price)
        data["children"] = await _legs_out(gateway, order_id, None)
    return data


def _order_id(value: str, gateway: Gateway) -> int:
    """Every path id goes through here: an id that is not one is an order that does not exist. In a
    cluster, the request then reads the replica of the shard that gave the id."""
    number = order_number(value)
    if number is None:
        raise not_found(f"order {value!r} not found")
    gateway.read_order(number)
    return number


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderOut,
    responses={200: {"model": OrderOut, "description": "A repeated `client_order_id`: the original order"}},
    summary="Place an order",
    description="A market, limit, stop or stop-limit order; 201 with the order as it stands after "
    "matching (its fills included). `side` is `buy`/`sell`, also `long`/`short` on perps and "
    "`yes`/`no` on binary markets. A repeated `client_order_id` answers the original order (200), or "
    "409 `conflict` if its parameters differ. A stop already through its trigger, a post-only order "
    "that would take liquidity or a side that does not fit the market is 422 `invalid_order`; risk "
    "refusals are 422 with their own code (`insufficient_balance`, ...). Needs the `trade` scope.",
)
async def create_order(
    body: OrderCreate, principal: TraderDep, gateway: GatewayDep, correlation_id: CorrelationDep
) -> Response:
    order, status = await place_order(gateway, principal, body, correlation_id)
    return json_response(order, status)


@router.get(
    "/orders/{order_id}",
    response_model=OrderOut,
    summary="Get an order",
    description="One of the caller's orders, open or closed, with its fills oldest first and, if it "
    "ended unfilled, its `cancel_reason` or `reject_reason`. 404 if unknown, 403 if another user's.",
)
async def get_order(order_id: str, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    return json_response(await order_out(gateway, principal, _order_id(order_id, gateway)))


async def _owned_engine_order(gateway: Gateway, principal: Principal, order_id: int) -> OrderView:
    """The open order, if the caller owns it; 403/404/409 like the contract says otherwise."""
    order = views.order(gateway.engine, order_id)
    if order is not None:
        _check_owner(gateway, principal, order.account_id, order_id)
        return order
    await gateway.service.read_barrier()
    row = await gateway.service.store.call(queries.get_order, str(order_id))
    if row is None:
        raise not_found(f"order {order_id} not found")
    _check_owner(gateway, principal, row.account_id, order_id)
    raise ApiError(Code.CONFLICT, f"order {order_id} is already {row.status}")


@router.delete(
    "/orders/{order_id}",
    response_model=OrderOut,
    summary="Cancel an order",
    description="Cancels an open or untriggered order and answers it (`cancelled`, `cancel_reason` "
    "`user`); 409 `conflict` if it has already ended, 404 if unknown. Needs the `trade` scope.",
)
async def cancel_order(
    order_id: str, principal: TraderDep, gateway: GatewayDep, correlation_id: CorrelationDep
) -> Response:
    return json_response(await cancel_order_data(order_id, principal, gateway, correlation_id))


async def cancel_order_data(
    order_id: str, principal: Principal, gateway: Gateway, correlation_id: str
) -> dict[str, Any]:
    """`DELETE /orders/{id}`'s answer as a dict: the WebSocket's `cancel` encodes it into its reply."""
    principal.require(TRADE)  # also called directly by the fast path and the WebSocket
    number = _order_id(order_id, gateway)
    route = views.route(gateway.engine, number)
    if route is not None and views.order(gateway.engine, number) is None:  # a smart order: its children
        _check_owner(gateway, principal, route.account_id, number)
        await gateway.execute(
            CancelOrder(order_id=number, account_id=route.account_id, correlation_id=correlation_id)
        )
        return await order_out(gateway, principal, number)
    order = await _owned_engine_order(gateway, principal, number)
    result = await gateway.execute(
        CancelOrder(order_id=number, account_id=order.account_id, correlation_id=correlation_id)
    )
    return await engine_order_out(gateway, _after_cancel(order, result.events))


@router.patch(
    "/orders/{order_id}",
    response_model=OrderOut,
    summary="Amend an order",
    description="`quantity` is the new total (filled included): down keeps priority, up loses it, at or "
    "below the filled quantity the order closes. A new `price` loses priority and trades at once if it "
    "crosses. `stop_price` (and a stop-limit's `price`) moves an untriggered stop; `trail_percent` or "
    "`trail_price` re-trails an untriggered trailing stop. Needs the `trade` scope.",
)
async def amend_order(
    order_id: str,
    body: OrderAmend,
    principal: TraderDep,
    gateway: GatewayDep,
    correlation_id: CorrelationDep,
) -> Response:
    number = _order_id(order_id, gateway)
    order = await _owned_engine_order(gateway, principal, number)
    await gateway.execute(
        AmendOrder(
            order_id=number,
            account_id=order.account_id,
            price=_decimal(body.price),
            quantity=_decimal(body.quantity),
            stop_price=_decimal(body.stop_price),
            trail_percent=_decimal(body.trail_percent),
            trail_price=_decimal(body.trail_price),
            correlation_id=correlation_id,
        )
    )
    # an amend that loses priority re-creates the engine's order object; read the current one
    current = views.order(gateway.engine, number)
    if current is not None:
        return json_response(await engine_order_out(gateway, current))
    return json_response(await order_out(gateway, principal, number))


@router.delete(
    "/orders",
    response_model=CancelAllOut,
    summary="Cancel all orders",
    description="Cancels every open order of `account_id`, of one `market` if given, and answers the "
    "cancelled orders. Needs the `trade` scope.",
)
async def cancel_all(
    principal: TraderDep,
    gateway: GatewayDep,
    correlation_id: CorrelationDep,
    account_id: Annotated[str, Query(max_length=64)],
    market: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    gateway.check_account(principal, account_id)
    if market is not None:
        gateway.spec(market)
    targets = views.open_orders(gateway.engine, {account_id}, market)
    result = await gateway.execute(
        CancelAll(account_id=account_id, market=market, correlation_id=correlation_id)
    )
    items = [await engine_order_out(gateway, _after_cancel(order, result.events)) for order in targets]
    return json_response(page(items))


def _orders_page(
    session: Session,
    accounts: list[str],
    market: str | None,
    status: Literal["open", "closed", "all"],
    limit: int,
    cursor: str | None,
) -> tuple[list[tuple[models.Order, list[models.Fill]]], str | None]:
    result = queries.list_orders(session, accounts, market=market, status=status, limit=limit, cursor=cursor)
    ids = [row.id for row in result.items]
    fills: dict[str, list[models.Fill]] = {order_id: [] for order_id in ids}
    if ids:
        query = select(models.Fill).where(models.Fill.order_id.in_(ids))
        for fill in session.scalars(query.order_by(models.Fill.executed_at, models.Fill.id)):
            fills[fill.order_id].append(fill)
    return [(row, fills[row.id]) for row in result.items], result.next_cursor


@router.get(
    "/orders",
    response_model=OrdersPage,
    summary="List orders",
    description="The caller's orders (of one `account_id` and `market` if given), newest first: `open` "
    "(default, untriggered stops included), `closed` or `all`, with cursor pagination.",
)
async def list_orders(
    principal: PrincipalDep,
    gateway: GatewayDep,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    market: Annotated[str | None, Query(max_length=64)] = None,
    status: Literal["open", "closed", "all"] = "open",
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    if account_id is not None:
        gateway.check_account(principal, account_id)
        accounts = [account_id]
    else:
        accounts = gateway.account_ids_of(principal)
    if status == "open":
        # the engine's live state is the truth for open orders; the cursor is the last order id
        before = None
        if cursor is not None:
            before = order_number(cursor)
            if before is None:
                raise ApiError(
                    Code.INVALID_REQUEST, "cursor is not valid; use the next_cursor of a previous page"
                )
        orders = views.open_orders(gateway.engine, set(accounts), market, before)
        chunk = orders[:limit]
        next_cursor = str(chunk[-1].order_id) if len(orders) > limit else None
        items = [await engine_order_out(gateway, order) for order in chunk]
        return json_response(page(items, next_cursor))
    await gateway.service.read_barrier()
    rows, next_cursor = await gateway.service.store.call(
        _orders_page, accounts, market, status, limit, cursor
    )
    items = []
    for row, fills in rows:
        data = convert.order_from_row(row, _spec_or_none(gateway, row.market), fills)
        number = order_number(row.id)
        if row.order_class not in (None, "simple") and number is not None:
            data["legs"] = await _legs_out(gateway, number, None)
        items.append(data)
    return json_response(page(items, next_cursor))
