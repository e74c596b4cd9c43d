"""Alpaca order entry: the request body, its translation into tradehall's `OrderCreate`, and placement.

Placement is shared by the FastAPI route and the fast path (`POST /alpaca/v2/orders` served before the
framework, like the native `POST /orders`): both call `submit_order`, which sends the native API's own
command through `tradehall.api.routes.orders.place_order` and renames the answer.

Numbers may come as JSON numbers or strings. `notional` (a market order for an amount of the quote
currency) becomes a quantity at the touch when the order arrives (the best ask for a buy, the best bid
for a sell), floored to the market's lot. `trailing_stop` takes `trail_percent` (a percentage, as
tradehall's) or `trail_price` and becomes tradehall's trailing stop. `order_class` bracket, oto and oco
with `take_profit {limit_price}` and `stop_loss {stop_price, limit_price?}` are tradehall's contingent
orders of the same names and shapes (an oco is a `limit` exit pair for an open position).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tradehall.api.alpaca.context import AlpacaSurface, Asset, invalid
from tradehall.api.alpaca.shapes import order_out
from tradehall.api.auth import Principal
from tradehall.api.errors import ApiError
from tradehall.api.routes.orders import place_order
from tradehall.api.schemas import OrderCreate, StopLossIn, TakeProfitIn
from tradehall.domain.errors import Code
from tradehall.domain.fixedpoint import decimal_of, decimal_str

Number = str | int | float
_TIME_IN_FORCE: dict[str, Literal["gtc", "ioc", "fok", "day"]] = {
    "gtc": "gtc",
    "ioc": "ioc",
    "fok": "fok",
    "day": "day",
}
"""Alpaca's time in force -> tradehall's (`opg` and `cls` are auctions, which crypto has not)."""
_DECIMAL = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,18})?$")


class AlpacaTakeProfit(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit_price: Number


class AlpacaStopLoss(BaseModel):
    model_config = ConfigDict(extra="ignore")
    stop_price: Number
    limit_price: Number | None = None


class AlpacaOrderIn(BaseModel):
    """`POST /v2/orders` as Alpaca documents it; fields tradehall has no use for are ignored."""

    model_config = ConfigDict(extra="ignore")

    symbol: str = Field(min_length=1, max_length=64)
    side: Literal["buy", "sell"]
    type: Literal["market", "limit", "stop", "stop_limit", "trailing_stop"] = "market"
    time_in_force: Literal["day", "gtc", "opg", "cls", "ioc", "fok"] = "gtc"
    qty: Number | None = None
    notional: Number | None = None
    limit_price: Number | None = None
    stop_price: Number | None = None
    trail_price: Number | None = None
    trail_percent: Number | None = None
    extended_hours: bool | None = None
    client_order_id: str | None = Field(default=None, max_length=128)
    order_class: Literal["simple", "bracket", "oco", "oto", ""] | None = None
    take_profit: AlpacaTakeProfit | None = None
    stop_loss: AlpacaStopLoss | None = None


class AlpacaReplaceIn(BaseModel):
    """`PATCH /v2/orders/{id}`: the new total quantity, limit and stop prices."""

    model_config = ConfigDict(extra="ignore")

    qty: Number | None = None
    time_in_force: str | None = None
    limit_price: Number | None = None
    stop_price: Number | None = None
    trail: Number | None = None
    client_order_id: str | None = None


def decimal_field(value: Number | None, name: str) -> str | None:
    """A positive decimal given as a JSON number or string, in tradehall's plain string form; else 422."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise invalid(f"invalid {name}")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    if isinstance(value, float) and "e" in text.lower():
        text = decimal_str(Decimal(text))
    if not _DECIMAL.match(text):
        raise invalid(f"invalid {name}: {value!r}")
    if Decimal(text) <= 0:
        raise invalid(f"{name} must be > 0")
    return text


def required_decimal(value: Number, name: str) -> str:
    """`decimal_field` of a value the request must carry."""
    text = decimal_field(value, name)
    assert text is not None  # the schema made the field required
    return text


def _touch_quantity(surface: AlpacaSurface, asset: Asset, side: str, notional: str) -> str:
    """The quantity `notional` buys (sells) at the best ask (bid), floored to the lot."""
    market = surface.gateway.market(asset.market)
    touch = market.ask if side == "buy" else market.bid
    if touch is None:
        touch = market.last_price if market.last_price is not None else market.mark_price
    if touch is None:
        raise invalid(f"notional orders need a price: {asset.symbol} has none yet")
    spec = asset.spec
    price = decimal_of(touch, spec.tick_size)
    lots = int(Decimal(notional) / price / spec.lot_size)
    if lots <= 0:
        raise invalid(f"notional {notional} is less than one lot of {asset.symbol} at {price}")
    return decimal_str(decimal_of(lots, spec.lot_size))


