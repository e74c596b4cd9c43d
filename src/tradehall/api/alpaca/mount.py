"""The surface's routes, added to the app by `install`."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.responses import Response

from tradehall.api.alpaca.activities import router as activities_router
from tradehall.api.alpaca.context import AlpacaSurface
from tradehall.api.alpaca.errors import AlpacaRoute, alpaca_error_response
from tradehall.api.alpaca.marketdata import router as marketdata_router
from tradehall.api.alpaca.stream import STREAM_ROUTE, TradeUpdates
from tradehall.api.alpaca.trading import router as trading_router
from tradehall.domain.errors import Code

__all__ = ["AlpacaSurface", "TradeUpdates", "install", "routers"]

_fallback = APIRouter(route_class=AlpacaRoute, include_in_schema=False)


@_fallback.api_route(
    "/alpaca/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def unknown_endpoint(rest: str) -> Response:
    return alpaca_error_response(Code.NOT_FOUND, "endpoint not found")


def routers() -> list[APIRouter]:
    """The surface's routers, the catch-all last (unknown paths answer Alpaca's 404)."""
    return [trading_router, activities_router, marketdata_router]


def install(app: FastAPI) -> None:
    """Add the surface's routes to the app (the stream and the catch-all after the rest)."""
    for router in routers():
        app.include_router(router)
    app.router.routes.append(STREAM_ROUTE)
    app.include_router(_fallback)
