"""The strategy catalogue: every strategy a session or backtest may name, with its parameters."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tradehall.api.gateway import GatewayDep
from tradehall.api.routes.common import ERRORS, json_response, page
from tradehall.api.schemas import StrategiesPage

router = APIRouter(tags=["strategies"], responses=ERRORS)


@router.get("/strategies", response_model=StrategiesPage)
async def list_strategies(gateway: GatewayDep) -> Response:
    """Built-ins, `tradehall.strategies` entry points and the configured directory, by name; each with
    its parameter schema `{type, default, min?, max?, choices?}`."""
    return json_response(page(gateway.strategies.describe()))
