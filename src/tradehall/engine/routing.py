"""Smart order routing: a `RouteOrder` (an order with `venue: "smart"`) split across the markets that
list its instrument, by fee-adjusted executable price.

The router walks the merged depth of every eligible venue (a book venue's resting levels, a quote
venue's quoted levels with its slippage) and takes the cheapest *all-in* level each step: a buy's
price x (1 + taker fee), a sell's price x (1 - taker fee), so a venue quoting the better price loses
to one whose fee makes it cheaper. Each venue takes only whole lots of its own and at least its
minimum; a quote venue whose quote is stale, and a market that is not open, is skipped. The children
are ordinary orders sent through intake (each with its own checks and holds, so the parent holds
nothing and nothing is counted twice): limit IOC children at the parent's limit (on each venue's tick,
never beyond it), market children for a market parent. What is left of a GTC limit rests on the best
venue (the first the walk took from; else the lowest maker fee); an IOC's or a market order's rest is
cancelled with its reason. The route is decided from the state alone, so replaying the journaled
command routes the same way.

The depth (venues' levels, the walk) is `route_depth`; `route_views` holds what adapters read of it.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Final

from tradehall.domain import commands as cmds
from tradehall.domain.enums import CancelReason, OrderSide, OrderType, Side, TimeInForce
from tradehall.domain.errors import Code, TradehallError, invalid_order, not_found
from tradehall.domain.events import OrderRouted, RoutedChild
from tradehall.domain.fixedpoint import decimal_of, decimal_str, parse_decimal
from tradehall.engine.checks import check_quote_fresh
from tradehall.engine.constants import (
    BUY,
    GTC,
    IOC,
    LIMIT_ORDER,
    MARKET_OPEN,
    MARKET_ORDER,
    PERP,
    QUOTE_VENUE,
    SELL,
    SPOT,
)
from tradehall.engine.intake import Intake
from tradehall.engine.markets import Market
from tradehall.engine.route_depth import exponent_of, on_tick, plan_split, split_depth, walk_levels
from tradehall.engine.state import EngineState, Route, enum_of

SIDES: Final = {OrderSide.BUY: BUY, OrderSide.SELL: SELL, OrderSide.LONG: BUY, OrderSide.SHORT: SELL}


def route_fingerprint(command: cmds.RouteOrder) -> bytes:
    """What makes a repeated smart order's `client_order_id` "the same order": its parameters, decimals
    by value, hashed (a plain order's fingerprint covers what a smart order does not have)."""

    def number(value: Decimal | None) -> str | None:
        return None if value is None else str(Decimal(value).normalize())

    fields = (
        "smart",
        command.instrument,
        str(getattr(command, "side")),  # noqa: B009 (enum fields may be plain strings: the native build)
        number(command.quantity),
        str(getattr(command, "type")),  # noqa: B009
        number(command.price),
        str(getattr(command, "time_in_force")),  # noqa: B009
        number(command.decision_price),
    )
    return hashlib.sha256(repr(fields).encode()).digest()[:16]


class RoutePlan:
    """A routing decision: the eligible venues (symbol order), each one's limit and the lots the walk
    takes there, the venues to send children to (in the order the walk took them), where a GTC rest
    goes, and what is left (in the route's common lot unit, 10**lot_exp)."""

    __slots__ = (
        "account_id",
        "decision",
        "eligible",
        "key",
        "left",
        "limits",
        "lot_exp",
        "lot_units",
        "order_type",
        "price",
        "rest_at",
        "sends",
        "side",
        "taken",
    )

    def __init__(
        self,
        account_id: str,
        side: Side,
        order_type: OrderType,
        eligible: list[Market],
        limits: list[int | None],
        taken: list[int],
        lot_units: list[int],
        sends: list[int],
        rest_at: int | None,
        left: int,
        price: Decimal | None,
        decision: Decimal | None,
        key: tuple[str, str] | None,
        lot_exp: int,
    ) -> None:
        self.account_id = account_id
        self.side = side
        self.order_type = order_type
        self.eligible = eligible
        self.limits = limits
        self.taken = taken
        self.lot_units = lot_units
        self.sends = sends
        self.rest_at = rest_at
        self.left = left
        self.price = price
        self.decision = decision
        self.key = key
        self.lot_exp = lot_exp


class Router:
    def __init__(self, state: EngineState, intake: Intake) -> None:
        self._state = state
        self._intake = intake
        self._routes = state.routes
        self._orders = state.orders

    def route_order(self, command: cmds.RouteOrder) -> None:
        if command.client_order_id is not None:
            key = (command.account_id, command.client_order_id)
            original = self._state.client_order_ids.get(key)
            if original is not None:
                if self._state.client_order_fingerprints.get(key) != route_fingerprint(command):
                    raise TradehallError(
                        Code.CONFLICT,
                        f"client_order_id {command.client_order_id!r} belongs to order {original},"
                        " placed with different parameters",
                    )
                return  # idempotent repeat: the original smart order stands, nothing changes
        self._send(command, self.decide(command))

    def decide(self, command: cmds.RouteOrder) -> RoutePlan:
        """Every check and the split; changes nothing (`bench/routing_bench.py` times this)."""
        state = self._state
        account = state.trader(command.account_id)
        venues = state.venues_of(command.instrument)
        if not venues:
            raise not_found(f"instrument {command.instrument} not found")
        side = SIDES.get(enum_of(OrderSide, getattr(command, "side"), "side"))  # noqa: B009
        if side is None:
            raise invalid_order("a smart order buys or sells")
        order_type = enum_of(OrderType, getattr(command, "type"), "type")  # noqa: B009
        tif = enum_of(TimeInForce, getattr(command, "time_in_force"), "time_in_force")  # noqa: B009
        if order_type is LIMIT_ORDER:
            if command.price is None:
                raise invalid_order("a limit order needs a price")
            if tif is not GTC and tif is not IOC:
                raise invalid_order("a smart limit order is gtc or ioc")
        elif order_type is MARKET_ORDER:
            if command.price is not None:
                raise invalid_order("a market order has no price")
        else:
            raise invalid_order("a smart order is a limit or market order")
        if venues[0].kind is not SPOT and venues[0].kind is not PERP:
            raise invalid_order("smart routing is for spot and perp instruments")
        key = None
        if command.client_order_id is not None:
            if not command.client_order_id or len(command.client_order_id) > 64:
                raise invalid_order("client_order_id must be 1 to 64 characters")
            key = (account.account_id, command.client_order_id)
            if key in state.client_order_ids:
                raise TradehallError(Code.CONFLICT, f"client_order_id {command.client_order_id} is in use")
        quantity = parse_decimal(command.quantity, "quantity")
        price = None if command.price is None else parse_decimal(command.price, "price")
        decision = (
            None
            if command.decision_price is None
            else parse_decimal(command.decision_price, "decision_price")
        )
        if quantity <= 0:
            raise invalid_order("quantity must be positive")
        if (price is not None and price <= 0) or (decision is not None and decision <= 0):
            raise invalid_order("prices must be positive")
        eligible = [
            m
            for m in venues
            if m.status is MARKET_OPEN and (m.venue is not QUOTE_VENUE or check_quote_fresh(state, m) is None)
        ]
        if not eligible:
            raise TradehallError(
                Code.MARKET_DATA_UNAVAILABLE, f"no venue of {command.instrument} is open with a fresh quote"
            )
        lots: list[tuple[int, int]] = []
        ticks: list[tuple[int, int]] = []
        for market in eligible:  # one pass: each venue's lot and tick as (mantissa, exponent)
            spec = market.spec
            lots.append(exponent_of(spec.lot_size))
            ticks.append(exponent_of(spec.tick_size))
        lot_exp = min([exp for _, exp in lots])
        need_units = quantity.scaleb(-lot_exp)
        if need_units != need_units.to_integral_value():
            raise invalid_order(f"quantity {quantity} is finer than every venue's lot")
        need = int(need_units)
        lot_units = [mantissa * 10 ** (exp - lot_exp) for mantissa, exp in lots]
        if price is None:
            limits = [m.protection_limit(side) for m in eligible]
        else:
            _sign, digits, price_exp = price.as_tuple()
            assert isinstance(price_exp, int)
            price_mantissa = int("".join(map(str, digits)))
            limits = [on_tick(price_mantissa, price_exp, tick, side) for tick in ticks]
        tick_exp = min([exp for _, exp in ticks])
        tick_units = [mantissa * 10 ** (exp - tick_exp) for mantissa, exp in ticks]
        # first only each venue's share of the order and half again (an even split would need less);
        # when the walk would go past what was left out, every level is built and walked instead
        share = -(-need * 3 // (2 * len(eligible)))
        walked = split_depth(eligible, side, limits, tick_units, lot_units, need, share)
        if walked is None:
            walked = split_depth(eligible, side, limits, tick_units, lot_units, need, None)
            assert walked is not None
        taken, first, left = walked
        rest_at: int | None = None
        if left and order_type is LIMIT_ORDER and tif is GTC:
            rest_at = first[0] if first else self._resting_venue(eligible, limits)
        sends = list(first)
        if rest_at is not None and rest_at not in sends:
            sends.append(rest_at)
        if not sends and order_type is LIMIT_ORDER and tif is GTC:
            raise invalid_order("no venue can take this quantity in whole lots at this price")
        return RoutePlan(
            account.account_id,
            side,
            order_type,
            eligible,
            limits,
            taken,
            lot_units,
            sends,
            rest_at,
            left,
            price,
            decision,
            key,
            lot_exp,
        )

    def _send(self, command: cmds.RouteOrder, plan: RoutePlan) -> None:
        """Send the children (each through intake's checks) and record the parent."""
        account_id, side, order_type = plan.account_id, plan.side, plan.order_type
        eligible, limits, taken, lot_units = plan.eligible, plan.limits, plan.taken, plan.lot_units
        rest_at, left, price, decision, key = plan.rest_at, plan.left, plan.price, plan.decision, plan.key
        state = self._state
        children: list[RoutedChild] = []
        first_error: TradehallError | None = None
        for index in plan.sends:
            market = eligible[index]
            lots = taken[index]
            tif = IOC
            if index == rest_at:
                lots += left // lot_units[index]
                left -= (left // lot_units[index]) * lot_units[index]
                tif = GTC
            limit = limits[index] if order_type is LIMIT_ORDER else None
            child = cmds.PlaceOrder(
                account_id=account_id,
                market=market.symbol,
                side=OrderSide.BUY if side is BUY else OrderSide.SELL,
                quantity=lots * market.spec.lot_size,
                type=order_type,
                price=None if limit is None else limit * market.spec.tick_size,
                time_in_force=tif,
                ts=command.ts,
            )
            before = state.next_order_id
            try:
                self._intake.place_order(child)
            except TradehallError as error:
                first_error = first_error or error
                if index != rest_at:
                    left += taken[index] * lot_units[index]
                else:
                    left += lots * lot_units[index]
                children.append(
                    RoutedChild(
                        order_id=None,
                        market=market.symbol,
                        quantity=lots,
                        price=limit,
                        planned=taken[index],
                        code=error.code,
                    )
                )
                continue
            children.append(
                RoutedChild(
                    order_id=before, market=market.symbol, quantity=lots, price=limit, planned=taken[index]
                )
            )
        if first_error is not None and all(c.order_id is None for c in children):
            raise first_error  # nothing was sent: the parent is refused as its first child was
        parent_id = state.next_order_id
        state.next_order_id += 1
        if key is not None:
            state.client_order_ids[key] = parent_id
            state.client_order_fingerprints[key] = route_fingerprint(command)
        live = [c.order_id for c in children if c.order_id is not None and c.order_id in self._orders]
        if live:
            self._routes[parent_id] = Route(parent_id, account_id, live)
        reason = None
        if left:
            reason = (
                CancelReason.MARKET_REMAINDER if order_type is MARKET_ORDER else CancelReason.IOC_REMAINDER
            )
        state.events.append(
            OrderRouted(
                order_id=parent_id,
                account_id=account_id,
                instrument=command.instrument,
                side=side,
                type=order_type,
                time_in_force=getattr(command, "time_in_force"),  # noqa: B009
                quantity=decimal_str(parse_decimal(command.quantity, "quantity")),
                price=None if price is None else decimal_str(price),
                client_order_id=command.client_order_id,
                decision_price=None if decision is None else decimal_str(decision),
                children=tuple(children),
                unrouted=decimal_str(decimal_of(left, Decimal(1).scaleb(plan.lot_exp))),
                reason=reason,
                ts=state.now,
            )
        )

    @staticmethod
    def _resting_venue(eligible: list[Market], limits: list[int | None]) -> int | None:
        """Where a limit rests when the walk took nothing: the lowest maker fee, then symbol order."""
        best: int | None = None
        for index, market in enumerate(eligible):
            if limits[index] is None or limits[index] <= 0:  # type: ignore[operator]
                continue
            if best is None or market.terms.maker_ppm < eligible[best].terms.maker_ppm:
                best = index
        return best


__all__ = ["RoutePlan", "Router", "plan_split", "walk_levels"]
