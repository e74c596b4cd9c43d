"""Order intake: `PlaceOrder` (every check, then hold, accept, execute), `CancelOrder`, `CancelAll`."""

from __future__ import annotations

from typing import Final

from msgspec.structs import astuple

from tradehall.domain import commands as cmds
from tradehall.domain.enums import (
    CancelReason,
    MarketKind,
    OrderSide,
    OrderType,
    Side,
    StopTrigger,
    TimeInForce,
)
from tradehall.domain.errors import Code, TradehallError, invalid_order, not_found
from tradehall.engine.book_venue import BookVenue
from tradehall.engine.checks import (
    check_activation,
    check_hold,
    check_quantity,
    check_quote_fresh,
    check_trigger,
    default_trigger,
    fingerprint,
    order_price,
    stated_trigger,
    trail_of,
    trailing_stop_price,
    trigger_price,
    would_cross,
)
from tradehall.engine.constants import (
    ACCOUNT_ACTIVE,
    BINARY,
    BUY,
    DAY,
    FOK,
    GTC,
    GTD,
    IOC,
    LIMIT_ORDER,
    MARKET_OPEN,
    MARKET_ORDER,
    OCO_CLASS,
    PENDING_TRIGGER,
    PERP,
    QUOTE_VENUE,
    SELL,
    SIMPLE_CLASS,
    SPOT,
    STOP_LIMIT_ORDER,
    STOP_ORDER,
    SYSTEM_KIND,
    TRADING_HALTED,
    TRADING_REDUCING,
    TRAILING_STOP_ORDER,
)
from tradehall.engine.contingent import Contingent
from tradehall.engine.contingent_checks import check_contingent, order_class_of
from tradehall.engine.execution import Execution
from tradehall.engine.holds import Holds
from tradehall.engine.ledger import Account
from tradehall.engine.lifecycle import Lifecycle
from tradehall.engine.limits import check_limits
from tradehall.engine.markets import Market
from tradehall.engine.orders import Order
from tradehall.engine.quote_venue import QuoteVenue
from tradehall.engine.state import DAY_NS, EngineState, enum_of
from tradehall.engine.stops import Stops

SIDE_BY_KIND: Final[dict[MarketKind, dict[OrderSide, Side]]] = {
    SPOT: {OrderSide.BUY: BUY, OrderSide.SELL: SELL},
    PERP: {OrderSide.BUY: BUY, OrderSide.SELL: SELL, OrderSide.LONG: BUY, OrderSide.SHORT: SELL},
    BINARY: {OrderSide.BUY: BUY, OrderSide.SELL: SELL, OrderSide.YES: BUY, OrderSide.NO: SELL},
}
USER: Final = CancelReason.USER
PLACE_ORDER_FIELDS: Final = (
    "ts", "correlation_id", "account_id", "market", "side", "quantity", "type", "price", "stop_price",
    "time_in_force", "expire_at", "post_only", "reduce_only", "client_order_id", "take_profit",
    "stop_loss", "trigger", "trail_percent", "trail_price", "activation_price", "order_class",
    "stop_loss_limit",
)  # fmt: skip
"""`PlaceOrder`'s fields in their order: `Intake.place_order` unpacks them positionally."""
if cmds.PlaceOrder.__struct_fields__ != PLACE_ORDER_FIELDS:
    raise ImportError("PlaceOrder's fields changed: update Intake.place_order's unpacking")


class OrderDesk:
    """What placing, cancelling and amending orders share (`Intake`, `amend.Amend`): the components
    they call, the registries they read, the lookup of a trader's own order."""

    def __init__(
        self,
        state: EngineState,
        holds: Holds,
        lifecycle: Lifecycle,
        execution: Execution,
        stops: Stops,
        book: BookVenue,
        quote: QuoteVenue,
        contingent: Contingent,
    ) -> None:
        self._state = state
        self._contingent = contingent
        self._book = book
        self._quote = quote
        self._holds = holds
        self._lifecycle = lifecycle
        self._execution = execution
        self._stops = stops
        self._markets = state.markets
        self._accounts = state.accounts
        self._orders = state.orders
        self._client_order_ids = state.client_order_ids
        self._client_order_fingerprints = state.client_order_fingerprints

    def owned_order(self, order_id: int, account_id: str | None) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            if 0 < order_id < self._state.next_order_id:
                raise TradehallError(Code.CONFLICT, f"order {order_id} is already closed")
            raise not_found(f"order {order_id} not found")
        if account_id is not None and order.account_id != account_id:
            raise TradehallError(Code.FORBIDDEN, f"order {order_id} belongs to another account")
        return order


