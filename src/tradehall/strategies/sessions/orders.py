"""From a session's order requests to engine commands, and what its strategies see of the account.

- `client_order_id(session, seq)`: the id every order of a session carries, derived from the session
  and its decision number. A decision sent again after a crash carries the same id and the same
  parameters, so the engine answers the original order instead of placing a second one.
- `place_command`: an `OrderRequest` (floats) as a `PlaceOrder` on the market's tick and lot
  (quantities rounded down to the lot, limit prices to the nearest tick, exits away from the entry
  so a stop is never tighter than asked).
- `exit_prices`: the session's stop-loss / take-profit percentages around an entry price.
- `EnginePortfolio`: the `Portfolio` strategies read, over `engine.views`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

import msgspec

from tradehall.domain.commands import PlaceOrder
from tradehall.domain.enums import MarketKind, OrderSide
from tradehall.domain.fixedpoint import amount_of, decimal_of
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine, views
from tradehall.strategies.types import OrderRequest

HUNDRED = Decimal(100)


def client_order_id(session_id: str, seq: int) -> str:
    return f"{session_id}-{seq}"


def decimal_of_float(value: float) -> Decimal:
    """A strategy's float as the decimal it prints as (0.1 -> 0.1, not 0.1000000000000000055...;
    100.0 -> 100), in plain notation."""
    exact = Decimal(repr(float(value))).normalize()
    exponent = exact.as_tuple().exponent
    return exact.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else exact


def to_step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step


def exit_prices(
    spec: MarketSpec,
    side: str,
    entry: Decimal,
    stop_loss_percent: Decimal | None,
    take_profit_percent: Decimal | None,
) -> tuple[Decimal | None, Decimal | None]:
    """(stop_loss, take_profit) for an entry of `side` at `entry`, on the tick, each at least as far from
    the entry as the percentage says (a buy's stop rounds down, its target up; a sell's the reverse)."""
    tick = spec.tick_size
    buy = side == "buy"
    stop = target = None
    if stop_loss_percent is not None:
        move = entry * stop_loss_percent / HUNDRED
        stop = to_step(entry - move if buy else entry + move, tick, ROUND_FLOOR if buy else ROUND_CEILING)
        if stop <= 0:
            stop = None
    if take_profit_percent is not None:
        move = entry * take_profit_percent / HUNDRED
        target = to_step(entry + move if buy else entry - move, tick, ROUND_CEILING if buy else ROUND_FLOOR)
        if target <= 0:
            target = None
    if spec.kind is MarketKind.BINARY:  # a binary price lies strictly between 0 and 1
        ceiling = Decimal(1) - tick
        stop = None if stop is None else min(max(stop, tick), ceiling)
        target = None if target is None else min(max(target, tick), ceiling)
    return stop, target


def quantity_on_lot(spec: MarketSpec, quantity: float | Decimal) -> Decimal:
    value = quantity if isinstance(quantity, Decimal) else decimal_of_float(quantity)
    return to_step(value, spec.lot_size, ROUND_DOWN)


def place_command(
    account_id: str,
    spec: MarketSpec,
    request: OrderRequest,
    coid: str,
    *,
    correlation_id: str = "",
) -> PlaceOrder:
    """The engine command for `request` (its quantity already on the lot: see `quantity_on_lot`)."""
    tick = spec.tick_size

    def price(value: float | None, rounding: str = ROUND_HALF_EVEN) -> Decimal | None:
        return None if value is None else to_step(decimal_of_float(value), tick, rounding)

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