def native_order(surface: AlpacaSurface, body: AlpacaOrderIn, account_id: str, asset: Asset) -> OrderCreate:
    """The native `POST /orders` body of an Alpaca order (every value checked here)."""
    order_class = body.order_class or None
    take_profit = None
    if body.take_profit is not None:
        take_price = required_decimal(body.take_profit.limit_price, "take_profit.limit_price")
        take_profit = TakeProfitIn.model_construct(limit_price=take_price)
    stop_loss = None
    if body.stop_loss is not None:
        stop_loss = StopLossIn.model_construct(
            stop_price=required_decimal(body.stop_loss.stop_price, "stop_loss.stop_price"),
            limit_price=decimal_field(body.stop_loss.limit_price, "stop_loss.limit_price"),
        )
    if order_class in ("bracket", "oco") and (take_profit is None or stop_loss is None):
        raise invalid(f"{order_class} orders need both take_profit and stop_loss")
    if order_class == "oto" and (take_profit is None) == (stop_loss is None):
        raise invalid("oto orders need exactly one of take_profit and stop_loss")
    time_in_force = _TIME_IN_FORCE.get(body.time_in_force)
    if time_in_force is None:
        raise invalid("invalid crypto time_in_force")
    qty = decimal_field(body.qty, "qty")
    notional = decimal_field(body.notional, "notional")
    if (qty is None) == (notional is None):
        raise invalid("qty or notional is required (exactly one of them)")
    if notional is not None:
        if body.type != "market":
            raise invalid("notional is only for market orders")
        qty = _touch_quantity(surface, asset, body.side, notional)
    assert qty is not None
    limit_price = decimal_field(body.limit_price, "limit_price")
    stop_price = decimal_field(body.stop_price, "stop_price")
    if body.type in ("limit", "stop_limit") and limit_price is None and order_class != "oco":
        raise invalid("limit_price is required for limit orders")
    if body.type in ("stop", "stop_limit") and stop_price is None:
        raise invalid("stop_price is required for stop orders")
    if body.type in ("market", "stop", "trailing_stop") and limit_price is not None:
        raise invalid(f"limit_price must not be given for {body.type} orders")
    trail_price = decimal_field(body.trail_price, "trail_price")
    trail_percent = decimal_field(body.trail_percent, "trail_percent")
    if body.type == "trailing_stop":
        if (trail_price is None) == (trail_percent is None):
            raise invalid("trailing_stop orders need exactly one of trail_price and trail_percent")
        if stop_price is not None:
            raise invalid("stop_price must not be given for trailing_stop orders (the trail sets it)")
    elif trail_price is not None or trail_percent is not None:
        raise invalid("trail_price and trail_percent are only for trailing_stop orders")
    client_order_id = body.client_order_id or None
    if client_order_id is not None and len(client_order_id) > 64:
        raise invalid("client_order_id must be at most 64 characters")
    return OrderCreate.model_construct(
        account_id=account_id,
        market=asset.market,
        side=body.side,
        type=body.type,
        quantity=qty,
        price=limit_price,
        stop_price=stop_price,
        time_in_force=time_in_force,
        client_order_id=client_order_id,
        trail_price=trail_price,
        trail_percent=trail_percent,
        order_class=order_class,
        take_profit=take_profit,
        stop_loss=stop_loss,
    )


async def submit_order(
    surface: AlpacaSurface, principal: Principal, body: AlpacaOrderIn, correlation_id: str
) -> tuple[dict[str, Any], int]:
    """Places the order like `POST /orders` does; Alpaca answers 200 with the order."""
    gateway = surface.gateway
    asset = surface.assets.find(gateway, body.symbol)
    if asset is None:
        raise invalid(f'asset "{body.symbol}" not found')
    account_id = await surface.account_id(principal)
    create = native_order(surface, body, account_id, asset)
    try:
        native, _ = await place_order(gateway, principal, create, correlation_id, transport="alpaca")
    except ApiError as refused:
        if refused.code is Code.INSUFFICIENT_BALANCE:
            currency = asset.spec.quote if body.side == "buy" else asset.spec.base
            raise ApiError(
                refused.code, f"insufficient balance for {currency} ({refused.detail})", fields=refused.fields
            ) from None
        raise
    return order_out(native, asset.symbol, asset.asset_id), 200
