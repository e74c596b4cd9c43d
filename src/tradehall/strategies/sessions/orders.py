"""From a session's order requests to engine commands, and what its strategies see of the account.

- `client_order_id(session, seq)`: the id every order of a session carries, derived from the session
  and its decision number. A decision sent again after a crash carries the same id and the same
  parameters, so the engine answers the original order instead of placing a second one.
- `place_command`: an `OrderRequest` (floats) as a `PlaceOrder` on the market's tick and lot
  (quantities rounded down to the lot, prices to the nearest tick), with the backtest broker's
  arithmetic, so a session and a backtest turn the same request into the same order.
- `EnginePortfolio`: the `Portfolio` strategies read, over `engine.views`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import msgspec

from tradehall.domain.commands import PlaceOrder
from tradehall.domain.enums import MarketKind, OrderSide
from tradehall.domain.fixedpoint import amount_of, decimal_of
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine, views
from tradehall.strategies.types import OrderRequest


def client_order_id(session_id: str, seq: int) -> str:
    return f"{session_id}-{seq}"


def decimal_of_float(value: float) -> Decimal:
    """A strategy's float as the decimal it prints as (0.1 -> 0.1, not 0.1000000000000000055...;
    100.0 -> 100), in plain notation."""
    exact = Decimal(repr(float(value))).normalize()
    exponent = exact.as_tuple().exponent
    return exact.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else exact


def quantity_on_lot(spec: MarketSpec, quantity: float) -> Decimal:
    """A strategy's quantity in whole lots, rounded down: the backtest broker's arithmetic exactly
    (`EngineBroker.quantity_of`), so a session and a backtest size an order alike."""
    lots = math.floor(quantity / float(spec.lot_size) + 1e-9)
    return Decimal(lots) * spec.lot_size


def price_on_tick(spec: MarketSpec, price: float) -> Decimal:
    """A strategy's price on the nearest tick: the backtest broker's arithmetic (`EngineBroker.price_of`)."""
    tick = spec.tick_size
    return (Decimal(round(price / float(tick))) * tick).quantize(tick, ROUND_HALF_EVEN)


def place_command(
    account_id: str,
    spec: MarketSpec,
    request: OrderRequest,
    coid: str,
    *,
    correlation_id: str = "",
) -> PlaceOrder:
    """The engine command for `request` (its quantity already on the lot: see `quantity_on_lot`)."""
    def price(value: float | None) -> Decimal | None:
        return None if value is None else price_on_tick(spec, value)

    fields: dict[str, Any] = {
        "account_id": account_id,
        "market": spec.symbol,
        "side": OrderSide(request.side),
        "quantity": quantity_on_lot(spec, request.quantity),
        "type": request.type,
        "price": price(request.price),
        "stop_price": price(request.stop_price),
        # spot has no reduce-only (the engine refuses it): a spot sell can never exceed what is held
        "reduce_only": request.reduce_only and spec.kind is not MarketKind.SPOT,
        "client_order_id": coid,
        "take_profit": price(request.take_profit),
        "stop_loss": price(request.stop_loss),
        "correlation_id": correlation_id,
    }
    if request.type == "trailing_stop":  # the trail is the order itself (contingent orders' field)
        fields["trail_percent"] = (
            None if request.trail_percent is None else decimal_of_float(request.trail_percent)
        )
    # msgspec checks every field against the command's types (an order type the engine lacks fails here)
    return msgspec.convert(fields, PlaceOrder, from_attributes=False, strict=False)


class EnginePortfolio:
    """The session's account as its strategies see it, read from the engine at each call."""

    def __init__(self, engine: Callable[[], Engine], account_id: str) -> None:
        self._engine = engine
        self.account_id = account_id

    def position(self, market: str) -> float:
        found = views.position(self._engine(), self.account_id, market)
        if found is None:
            return 0.0
        return float(decimal_of(found.quantity, found.spec.lot_size))

    def entry_price(self, market: str) -> float | None:
        found = views.position(self._engine(), self.account_id, market)
        if found is None or found.quantity == 0:
            return None
        return float(decimal_of(found.cost, found.spec.tick_size) / found.quantity)

    def _account(self) -> views.AccountView:
        account = views.account(self._engine(), self.account_id)
        if account is None:
            raise LookupError(f"account {self.account_id} is gone")
        return account

    def equity(self) -> float:
        return float(self.equity_decimal())

    def equity_decimal(self) -> Decimal:
        account = self._account()
        places = views.currency_places(self._engine(), account.currency)
        return amount_of(account.valuation.equity, places)

    def cash(self) -> float:
        account = self._account()
        balance = account.balance(account.currency)
        if balance is None:
            return 0.0
        places = views.currency_places(self._engine(), account.currency)
        return float(amount_of(balance.total - balance.held, places))

    def open_positions(self) -> int:
        return len(views.positions(self._engine(), self.account_id))