class Intake(OrderDesk):
    def place_order(self, command: cmds.PlaceOrder) -> None:
        state = self._state
        # Every field read once, in one C call: a command is a msgspec Struct, whose attribute reads
        # are generic lookups in the compiled build (about 50 per placement before). The order is
        # `PLACE_ORDER_FIELDS`, checked at import.
        (
            _ts, _correlation_id, account_id, market_name, requested_side, quantity_value, order_type,
            price_value, stop_price_value, tif, expire_at_value, post_only, reduce_only, client_order_id,
            take_profit, stop_loss, trigger_value, trail_percent, trail_price_value, activation_value,
            order_class_value, stop_loss_limit,
        ) = astuple(command)  # fmt: skip
        # the lookups and enum conversions inline: one call each less on the hot path
        market = self._markets.get(market_name)
        if market is None:
            market = state.market(market_name)  # raises not_found
        account = self._accounts.get(account_id)
        if account is None or account.kind is SYSTEM_KIND:
            account = state.trader(account_id)  # raises not_found
        key: tuple[str, str] | None = None
        print_ = b""
        if client_order_id is not None:
            if not client_order_id or len(client_order_id) > 64:
                raise invalid_order("client_order_id must be 1 to 64 characters")
            key = (account.account_id, client_order_id)
            print_ = fingerprint(command, stated_trigger(market, command))
            original = self._client_order_ids.get(key)
            if original is not None:
                if self._client_order_fingerprints.get(key, print_) != print_:
                    raise TradehallError(
                        Code.CONFLICT,
                        f"client_order_id {client_order_id!r} belongs to order {original},"
                        " placed with different parameters",
                    )
                return  # idempotent repeat: the original order stands, nothing changes
        if account.status is not ACCOUNT_ACTIVE or account.trading_state is TRADING_HALTED:
            ended = account.assessment is not None and account.status is not ACCOUNT_ACTIVE
            raise TradehallError(
                Code.ACCOUNT_NOT_ACTIVE,
                f"account {account.account_id} is {account.status}",
                CancelReason.ASSESSMENT_ENDED if ended else None,
            )
        if market.status is not MARKET_OPEN:
            raise TradehallError(
                Code.MARKET_CLOSED, f"market {market.symbol} is {market.status}", CancelReason.MARKET_CLOSED
            )
        # Enum fields are read with getattr: a caller may pass the plain string (enum_of converts or
        # refuses it), and the compiled build would reject a typed `.side` read of a str.
        if requested_side.__class__ is not OrderSide:
            requested_side = enum_of(OrderSide, requested_side, "side")
        side = SIDE_BY_KIND[market.kind].get(requested_side)
        if side is None:
            raise invalid_order(f"side {requested_side} does not fit a {market.kind} market")
        quantity = market.terms.lots_of(quantity_value)
        refusal = check_quantity(market, quantity)
        if refusal is not None:
            raise refusal
        if order_type.__class__ is not OrderType:
            order_type = enum_of(OrderType, order_type, "type")
        order_class = SIMPLE_CLASS
        if take_profit is not None or stop_loss is not None or order_class_value is not None:
            order_class = order_class_of(command)
        price = stop_price = None
        if order_type in (LIMIT_ORDER, STOP_LIMIT_ORDER):
            if price_value is None and order_class is OCO_CLASS:
                price_value = take_profit  # an oco is its take-profit
            if price_value is None:
                raise invalid_order(f"a {order_type} order needs a price")
            price = order_price(market, requested_side, price_value, "price")
        elif price_value is not None:
            raise invalid_order(f"a {order_type} order takes no price")
        if order_type in (STOP_ORDER, STOP_LIMIT_ORDER):
            if stop_price_value is None:
                raise invalid_order(f"a {order_type} order needs a stop_price")
            stop_price = order_price(market, requested_side, stop_price_value, "stop_price")
        elif stop_price_value is not None:
            raise invalid_order(f"a {order_type} order takes no stop_price")
        trailing = order_type is TRAILING_STOP_ORDER
        trigger = None
        if stop_price is not None or trailing:
            trigger = (
                default_trigger(market)
                if trigger_value is None
                else enum_of(StopTrigger, trigger_value, "trigger")
            )
            if stop_price is not None:
                refusal = check_trigger(market, requested_side, side, trigger, stop_price)
                if refusal is not None:
                    raise refusal
        elif trigger_value is not None:
            raise invalid_order("trigger is only for stop, stop_limit and trailing_stop orders")
        trail_ppm = trail_price = activation_price = None
        if trailing:
            assert trigger is not None
            trail_ppm, trail_price = trail_of(market, trail_percent, trail_price_value)
            if activation_value is not None:
                activation_price = order_price(market, requested_side, activation_value, "activation_price")
                refusal = check_activation(market, requested_side, side, trigger, activation_price)
                if refusal is not None:
                    raise refusal
        elif trail_percent is not None or trail_price_value is not None or activation_value is not None:
            raise invalid_order(
                "trail_percent, trail_price and activation_price are only for trailing_stop orders"
            )
        if tif.__class__ is not TimeInForce:
            tif = enum_of(TimeInForce, tif, "time_in_force")
        if order_type in (MARKET_ORDER, STOP_ORDER, TRAILING_STOP_ORDER):
            if tif in (DAY, GTD):
                raise invalid_order("a market order cannot rest; use ioc, fok or gtc")
            if tif is GTC:
                tif = IOC
        now = state.now
        expire_at = None
        if tif is GTD:
            if expire_at_value is None or expire_at_value <= now:
                raise invalid_order("a gtd order needs expire_at in the future")
            expire_at = expire_at_value
        elif expire_at_value is not None:
            raise invalid_order("expire_at is only for gtd orders")
        elif tif is DAY:
            expire_at = (now // DAY_NS + 1) * DAY_NS
        if post_only and (order_type is not LIMIT_ORDER or tif in (IOC, FOK)):
            raise invalid_order("post_only is for limit orders that may rest")
        if reduce_only and market.kind is SPOT:
            raise invalid_order("reduce_only is for perp and binary markets")
        if post_only and price is not None and would_cross(market, side, price):
            raise invalid_order("post_only order would take liquidity", CancelReason.POST_ONLY)
        if account.trading_state is TRADING_REDUCING and not reduce_only:
            raise TradehallError(Code.ACCOUNT_NOT_ACTIVE, "the account may only reduce positions")
        # built here, directly: the hot path (`lifecycle` builds the engine's own orders)
        order = Order(
            order_id=state.next_order_id,
            account_id=account.account_id,
            market=market.symbol,
            side=side,
            requested_side=requested_side,
            type=order_type,
            time_in_force=tif,
            price=price,
            stop_price=stop_price,
            quantity=quantity,
            remaining=quantity,
            expire_at=expire_at,
            post_only=post_only,
            reduce_only=reduce_only,
            client_order_id=client_order_id,
            created_ts=now,
            trigger=trigger,
            updated_ts=now,
        )
        if order_type is STOP_ORDER or order_type is STOP_LIMIT_ORDER:
            order.status = PENDING_TRIGGER
        elif trailing:
            order.status = PENDING_TRIGGER
            order.trail_ppm, order.trail_price = trail_ppm, trail_price
            order.activation_price = activation_price
            if activation_price is None:  # it trails from the price of now (or waits for a first one)
                reference = trigger_price(market, trigger, side)
                if reference is not None:
                    order.hwm = reference
                    order.stop_price = trailing_stop_price(market, order, reference)
        if order_class is not SIMPLE_CLASS or stop_loss_limit is not None:
            check_contingent(command, order_class, order, market, account)
        if market.venue is QUOTE_VENUE:
            refusal = check_quote_fresh(state, market)
            if refusal is not None:
                raise refusal
        limit, lots = self._execution.taking_terms(market, order)
        refusal = check_hold(state, order, account, market, limit, lots)
        if refusal is None:
            refusal = check_limits(state, order, account, market, limit)
        if refusal is not None:
            raise refusal
        self.accept(order, account, market, limit)
        if order_class is OCO_CLASS:
            self._contingent.attach_stop(order, account, market)
        if key is not None:
            self._client_order_fingerprints[key] = print_

    def accept(self, order: Order, account: Account, market: Market, limit: int | None) -> None:
        state = self._state
        state.next_order_id += 1
        if order.client_order_id is not None:
            self._client_order_ids[(account.account_id, order.client_order_id)] = order.order_id
        self._lifecycle.emit_accepted(order)
        self._holds.take(order, account, market)
        if order.status is PENDING_TRIGGER:
            state.register(order, account)
            market.stops.add(order)
        else:
            # the venue chosen here, not through `Execution.execute`: one call less per placement
            if market.venue is QUOTE_VENUE:
                self._quote.execute(order, account, market, limit)
            else:
                self._book.execute(order, account, market, limit)
            self._stops.trigger(market)
        state.emit_book_changes(market)

    def cancel_order(self, command: cmds.CancelOrder) -> None:
        try:
            order = self.owned_order(command.order_id, command.account_id)
        except TradehallError:
            if command.order_id not in self._state.routes:
                raise
            self._cancel_route(command)
            return
        market = self._markets[order.market]
        self._lifecycle.cancel(order, market, USER)
        self._stops.trigger(market)  # a cancel can move the touch that bid_ask stops watch
        self._state.emit_book_changes(market)

    def _cancel_route(self, command: cmds.CancelOrder) -> None:
        """Cancelling a smart order cancels its children that are still open."""
        route = self._state.routes[command.order_id]
        if command.account_id is not None and route.account_id != command.account_id:
            raise TradehallError(Code.FORBIDDEN, f"order {command.order_id} belongs to another account")
        orders = self._orders
        live = [orders[child] for child in route.children if child in orders]
        if not live:
            del self._state.routes[command.order_id]
            raise TradehallError(Code.CONFLICT, f"order {command.order_id} is already closed")
        del self._state.routes[command.order_id]
        markets = self._markets
        for order in live:
            self._lifecycle.cancel(order, markets[order.market], USER)
        for symbol in sorted({order.market for order in live}):
            self._stops.trigger(markets[symbol])
            self._state.emit_book_changes(markets[symbol])

    def cancel_all(self, command: cmds.CancelAll) -> None:
        state = self._state
        account = state.trader(command.account_id)
        if command.market is not None:
            state.market(command.market)
        markets = self._markets
        touched: set[str] = set()
        for order in state.open_orders_of(account):
            if command.market is None or order.market == command.market:
                self._lifecycle.cancel(order, markets[order.market], USER)
                touched.add(order.market)
        for symbol in sorted(touched):
            self._stops.trigger(markets[symbol])
