"""Settlements a feed detected and holds for an admin's confirmation (router mode `confirm`)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tradehall.api.errors import ApiError
from tradehall.api.gateway import AdminDep, GatewayDep
from tradehall.api.routes.common import ERRORS, json_response, page
from tradehall.domain.commands import SettleMarket, VoidMarket
from tradehall.domain.errors import Code
from tradehall.marketdata.router import Router

router = APIRouter(tags=["markets"], responses=ERRORS)


def _router(gateway: GatewayDep) -> Router:
    gateway.require_engine_process("settlements held by live market-data feeds")
    runtime = gateway.service.integrations.marketdata
    if runtime is None:
        raise ApiError(Code.NOT_FOUND, "no market-data feeds run in this process")
    return runtime.router


def _held(command: SettleMarket | VoidMarket) -> dict[str, object]:
    outcome = command.outcome.value if isinstance(command, SettleMarket) else "void"
    return {"market": command.market, "outcome": outcome}


@router.get("/admin/settlements", summary="Settlements held for confirmation (admin)")
async def held_settlements(_admin: AdminDep, gateway: GatewayDep) -> Response:
    """What the feeds saw resolve, waiting for an admin: {market, outcome: yes|no|void}."""
    held = _router(gateway).held
    return json_response(page([_held(held[market]) for market in sorted(held)]))


@router.post("/admin/settlements/{symbol}/confirm", summary="Confirm a held settlement (admin)")
async def confirm_settlement(symbol: str, _admin: AdminDep, gateway: GatewayDep) -> Response:
    """Submit the held settlement or void of `symbol` to the engine."""
    command = _router(gateway).confirm(symbol)
    if command is None:
        raise ApiError(Code.NOT_FOUND, f"no settlement of {symbol} is waiting")
    return json_response({**_held(command), "submitted": True})


@router.post(
    "/admin/settlements/{symbol}/reject", status_code=204, summary="Reject a held settlement (admin)"
)
async def reject_settlement(symbol: str, _admin: AdminDep, gateway: GatewayDep) -> Response:
    """Drop the held settlement of `symbol`; a later status update from the feed may hold a new one."""
    if not _router(gateway).reject(symbol):
        raise ApiError(Code.NOT_FOUND, f"no settlement of {symbol} is waiting")
    return Response(status_code=204)
