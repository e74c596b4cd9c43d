"""Live trading sessions: start, pause, resume, stop; the session, its signals, decisions and performance.

A user runs sessions only on their own accounts (404 unknown, 403 another user's, as orders); a
session of another user is 403 and shows nothing. The runtime validates the settings and strategies
(`tradehall.strategies.sessions`): a bad one is 400 `invalid_request` naming the field, an unknown
market 404, and nothing is created.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from tradehall.api.auth import TRADE, Principal
from tradehall.api.errors import forbidden
from tradehall.api.gateway import Gateway, GatewayDep, PrincipalDep, TraderDep
from tradehall.api.routes.common import ERRORS, Cursor, Limit, json_response, page
from tradehall.api.routes.orders import order_out
from tradehall.api.schemas import (
    OrdersPage,
    SessionCreate,
    SessionDecisionsPage,
    SessionOut,
    SessionPerformanceOut,
    SessionSignalsPage,
    SessionsPage,
)
from tradehall.store import sessions as repo
from tradehall.strategies.sessions import SessionInfo
from tradehall.strategies.sessions.model import decision_dict, signal_dict
from tradehall.strategies.sessions.performance import session_performance

router = APIRouter(tags=["sessions"], responses=ERRORS)


async def _owned(gateway: Gateway, principal: Principal, session_id: str) -> SessionInfo:
    """The caller's session: 404 when there is none, 403 when it is another user's."""
    gateway.require_engine_process("live trading sessions")
    info: SessionInfo = await gateway.service.sessions.get(session_id)
    if info.owner != principal.user_id and not principal.is_admin:
        raise forbidden(f"session {session_id} belongs to another user")
    principal.check_account(info.account_id)
    return info


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionOut,
    summary="Start a trading session",
    description="Runs `strategies` (each with a `weight` and `parameters`) on `markets` for `account_id`: "
    "a cycle every `settings.interval_seconds` (default 45) of engine time, or one per price update with "
    "`event_driven`; each cycle the strategies see one bar per market (from the cycle's trades, else "
    "quotes, else marks; no price, no bar), their signals are combined by weighted vote, filtered by "
    "`min_confidence` and the validators, sized by the risk settings, and sent with the session's "
    "stop-loss / take-profit / trailing stop. An assessment account's tier rules apply to every order. "
    "Needs the `trade` scope.",
)
async def create_session(body: SessionCreate, principal: TraderDep, gateway: GatewayDep) -> Response:
    gateway.require_engine_process("live trading sessions")
    gateway.check_account(principal, body.account_id)
    info = await gateway.service.sessions.create(
        principal.user_id,
        body.account_id,
        list(body.markets),
        [strategy.model_dump() for strategy in body.strategies],
        dict(body.settings),
    )
    return json_response(info.as_dict(), 201)


@router.get(
    "/sessions",
    response_model=SessionsPage,
    summary="List sessions",
    description="The caller's sessions (or those of `account_id`), newest first, cursor pagination.",
)
async def list_sessions(
    principal: PrincipalDep,
    gateway: GatewayDep,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    accounts: list[str] | None = None
    if account_id is not None:
        gateway.check_account(principal, account_id)
        accounts = [account_id]
    elif principal.account_id is not None:  # a key bound to one account sees that account's sessions
        accounts = [principal.account_id]
    owner = None if principal.is_admin and account_id is not None else principal.user_id
    found = await gateway.service.store.call(
        repo.list_sessions, owner=owner, account_ids=accounts, limit=limit, cursor=cursor
    )
    items = [SessionInfo.from_row(row).as_dict() for row in found.items]
    return json_response(page(items, found.next_cursor))


@router.get(
    "/sessions/{session_id}",
    response_model=SessionOut,
    summary="Get a session",
    description="One of the caller's sessions: its status (with `status_reason` when paused by a rule, "
    "stopped or failed), markets, strategies, settings and completed cycles. 404 if unknown, 403 if "
    "another user's.",
)
async def get_session(session_id: str, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    return json_response((await _owned(gateway, principal, session_id)).as_dict())


async def _control(gateway: Gateway, principal: Principal, session_id: str, action: str) -> Response:
    principal.require(TRADE)
    await _owned(gateway, principal, session_id)
    manager = gateway.service.sessions
    operation = {"pause": manager.pause, "resume": manager.resume, "stop": manager.stop_session}[action]
    info: SessionInfo = await operation(session_id)
    return json_response(info.as_dict())


@router.post(
    "/sessions/{session_id}/pause",
    response_model=SessionOut,
    summary="Pause a session",
    description="Its strategies keep seeing bars (indicators stay current) but nothing they decide is "
    "sent; open orders and exits stay. Pausing a paused session changes nothing; a stopped or failed "
    "one is 409 `conflict`.",
)
async def pause_session(session_id: str, principal: TraderDep, gateway: GatewayDep) -> Response:
    return await _control(gateway, principal, session_id, "pause")


@router.post(
    "/sessions/{session_id}/resume",
    response_model=SessionOut,
    summary="Resume a paused session",
    description="A stopped or failed session is 409 `conflict` (start a new one).",
)
async def resume_session(session_id: str, principal: TraderDep, gateway: GatewayDep) -> Response:
    return await _control(gateway, principal, session_id, "resume")


@router.post(
    "/sessions/{session_id}/stop",
    response_model=SessionOut,
    summary="Stop a session",
    description="For good: its task ends; its orders, exits and positions stay as they are.",
)
async def stop_session(session_id: str, principal: TraderDep, gateway: GatewayDep) -> Response:
    return await _control(gateway, principal, session_id, "stop")


@router.get(
    "/sessions/{session_id}/signals",
    response_model=SessionSignalsPage,
    summary="A session's signals",
    description="Every signal its strategies emitted while it ran (holds too, with their reason), "
    "newest first.",
)
async def session_signals(
    session_id: str,
    principal: PrincipalDep,
    gateway: GatewayDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    await _owned(gateway, principal, session_id)
    found = await gateway.service.store.call(repo.list_signals, session_id, limit=limit, cursor=cursor)
    return json_response(page([signal_dict(row) for row in found.items], found.next_cursor))


@router.get(
    "/sessions/{session_id}/decisions",
    response_model=SessionDecisionsPage,
    summary="A session's decisions",
    description="One combined decision per market and cycle in which a strategy spoke: its action and "
    "confidence, `vetoed_by` (the validator) and its reason when vetoed, and the order it placed "
    "(`client_order_id`, `order_id`) or the engine's refusal (`error`). Newest first.",
)
async def session_decisions(
    session_id: str,
    principal: PrincipalDep,
    gateway: GatewayDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    await _owned(gateway, principal, session_id)
    found = await gateway.service.store.call(repo.list_decisions, session_id, limit=limit, cursor=cursor)
    return json_response(page([decision_dict(row) for row in found.items], found.next_cursor))


@router.get(
    "/sessions/{session_id}/orders",
    response_model=OrdersPage,
    summary="A session's orders",
    description="The orders the session placed (entries, closes, trailing stop exits; a bracket's exits "
    "are the `legs` of its entry), newest first, each as `GET /orders/{order_id}` answers it.",
)
async def session_orders(
    session_id: str,
    principal: PrincipalDep,
    gateway: GatewayDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    await _owned(gateway, principal, session_id)
    found = await gateway.service.store.call(
        repo.list_order_decisions, session_id, limit=limit, cursor=cursor
    )
    items = [await order_out(gateway, principal, int(row.order_id)) for row in found.items if row.order_id]
    return json_response(page(items, found.next_cursor))


@router.get(
    "/sessions/{session_id}/performance",
    response_model=SessionPerformanceOut,
    summary="A session's performance",
    description="The backtest report's metrics (same names and definitions) on the session: its "
    "account's equity at the end of each cycle (from the session's start) and the round trips of the "
    "account's fills in the session's markets since it started; `exposure` is null (not tracked live), "
    "`open_trades` the positions still open.",
)
async def session_performance_route(
    session_id: str, principal: PrincipalDep, gateway: GatewayDep
) -> Response:
    info = await _owned(gateway, principal, session_id)
    await gateway.service.read_barrier()
    return json_response(await session_performance(gateway.service.store, gateway.engine, info))
