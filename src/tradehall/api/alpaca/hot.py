"""`POST /alpaca/v2/orders` on the fast path (see `tradehall.api.fastpath`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tradehall.api.alpaca.context import AlpacaSurface
from tradehall.api.alpaca.errors import response_for
from tradehall.api.alpaca.orders import AlpacaOrderIn, submit_order
from tradehall.api.routes.common import json_response


async def post_order(request: Request) -> Response:
    """`POST /alpaca/v2/orders` on the fast path (see `tradehall.api.fastpath`): the FastAPI route's
    steps by hand, every refusal in Alpaca's shape."""
    try:
        surface: AlpacaSurface = request.app.state.alpaca
        principal = await surface.principal(request)
        body = AlpacaOrderIn.model_validate_json(await request.body())
        order, status = await submit_order(surface, principal, body, str(request.state.correlation_id))
        return json_response(order, status)
    except Exception as exc:
        return response_for(request, exc)
