"""The deterministic engine: `Engine.apply(command) -> list[Event]`.

No I/O, no clock, no randomness: time arrives inside commands. A refused command leaves the state
unchanged (every check happens before the first change) and yields a rejection event with its code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from enum import StrEnum
from heapq import heappop, heappush
from typing import Any, TypeVar

import msgspec

from tradehall.domain import commands as cmds
from tradehall.domain.enums import (
    AccountKind,
    AccountStatus,
    CancelReason,
    CostBasis,
    Liquidity,
    MarketKind,
    MarketStatus,
    OrderSide,
    OrderStatus,
    OrderType,
    Outcome,
    Side,
    TimeInForce,
    TradingState,
)
from tradehall.domain.errors import Code, TradehallError, invalid_order, invalid_request, not_found
from tradehall.domain.events import (
    AccountOpened,
    AnyEvent,
    BookChanged,
    CommandRejected,
    MarketCreated,
    MarketSettled,
    MarketStatusChanged,
    MarketVoided,
    MarkPriceUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    PositionChanged,
    TradeExecuted,
)
from tradehall.domain.fixedpoint import ceil_div, minor_of, parse_decimal, units_of
from tradehall.domain.market import DEFAULT_CURRENCY_DECIMALS, MarketSpec
from tradehall.engine.book import Fill, OrderBook
from tradehall.engine.ledger import (
    SYSTEM_EXTERNAL,
    SYSTEM_FEES,
    SYSTEM_INSURANCE,
    SYSTEM_PERP_SETTLEMENT,
    SYSTEM_VENUE,
    Account,
    Balance,
    Ledger,
)
from tradehall.engine.markets import Book, Market
from tradehall.engine.orders import Order
from tradehall.engine.positions import Position

DAY_NS = 86_400 * 1_000_000_000
_EnumT = TypeVar("_EnumT", bound=StrEnum)
_EMIT_OWN_BOOK_CHANGES = frozenset({"PlaceOrder", "CancelOrder", "AmendOrder"})
"""Commands that touch one book and emit its change themselves; others sweep every book."""
SNAPSHOT_VERSION = 1


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Engine-wide settings; part of the snapshot, so a restored engine behaves the same."""

    currency_decimals: dict[str, int] = msgspec.field(default_factory=lambda: dict(DEFAULT_CURRENCY_DECIMALS))
    default_currency_decimals: int = 8

    def decimals(self, currency: str) -> int:
        return self.currency_decimals.get(currency, self.default_currency_decimals)


_SIDE_BY_KIND: dict[MarketKind, dict[OrderSide, Side]] = {
    MarketKind.SPOT: {OrderSide.BUY: Side.BUY, OrderSide.SELL: Side.SELL},
    MarketKind.PERP: {
        OrderSide.BUY: Side.BUY,
        OrderSide.SELL: Side.SELL,
        OrderSide.LONG: Side.BUY,
        OrderSide.SHORT: Side.SELL,
    },
    MarketKind.BINARY: {
        OrderSide.BUY: Side.BUY,
        OrderSide.SELL: Side.SELL,
        OrderSide.YES: Side.BUY,
        OrderSide.NO: Side.SELL,
    },
}


def _enum(kind: type[_EnumT], value: object, what: str) -> _EnumT:
    """A command's enum field as the enum; a value outside it is a refusal, never a crash."""
    if value.__class__ is kind:
        return value
    try:
        return kind(value)  # type: ignore[arg-type]
    except ValueError:
        raise invalid_order(f"{what} {value!r} is not one of {[m.value for m in kind]}") from None


class Engine:
    def __init__(
        self, config: EngineConfig | None = None, book_factory: Callable[[], Book] = OrderBook
    ) -> None:
        self.config = config or EngineConfig()
        self._book_factory = book_factory
        self.ledger = Ledger()
        self.accounts = self.ledger.accounts
        self.markets: dict[str, Market] = {}
        self.orders: dict[int, Order] = {}
        self.client_order_ids: dict[tuple[str, str], int] = {}
        self.now = 0
        self.next_order_id = 1
        self.next_trade_id = 1
        self._priority = 0
        self._expiries: list[tuple[int, int]] = []
        self._events: list[AnyEvent] = []
        self._dirty_positions: dict[tuple[str, str], Position] = {}
        self._handlers: dict[type, Callable[[Any], None]] = {
            cmds.OpenAccount: self._open_account,
            cmds.Deposit: self._deposit,
            cmds.Withdraw: self._withdraw,
            cmds.CreateMarket: self._create_market,
            cmds.SetMarketStatus: self._set_market_status,
            cmds.PlaceOrder: self._place_order,
            cmds.CancelOrder: self._cancel_order,
            cmds.CancelAll: self._cancel_all,
            cmds.AmendOrder: self._amend_order,
            cmds.MarkPrice: self._mark_price,
            cmds.Quote: self._quote,
            cmds.AdvanceTime: self._advance_time,
            cmds.SettleMarket: self._settle_market,
            cmds.VoidMarket: self._void_market,
        }

    # --- the one entry point -------------------------------------------------------------

    def apply(self, command: cmds.Command) -> list[AnyEvent]:
        """Apply one command; return the events it produced (a refusal is one rejection event)."""
        events: list[AnyEvent] = []
        self._events = events
        if command.ts > self.now:
            self.now = command.ts
        handler = self._handlers.get(type(command))
        if handler is None:
            events.append(
                CommandRejected(
                    command=type(command).__name__,
                    code=Code.INVALID_REQUEST,
                    reason="unknown command",
                    ts=self.now,
                )
            )
            return events
        try:
            handler(command)
        except TradehallError as error:
            if events:  # pragma: no cover - every check runs before the first change
                raise
            if isinstance(command, cmds.PlaceOrder):
                events.append(
                    OrderRejected(
                        account_id=command.account_id,
                        market=command.market,
                        client_order_id=command.client_order_id,
                        code=error.code,
                        reason=error.detail,
                        ts=self.now,
                    )
                )
            else:
                events.append(
                    CommandRejected(
                        command=type(command).__name__, code=error.code, reason=error.detail, ts=self.now
                    )
                )
            return events
        self._finish(type(command).__name__)
        return events

    def _finish(self, reason: str) -> None:
        """Emit the per-command summaries: balances, positions, book deltas."""
        events = self._events
        self.ledger.flush(reason, events)
        if self._dirty_positions:
            for key in sorted(self._dirty_positions):
                position = self._dirty_positions[key]
                events.append(
                    PositionChanged(
                        account_id=position.account_id,
                        market=position.market,
                        quantity=position.quantity,
                        cost=position.cost,
                        realized_pnl=position.realized,
                        margin=position.margin,
                    )
                )
            self._dirty_positions.clear()
        if reason not in _EMIT_OWN_BOOK_CHANGES:
            for symbol in sorted(self.markets):
                self._emit_book_changes(self.markets[symbol])

    def _emit_book_changes(self, market: Market) -> None:
        bids, asks = market.book.take_changes()
        if bids or asks:
            market.book_sequence += 1
            self._events.append(
                BookChanged(market=market.symbol, sequence=market.book_sequence, bids=bids, asks=asks)
            )

    # --- accounts ------------------------------------------------------------------------

    def _open_account(self, command: cmds.OpenAccount) -> None:
        if not command.account_id or command.account_id.startswith("system:"):
            raise invalid_request("account_id must be non-empty and not start with 'system:'")
        if command.account_id in self.accounts:
            raise TradehallError(Code.CONFLICT, f"account {command.account_id} exists")
        kind = _enum(AccountKind, command.kind, "kind")
        cost_basis = _enum(CostBasis, command.cost_basis, "cost_basis")
        if kind is AccountKind.SYSTEM:
            raise invalid_request("system accounts are opened by the engine")
        account = Account(
            command.account_id,
            command.owner,
            kind,
            command.currency,
            cost_basis,
            command.tier,
        )
        self.accounts[command.account_id] = account
        self._events.append(
            AccountOpened(
                account_id=account.account_id,
                owner=account.owner,
                kind=account.kind,
                currency=account.currency,
                cost_basis=account.cost_basis,
                tier=account.tier,
                ts=self.now,
            )
        )

    def _trader(self, account_id: str) -> Account:
        account = self.accounts.get(account_id)
        if account is None or account.kind is AccountKind.SYSTEM:
            raise not_found(f"account {account_id} not found")
        return account

    def _amount(self, account: Account, amount: object, currency: str | None) -> tuple[str, int]:
        currency = currency or account.currency
        value = parse_decimal(amount, "amount")
        minor = minor_of(value, self.config.decimals(currency))
        if minor <= 0:
            raise invalid_request("amount must be positive")
        return currency, minor

    def _deposit(self, command: cmds.Deposit) -> None:
        account = self._trader(command.account_id)
        currency, minor = self._amount(account, command.amount, command.currency)
        external = self.ledger.system_account(SYSTEM_EXTERNAL, currency)
        self.ledger.transfer(external, account, currency, minor)

    def _withdraw(self, command: cmds.Withdraw) -> None:
        account = self._trader(command.account_id)
        currency, minor = self._amount(account, command.amount, command.currency)
        if account.available(currency) < minor:
            raise TradehallError(Code.INSUFFICIENT_BALANCE, f"available {currency} is below the withdrawal")
        external = self.ledger.system_account(SYSTEM_EXTERNAL, currency)
        self.ledger.transfer(account, external, currency, minor)

    # --- markets -------------------------------------------------------------------------

    def _market(self, symbol: str) -> Market:
        market = self.markets.get(symbol)
        if market is None:
            raise not_found(f"market {symbol} not found")
        return market

    def _create_market(self, command: cmds.CreateMarket) -> None:
        try:  # a spec built in code with plain strings is checked and normalised like a decoded one
            spec = msgspec.convert(msgspec.to_builtins(command.spec), MarketSpec)
        except (msgspec.ValidationError, TypeError) as error:
            raise invalid_request(f"invalid market spec: {error}") from None
        if spec.symbol in self.markets:
            raise TradehallError(Code.CONFLICT, f"market {spec.symbol} exists")
        if spec.status not in (MarketStatus.OPEN, MarketStatus.HALTED, MarketStatus.CLOSED):
            raise invalid_request("a new market is open, halted or closed")
        try:
            market = Market(spec, self.config.currency_decimals, self._book_factory())
        except TradehallError as error:
            raise invalid_request(error.detail) from None
        self.markets[spec.symbol] = market
        self._events.append(MarketCreated(spec=spec, ts=self.now))

    def _set_market_status(self, command: cmds.SetMarketStatus) -> None:
        market = self._market(command.market)
        if market.status in (MarketStatus.SETTLED, MarketStatus.CANCELLED):
            raise TradehallError(Code.CONFLICT, f"market {market.symbol} is {market.status}")
        status = _enum(MarketStatus, command.status, "status")
        if status not in (MarketStatus.OPEN, MarketStatus.HALTED, MarketStatus.CLOSED):
            raise invalid_request("settle or void a market with SettleMarket / VoidMarket")
        self._change_market_status(market, status)

    def _change_market_status(self, market: Market, status: MarketStatus) -> None:
        if status is market.status:
            return
        if status in (MarketStatus.CLOSED, MarketStatus.SETTLED, MarketStatus.CANCELLED):
            reason = {
                MarketStatus.CLOSED: CancelReason.MARKET_CLOSED,
                MarketStatus.SETTLED: CancelReason.MARKET_SETTLED,
                MarketStatus.CANCELLED: CancelReason.MARKET_VOIDED,
            }[status]
            for order in sorted(
                (o for o in self.orders.values() if o.market == market.symbol), key=lambda o: o.order_id
            ):
                self._cancel(order, market, reason)
        market.status = status
        self._events.append(MarketStatusChanged(market=market.symbol, status=status, ts=self.now))

    def _mark_price(self, command: cmds.MarkPrice) -> None:
        market = self._market(command.market)
        price = self._price(market, command.price, "price")
        market.mark_price = price
        self._events.append(MarkPriceUpdated(market=market.symbol, price=price, ts=self.now))

    def _quote(self, command: cmds.Quote) -> None:
        market = self._market(command.market)
        bid = self._price(market, command.bid, "bid") if command.bid is not None else None
        ask = self._price(market, command.ask, "ask") if command.ask is not None else None
        last = self._price(market, command.last, "last") if command.last is not None else None
        if bid is not None and ask is not None:
            if bid > ask:
                raise invalid_request("a quote's bid is above its ask")
            mark = (bid + ask) // 2
        else:
            mark = last if last is not None else bid if bid is not None else ask  # type: ignore[assignment]
        if mark is None:
            raise invalid_request("a quote needs a bid, an ask or a last price")
        market.mark_price = mark
        self._events.append(MarkPriceUpdated(market=market.symbol, price=mark, ts=self.now))

    def _price(self, market: Market, value: object, what: str) -> int:
        price = market.ticks_of(value, what)
        if price <= 0:
            raise invalid_order(f"{what} must be positive")
        if market.kind is MarketKind.BINARY and price >= market.payout_ticks:
            raise invalid_order(f"{what} of a binary market must be between 0 and 1 exclusive")
        return price

    # --- orders: validation --------------------------------------------------------------

    def _place_order(self, command: cmds.PlaceOrder) -> None:
        market = self._market(command.market)
        account = self._trader(command.account_id)
        if account.status is not AccountStatus.ACTIVE or account.trading_state is TradingState.HALTED:
            raise TradehallError(Code.ACCOUNT_NOT_ACTIVE, f"account {account.account_id} is {account.status}")
        if not market.open_for_orders:
            raise TradehallError(Code.MARKET_CLOSED, f"market {market.symbol} is {market.status}")
        if command.client_order_id is not None:
            if not command.client_order_id or len(command.client_order_id) > 64:
                raise invalid_order("client_order_id must be 1 to 64 characters")
            if (account.account_id, command.client_order_id) in self.client_order_ids:
                return  # idempotent repeat: the original order stands, nothing changes
        requested_side = _enum(OrderSide, command.side, "side")
        side = _SIDE_BY_KIND[market.kind].get(requested_side)
        if side is None:
            raise invalid_order(f"side {command.side} does not fit a {market.kind} market")
        quantity = market.lots_of(command.quantity)
        if quantity <= 0:
            raise invalid_order("quantity must be positive")
        if quantity < market.min_lots:
            raise invalid_order(f"quantity is below the minimum {market.spec.min_quantity}")
        if market.max_lots is not None and quantity > market.max_lots:
            raise invalid_order(f"quantity is above the maximum {market.spec.max_quantity}")
        order_type = _enum(OrderType, command.type, "type")
        price = stop_price = None
        if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            if command.price is None:
                raise invalid_order(f"a {order_type} order needs a price")
            price = self._order_price(market, requested_side, command.price, "price")
        elif command.price is not None:
            raise invalid_order(f"a {order_type} order takes no price")
        if order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
            if command.stop_price is None:
                raise invalid_order(f"a {order_type} order needs a stop_price")
            stop_price = self._order_price(market, requested_side, command.stop_price, "stop_price")
        elif command.stop_price is not None:
            raise invalid_order(f"a {order_type} order takes no stop_price")
        tif = _enum(TimeInForce, command.time_in_force, "time_in_force")
        is_market = order_type in (OrderType.MARKET, OrderType.STOP)
        if is_market:
            if tif in (TimeInForce.DAY, TimeInForce.GTD):
                raise invalid_order("a market order cannot rest; use ioc, fok or gtc")
            if tif is TimeInForce.GTC:
                tif = TimeInForce.IOC
        expire_at = None
        if tif is TimeInForce.GTD:
            if command.expire_at is None or command.expire_at <= self.now:
                raise invalid_order("a gtd order needs expire_at in the future")
            expire_at = command.expire_at
        elif command.expire_at is not None:
            raise invalid_order("expire_at is only for gtd orders")
        elif tif is TimeInForce.DAY:
            expire_at = (self.now // DAY_NS + 1) * DAY_NS
        if command.post_only and (
            order_type is not OrderType.LIMIT or tif in (TimeInForce.IOC, TimeInForce.FOK)
        ):
            raise invalid_order("post_only is for limit orders that may rest")
        if command.reduce_only and market.kind is MarketKind.SPOT:
            raise invalid_order("reduce_only is for perp and binary markets")
        if command.post_only and price is not None and market.book.would_cross(side, price):
            raise invalid_order("post_only order would take liquidity")
        if account.trading_state is TradingState.REDUCING and not command.reduce_only:
            raise TradehallError(Code.ACCOUNT_NOT_ACTIVE, "the account may only reduce positions")
        order = Order(
            order_id=self.next_order_id,
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
            post_only=command.post_only,
            reduce_only=command.reduce_only,
            client_order_id=command.client_order_id,
            created_ts=self.now,
        )
        limit = price
        if order_type is OrderType.MARKET:
            limit = market.book.fillable(side, None, quantity, account.account_id, market.stp)[1]
        if order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
            order.status = OrderStatus.PENDING_TRIGGER
        self._compute_hold(order, account, market, limit)
        self._accept(order, account, market, limit)

    def _order_price(self, market: Market, requested: OrderSide, value: object, what: str) -> int:
        price = self._price(market, value, what)
        if requested is OrderSide.NO:
            return market.payout_ticks - price  # a NO at q is a YES sell at 1 - q
        return price

    def _compute_hold(self, order: Order, account: Account, market: Market, limit: int | None) -> None:
        """Set the order's hold terms and check the account can afford them (raises, changes nothing)."""
        kind = market.kind
        side = order.side
        spec = market.spec
        quantity = order.remaining
        if order.status is OrderStatus.PENDING_TRIGGER and order.type is OrderType.STOP:
            order.hold_currency = spec.quote
            return  # a stop market order is checked when it triggers, at the prices of that moment
        if kind is MarketKind.SPOT:
            order.hold_currency = spec.quote if side is Side.BUY else spec.base
        else:
            order.hold_currency = spec.quote
            position = market.positions.get(account.account_id)
            free = 0
            if position is not None:
                if side is Side.SELL:
                    free = max(0, position.quantity - position.reserved_sell)
                else:
                    free = max(0, -position.quantity - position.reserved_buy)
            order.covered = min(quantity, free)
            if order.reduce_only and order.covered < quantity:
                raise invalid_order("reduce_only order would increase the position")
        order.hold = self._hold_amount(market, side, limit, quantity, order.covered)
        need = order.hold
        if need > account.available(order.hold_currency):
            raise TradehallError(
                Code.INSUFFICIENT_BALANCE, f"order needs {need} {order.hold_currency} minor units available"
            )

    @staticmethod
    def _hold_amount(market: Market, side: Side, limit: int | None, quantity: int, covered: int) -> int:
        """The most `quantity` lots at `limit` can cost: cash or margin for the uncovered lots, plus fees."""
        if market.kind is MarketKind.SPOT and side is Side.SELL:
            return quantity * market.base_per_lot
        if limit is None:
            return 0
        worst = limit
        if side is Side.SELL:  # a selling taker fills at bids up to the best one
            best_bid = market.book.best_bid()
            if best_bid is not None and best_bid > worst:
                worst = best_bid
        opening = quantity - covered
        if market.kind is MarketKind.SPOT:
            cash = market.notional.ceil(limit * quantity)
        elif market.kind is MarketKind.PERP:
            # +1: the position's margin is rounded up once more when the fills join it
            cash = market.margin_of(worst * opening) + 1 if opening else 0
        elif side is Side.BUY:
            cash = market.notional.ceil(limit * opening)
        else:
            cash = market.notional.ceil((market.payout_ticks - limit) * opening)
        return cash + market.fee_bound(quantity, worst)

    # --- orders: changes -----------------------------------------------------------------

    def _accept(self, order: Order, account: Account, market: Market, limit: int | None) -> None:
        self.next_order_id += 1
        if order.client_order_id is not None:
            self.client_order_ids[(account.account_id, order.client_order_id)] = order.order_id
        self._events.append(
            OrderAccepted(
                order_id=order.order_id,
                account_id=order.account_id,
                market=order.market,
                side=order.side,
                requested_side=order.requested_side,
                type=order.type,
                time_in_force=order.time_in_force,
                quantity=order.quantity,
                price=order.price,
                stop_price=order.stop_price,
                expire_at=order.expire_at,
                post_only=order.post_only,
                reduce_only=order.reduce_only,
                client_order_id=order.client_order_id,
                status=order.status,
                ts=self.now,
            )
        )
        self._take_hold(order, account, market)
        if order.status is OrderStatus.PENDING_TRIGGER:
            self._register(order, account)
            (market.stops_buy if order.side is Side.BUY else market.stops_sell).add(order)
        else:
            self._execute(order, account, market, limit)
            self._trigger_stops(market)
        self._emit_book_changes(market)

    def _take_hold(self, order: Order, account: Account, market: Market) -> None:
        self.ledger.adjust_held(account, order.hold_currency, order.hold)
        if order.covered and market.kind is not MarketKind.SPOT:
            position = market.position(account.account_id, account.cost_basis)
            if order.side is Side.SELL:
                position.reserved_sell += order.covered
            else:
                position.reserved_buy += order.covered

    def _release_hold(self, order: Order, account: Account, market: Market) -> None:
        self.ledger.adjust_held(account, order.hold_currency, -order.hold)
        order.hold = 0
        if order.covered:
            position = market.positions[account.account_id]
            if order.side is Side.SELL:
                position.reserved_sell -= order.covered
            else:
                position.reserved_buy -= order.covered
            order.covered = 0

    def _register(self, order: Order, account: Account) -> None:
        self.orders[order.order_id] = order
        account.open_orders[order.order_id] = order
        if order.expire_at is not None:
            heappush(self._expiries, (order.expire_at, order.order_id))

    def _unregister(self, order: Order, account: Account) -> None:
        del self.orders[order.order_id]
        del account.open_orders[order.order_id]

    def _execute(self, order: Order, account: Account, market: Market, limit: int | None) -> None:
        """Match an accepted order, settle its fills, then rest it or close it by its time in force."""
        book = market.book
        tif = order.time_in_force
        if tif is TimeInForce.FOK and (
            limit is None
            or book.fillable(order.side, limit, order.remaining, account.account_id, market.stp)[0]
            < order.remaining
        ):
            self._close(order, account, market, CancelReason.FOK_UNFILLED)
            return
        fills: list[Fill] = []
        stp_cancelled: list[Order] = []
        if limit is not None:
            remaining, taker_stopped = book.match(
                order.side, limit, order.remaining, account.account_id, market.stp, fills, stp_cancelled
            )
        else:
            remaining, taker_stopped = order.remaining, False
        for maker in stp_cancelled:
            self._cancel(maker, market, CancelReason.SELF_TRADE, in_book=False)
        for maker, quantity, price in fills:
            self._settle_fill(market, maker, order, account, quantity, price)
        if remaining == 0:
            return
        if taker_stopped:
            self._close(order, account, market, CancelReason.SELF_TRADE)
        elif order.type is OrderType.MARKET or order.type is OrderType.STOP:
            self._close(order, account, market, CancelReason.MARKET_REMAINDER)
        elif tif is TimeInForce.IOC or tif is TimeInForce.FOK:
            self._close(order, account, market, CancelReason.IOC_REMAINDER)
        else:
            if limit is not None and fills and order.hold:
                # price improvement while taking: hold only what the resting rest can still cost
                tight = self._hold_amount(market, order.side, limit, order.remaining, order.covered)
                if tight < order.hold:
                    self.ledger.adjust_held(account, order.hold_currency, tight - order.hold)
                    order.hold = tight
            self._priority += 1
            order.priority = self._priority
            book.add(order)
            if order.order_id not in self.orders:
                self._register(order, account)

    def _close(self, order: Order, account: Account, market: Market, reason: CancelReason) -> None:
        """End an order that is not (or no longer) in the book: release its hold, emit the cancel."""
        self._release_hold(order, account, market)
        order.status = OrderStatus.CANCELLED
        if order.order_id in self.orders:
            self._unregister(order, account)
        self._events.append(
            OrderCancelled(
                order_id=order.order_id,
                account_id=order.account_id,
                market=order.market,
                filled_quantity=order.filled,
                reason=reason,
                ts=self.now,
            )
        )

    def _cancel(self, order: Order, market: Market, reason: CancelReason, in_book: bool = True) -> None:
        if in_book and order.in_book:
            market.book.remove(order)
        elif order.status is OrderStatus.PENDING_TRIGGER:
            (market.stops_buy if order.side is Side.BUY else market.stops_sell).remove(order)
        self._close(order, self.accounts[order.account_id], market, reason)

    def _settle_fill(
        self, market: Market, maker: Order, taker: Order, taker_account: Account, quantity: int, price: int
    ) -> None:
        trade_id = self.next_trade_id
        self.next_trade_id = trade_id + 1
        market.last_price = price
        notional = market.notional.floor(price * quantity)
        maker_account = self.accounts[maker.account_id]
        self._events.append(
            TradeExecuted(
                trade_id=trade_id,
                market=market.symbol,
                price=price,
                quantity=quantity,
                taker_side=taker.side,
                maker_order_id=maker.order_id,
                taker_order_id=taker.order_id,
                maker_account_id=maker.account_id,
                taker_account_id=taker.account_id,
                ts=self.now,
            )
        )
        if market.kind is MarketKind.SPOT:
            buyer, seller = (
                (taker_account, maker_account) if taker.side is Side.BUY else (maker_account, taker_account)
            )
            self.ledger.transfer(buyer, seller, market.spec.quote, notional)
            self.ledger.transfer(seller, buyer, market.spec.base, quantity * market.base_per_lot)
        self._fill_side(market, maker, maker_account, quantity, price, notional, trade_id, Liquidity.MAKER)
        self._fill_side(market, taker, taker_account, quantity, price, notional, trade_id, Liquidity.TAKER)

    def _fill_side(
        self,
        market: Market,
        order: Order,
        account: Account,
        quantity: int,
        price: int,
        notional: int,
        trade_id: int,
        liquidity: Liquidity,
    ) -> None:
        ledger = self.ledger
        quote = market.spec.quote
        kind = market.kind
        if liquidity is Liquidity.TAKER:
            order.remaining -= quantity  # a maker's remaining was already lowered by its book
        position = market.position(account.account_id, account.cost_basis)
        used = order.covered if order.covered < quantity else quantity
        if used:
            order.covered -= used
            if order.side is Side.SELL:
                position.reserved_sell -= used
            else:
                position.reserved_buy -= used
        accrued = order.fee_accrued
        ppm = market.maker_ppm if liquidity is Liquidity.MAKER else market.taker_ppm
        order.fee_accrued = accrued + market.fee_numerator(notional, quantity, price, ppm)
        denominator = market.fee_denominator
        fee = ceil_div(order.fee_accrued, denominator) - ceil_div(accrued, denominator)
        delta = quantity if order.side is Side.BUY else -quantity
        if kind is MarketKind.SPOT and delta < 0:
            # holdings that were deposited rather than bought have no cost basis
            delta = -min(quantity, max(position.quantity, 0))
        closed, realized_ticks = position.change(delta, price, account.cost_basis) if delta else (0, 0)
        realized = market.notional.round(realized_ticks) if realized_ticks else 0
        position.realized += realized
        self._dirty_positions[(account.account_id, market.symbol)] = position
        consumed = fee
        if kind is MarketKind.SPOT:
            consumed = notional + fee if order.side is Side.BUY else quantity * market.base_per_lot
        elif kind is MarketKind.PERP:
            margin_before = position.margin
            position.margin = market.margin_of(position.cost)
            margin_change = position.margin - margin_before
            if margin_change > 0:
                consumed += margin_change
            ledger.adjust_held(account, quote, margin_change)
            if realized:
                self._settle_pnl(account, quote, realized)
        else:
            pool = ledger.system_account(market.collateral_id, quote)
            closing_price = market.payout_ticks - price if order.side is Side.BUY else price
            opening_price = price if order.side is Side.BUY else market.payout_ticks - price
            if closed:
                ledger.transfer(pool, account, quote, market.notional.floor(closing_price * closed))
            if quantity - closed:
                opening_cost = market.notional.floor(opening_price * (quantity - closed))
                ledger.transfer(account, pool, quote, opening_cost)
                consumed += opening_cost
        if consumed > order.hold:  # pragma: no cover - holds are upper bounds of what fills consume
            consumed = order.hold
        order.hold -= consumed
        ledger.adjust_held(account, order.hold_currency, -consumed)
        if fee:
            ledger.transfer(account, ledger.system_account(SYSTEM_FEES, quote), quote, fee)
        order.filled += quantity
        order.fills_notional += price * quantity
        order.fees_paid += fee
        if order.remaining == 0:
            order.status = OrderStatus.FILLED
            if order.hold:  # the bound's slack: what the fills did not consume
                ledger.adjust_held(account, order.hold_currency, -order.hold)
                order.hold = 0
            if order.order_id in self.orders:
                self._unregister(order, account)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
        self._events.append(
            OrderFilled(
                order_id=order.order_id,
                account_id=order.account_id,
                market=market.symbol,
                trade_id=trade_id,
                side=order.side,
                price=price,
                quantity=quantity,
                fee=fee,
                liquidity=liquidity,
                realized_pnl=realized,
                filled_quantity=order.filled,
                status=order.status,
                ts=self.now,
            )
        )

    def _settle_pnl(self, account: Account, currency: str, pnl: int) -> None:
        """Perp P&L settles against clearing; a loss beyond the balance is paid by the insurance fund."""
        ledger = self.ledger
        clearing = ledger.system_account(SYSTEM_PERP_SETTLEMENT, currency)
        if pnl > 0:
            ledger.transfer(clearing, account, currency, pnl)
            return
        loss = -pnl
        balance = account.balance(currency).total
        covered = min(loss, max(balance, 0))
        ledger.transfer(account, clearing, currency, covered)
        if loss > covered:
            ledger.transfer(
                ledger.system_account(SYSTEM_INSURANCE, currency), clearing, currency, loss - covered
            )

    def _trigger_stops(self, market: Market) -> None:
        """Stops trigger on the last trade price, in the same command as the trade that moved it."""
        if not market.stops_buy and not market.stops_sell:
            return
        while market.last_price is not None:
            last = market.last_price
            triggered: list[Order] = []
            for order in market.stops_buy:
                assert order.stop_price is not None
                if order.stop_price > last:
                    break
                triggered.append(order)
            for order in reversed(market.stops_sell):
                assert order.stop_price is not None
                if order.stop_price < last:
                    break
                triggered.append(order)
            if not triggered:
                return
            for order in sorted(triggered, key=lambda o: o.order_id):
                (market.stops_buy if order.side is Side.BUY else market.stops_sell).remove(order)
            for order in sorted(triggered, key=lambda o: o.order_id):
                self._fire_stop(order, market)
            if market.last_price == last:
                return

    def _fire_stop(self, order: Order, market: Market) -> None:
        account = self.accounts[order.account_id]
        self._release_hold(order, account, market)
        order.status = OrderStatus.OPEN
        self._events.append(
            OrderTriggered(
                order_id=order.order_id, account_id=order.account_id, market=order.market, ts=self.now
            )
        )
        limit = order.price
        if order.type is OrderType.STOP:
            limit = market.book.fillable(order.side, None, order.remaining, account.account_id, market.stp)[1]
        try:
            self._compute_hold(order, account, market, limit)
        except TradehallError:
            order.covered = 0
            order.hold = 0
            self._close(order, account, market, CancelReason.UNFUNDED)
            return
        self._take_hold(order, account, market)
        self._execute(order, account, market, limit)

    # --- cancel, amend, expire -----------------------------------------------------------

    def _owned_order(self, order_id: int, account_id: str | None) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            if 0 < order_id < self.next_order_id:
                raise TradehallError(Code.CONFLICT, f"order {order_id} is already closed")
            raise not_found(f"order {order_id} not found")
        if account_id is not None and order.account_id != account_id:
            raise TradehallError(Code.FORBIDDEN, f"order {order_id} belongs to another account")
        return order

    def _cancel_order(self, command: cmds.CancelOrder) -> None:
        order = self._owned_order(command.order_id, command.account_id)
        self._cancel(order, self.markets[order.market], CancelReason.USER)
        self._emit_book_changes(self.markets[order.market])

    def _cancel_all(self, command: cmds.CancelAll) -> None:
        account = self._trader(command.account_id)
        if command.market is not None:
            self._market(command.market)
        for order in sorted(account.open_orders.values(), key=lambda o: o.order_id):  # type: ignore[attr-defined]
            assert isinstance(order, Order)
            if command.market is None or order.market == command.market:
                self._cancel(order, self.markets[order.market], CancelReason.USER)

    def _amend_order(self, command: cmds.AmendOrder) -> None:
        order = self._owned_order(command.order_id, command.account_id)
        market = self.markets[order.market]
        account = self.accounts[order.account_id]
        if not market.open_for_orders:
            raise TradehallError(Code.MARKET_CLOSED, f"market {market.symbol} is {market.status}")
        if command.price is None and command.quantity is None:
            raise invalid_order("an amend needs a price or a quantity")
        if order.status is OrderStatus.PENDING_TRIGGER:
            raise TradehallError(Code.CONFLICT, "cancel and replace a stop order that has not triggered")
        new_quantity = order.quantity
        if command.quantity is not None:
            new_quantity = units_of(
                parse_decimal(command.quantity, "quantity"), market.spec.lot_size, "quantity"
            )
            if new_quantity <= 0:
                raise invalid_order("quantity must be positive")
            if market.max_lots is not None and new_quantity > market.max_lots:
                raise invalid_order(f"quantity is above the maximum {market.spec.max_quantity}")
        new_price = order.price
        if command.price is not None:
            new_price = self._order_price(market, order.requested_side, command.price, "price")
        assert new_price is not None
        if new_quantity <= order.filled:
            market.book.remove(order)
            self._close(order, account, market, CancelReason.AMENDED_TO_FILLED)
            self._emit_book_changes(market)
            return
        new_remaining = new_quantity - order.filled
        if new_price == order.price and new_remaining <= order.remaining:
            released_cover = max(0, order.covered - new_remaining)
            market.book.reduce(order, new_remaining)
            order.covered -= released_cover
            self._adjust_reservation(order, market, -released_cover)
            order.quantity = new_quantity
            new_hold = min(
                order.hold, self._hold_amount(market, order.side, order.price, new_remaining, order.covered)
            )
            self.ledger.adjust_held(account, order.hold_currency, new_hold - order.hold)
            order.hold = new_hold
            self._events.append(
                OrderAmended(
                    order_id=order.order_id,
                    account_id=order.account_id,
                    market=market.symbol,
                    price=order.price,
                    quantity=new_quantity,
                    priority_lost=False,
                    ts=self.now,
                )
            )
            self._emit_book_changes(market)
            return
        if order.post_only and market.book.would_cross(order.side, new_price):
            raise invalid_order("post_only order would take liquidity")
        # Losing priority: check the new terms against the account as if the order were gone.
        trial = Order(
            order_id=order.order_id,
            account_id=order.account_id,
            market=order.market,
            side=order.side,
            requested_side=order.requested_side,
            type=order.type,
            time_in_force=order.time_in_force,
            price=new_price,
            stop_price=None,
            quantity=new_quantity,
            remaining=new_quantity,
            expire_at=order.expire_at,
            post_only=order.post_only,
            reduce_only=order.reduce_only,
            client_order_id=order.client_order_id,
            created_ts=order.created_ts,
        )
        trial.remaining = new_remaining
        self._check_replacement(trial, order, account, market)
        # The replacement is a new object: the old one may still sit in its level's queue (lazy deletion).
        market.book.remove(order)
        self._release_hold(order, account, market)
        trial.stop_price = order.stop_price
        trial.filled, trial.fills_notional, trial.fees_paid = (
            order.filled,
            order.fills_notional,
            order.fees_paid,
        )
        trial.status = order.status
        self.orders[order.order_id] = trial
        account.open_orders[order.order_id] = trial
        self._take_hold(trial, account, market)
        self._events.append(
            OrderAmended(
                order_id=order.order_id,
                account_id=order.account_id,
                market=market.symbol,
                price=new_price,
                quantity=new_quantity,
                priority_lost=True,
                ts=self.now,
            )
        )
        self._execute(trial, account, market, new_price)
        self._trigger_stops(market)
        self._emit_book_changes(market)

    def _adjust_reservation(self, order: Order, market: Market, lots: int) -> None:
        if lots == 0:
            return
        position = market.positions[order.account_id]
        if order.side is Side.SELL:
            position.reserved_sell += lots
        else:
            position.reserved_buy += lots

    def _check_replacement(self, trial: Order, order: Order, account: Account, market: Market) -> None:
        """Compute the trial's hold as if `order` were released first; raises without changing anything."""
        balance = account.balance(order.hold_currency)
        position = market.positions.get(account.account_id)
        saved = (
            balance.held,
            position.reserved_sell if position else 0,
            position.reserved_buy if position else 0,
        )
        balance.held -= order.hold
        if position is not None:
            if order.side is Side.SELL:
                position.reserved_sell -= order.covered
            else:
                position.reserved_buy -= order.covered
        try:
            self._compute_hold(trial, account, market, trial.price)
        finally:
            balance.held = saved[0]
            if position is not None:
                position.reserved_sell, position.reserved_buy = saved[1], saved[2]

    def _advance_time(self, command: cmds.AdvanceTime) -> None:
        expiries = self._expiries
        while expiries and expiries[0][0] <= self.now:
            _, order_id = heappop(expiries)
            order = self.orders.get(order_id)
            if order is None or order.expire_at is None or order.expire_at > self.now:
                continue
            market = self.markets[order.market]
            if order.in_book:
                market.book.remove(order)
            elif order.status is OrderStatus.PENDING_TRIGGER:
                (market.stops_buy if order.side is Side.BUY else market.stops_sell).remove(order)
            account = self.accounts[order.account_id]
            self._release_hold(order, account, market)
            order.status = OrderStatus.EXPIRED
            self._unregister(order, account)
            self._events.append(
                OrderExpired(
                    order_id=order.order_id,
                    account_id=order.account_id,
                    market=order.market,
                    filled_quantity=order.filled,
                    ts=self.now,
                )
            )
        for market in self.markets.values():
            close_time = market.spec.close_time
            if (
                close_time is not None
                and close_time <= self.now
                and market.status in (MarketStatus.OPEN, MarketStatus.HALTED)
            ):
                self._change_market_status(market, MarketStatus.CLOSED)

    # --- binary settlement ---------------------------------------------------------------

    def _binary_market(self, symbol: str) -> Market:
        market = self._market(symbol)
        if market.kind is not MarketKind.BINARY:
            raise invalid_request(f"market {symbol} is not a binary market")
        if market.status in (MarketStatus.SETTLED, MarketStatus.CANCELLED):
            raise TradehallError(Code.CONFLICT, f"market {symbol} is already {market.status}")
        return market

    def _settle_market(self, command: cmds.SettleMarket) -> None:
        market = self._binary_market(command.market)
        outcome = _enum(Outcome, command.outcome, "outcome")
        self._change_market_status(market, MarketStatus.SETTLED)
        quote = market.spec.quote
        pool = self.ledger.system_account(market.collateral_id, quote)
        settle_price = market.payout_ticks if outcome is Outcome.YES else 0
        payouts: list[tuple[str, int]] = []
        for account_id in sorted(market.positions):
            position = market.positions[account_id]
            if position.quantity == 0:
                continue
            account = self.accounts[account_id]
            wins = (position.quantity > 0) == (outcome is Outcome.YES)
            payout = market.notional.round(abs(position.quantity) * market.payout_ticks) if wins else 0
            self.ledger.transfer(pool, account, quote, payout)
            _, realized_ticks = position.change(-position.quantity, settle_price, account.cost_basis)
            position.realized += market.notional.round(realized_ticks)
            self._dirty_positions[(account_id, market.symbol)] = position
            payouts.append((account_id, payout))
        self._events.append(
            MarketSettled(market=market.symbol, outcome=outcome, payouts=tuple(payouts), ts=self.now)
        )

    def _void_market(self, command: cmds.VoidMarket) -> None:
        market = self._binary_market(command.market)
        self._change_market_status(market, MarketStatus.CANCELLED)
        quote = market.spec.quote
        pool = self.ledger.system_account(market.collateral_id, quote)
        refunds: list[tuple[str, int]] = []
        for account_id in sorted(market.positions):
            position = market.positions[account_id]
            if position.quantity == 0:
                continue
            if position.quantity > 0:
                refund = market.notional.round(position.cost)
            else:
                refund = market.notional.round(-position.quantity * market.payout_ticks + position.cost)
            self.ledger.transfer(pool, self.accounts[account_id], quote, refund)
            position.quantity = 0
            position.cost = 0
            if position.lots is not None:
                position.lots.clear()
            self._dirty_positions[(account_id, market.symbol)] = position
            refunds.append((account_id, refund))
        residual = pool.balance(quote).total
        self.ledger.transfer(pool, self.ledger.system_account(SYSTEM_VENUE, quote), quote, residual)
        self._events.append(MarketVoided(market=market.symbol, refunds=tuple(refunds), ts=self.now))

    # --- reads for adapters ----------------------------------------------------------------

    def order_id_for(self, account_id: str, client_order_id: str) -> int | None:
        return self.client_order_ids.get((account_id, client_order_id))

    def positions_of(self, account_id: str) -> list[Position]:
        return [
            m.positions[account_id]
            for m in sorted(self.markets.values(), key=lambda m: m.symbol)
            if account_id in m.positions and m.positions[account_id].quantity != 0
        ]

    # --- snapshot ------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state, canonically ordered: equal states give equal bytes."""
        return msgspec.msgpack.encode(self._snapshot_state())

    def state_hash(self) -> str:
        return hashlib.sha256(self.snapshot()).hexdigest()

    def _snapshot_state(self) -> dict[str, Any]:
        accounts = []
        for account_id in sorted(self.accounts):
            a = self.accounts[account_id]
            accounts.append(
                [
                    a.account_id,
                    a.owner,
                    a.kind,
                    a.currency,
                    a.cost_basis,
                    a.tier,
                    a.status,
                    a.trading_state,
                    sorted([c, b.total, b.held] for c, b in a.balances.items()),
                ]
            )
        markets = []
        for symbol in sorted(self.markets):
            m = self.markets[symbol]
            positions = [
                [
                    p.account_id,
                    p.quantity,
                    p.cost,
                    p.realized,
                    p.margin,
                    p.reserved_buy,
                    p.reserved_sell,
                    None if p.lots is None else [list(lot) for lot in p.lots],
                ]
                for _, p in sorted(m.positions.items())
            ]
            markets.append([m.spec, m.status, m.book_sequence, m.last_price, m.mark_price, positions])
        orders = [
            [
                o.order_id,
                o.account_id,
                o.market,
                o.side,
                o.requested_side,
                o.type,
                o.time_in_force,
                o.price,
                o.stop_price,
                o.quantity,
                o.remaining,
                o.filled,
                o.fills_notional,
                o.fees_paid,
                o.expire_at,
                o.post_only,
                o.reduce_only,
                o.client_order_id,
                o.created_ts,
                o.status,
                o.in_book,
                o.priority,
                o.covered,
                o.hold,
                o.fee_accrued,
                o.hold_currency,
            ]
            for _, o in sorted(self.orders.items())
        ]
        return {
            "version": SNAPSHOT_VERSION,
            "config": self.config,
            "now": self.now,
            "next_order_id": self.next_order_id,
            "next_trade_id": self.next_trade_id,
            "priority": self._priority,
            "accounts": accounts,
            "markets": markets,
            "orders": orders,
            "client_order_ids": sorted([a, c, i] for (a, c), i in self.client_order_ids.items()),
        }

    @classmethod
    def restore(cls, data: bytes, book_factory: Callable[[], Book] = OrderBook) -> Engine:
        state = msgspec.msgpack.decode(data)
        if state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot version {state.get('version')}")
        config = msgspec.convert(state["config"], EngineConfig)
        engine = cls(config, book_factory)
        engine.now = state["now"]
        engine.next_order_id = state["next_order_id"]
        engine.next_trade_id = state["next_trade_id"]
        engine._priority = state["priority"]
        for account_id, owner, kind, currency, cost_basis, tier, status, trading_state, balances in state[
            "accounts"
        ]:
            account = Account(account_id, owner, AccountKind(kind), currency, CostBasis(cost_basis), tier)
            account.status = AccountStatus(status)
            account.trading_state = TradingState(trading_state)
            for currency_code, total, held in balances:
                account.balances[currency_code] = Balance(total, held)
            engine.accounts[account_id] = account
        for raw_spec, status, book_sequence, last_price, mark_price, positions in state["markets"]:
            spec = msgspec.convert(raw_spec, MarketSpec)
            market = Market(spec, config.currency_decimals, book_factory())
            market.status = MarketStatus(status)
            market.book_sequence = book_sequence
            market.last_price = last_price
            market.mark_price = mark_price
            for account_id, quantity, cost, realized, margin, reserved_buy, reserved_sell, lots in positions:
                position = market.position(account_id, engine.accounts[account_id].cost_basis)
                position.quantity, position.cost, position.realized = quantity, cost, realized
                position.margin, position.reserved_buy, position.reserved_sell = (
                    margin,
                    reserved_buy,
                    reserved_sell,
                )
                if lots is not None and position.lots is not None:
                    position.lots.extend([list(lot) for lot in lots])
            engine.markets[spec.symbol] = market
        restored: list[Order] = []
        for row in state["orders"]:
            (
                order_id,
                account_id,
                market_symbol,
                side,
                requested_side,
                order_type,
                tif,
                price,
                stop_price,
                quantity,
                remaining,
                filled,
                fills_notional,
                fees_paid,
                expire_at,
                post_only,
                reduce_only,
                client_order_id,
                created_ts,
                status,
                in_book,
                priority,
                covered,
                hold,
                fee_accrued,
                hold_currency,
            ) = row
            order = Order(
                order_id=order_id,
                account_id=account_id,
                market=market_symbol,
                side=Side(side),
                requested_side=OrderSide(requested_side),
                type=OrderType(order_type),
                time_in_force=TimeInForce(tif),
                price=price,
                stop_price=stop_price,
                quantity=quantity,
                remaining=quantity,
                expire_at=expire_at,
                post_only=post_only,
                reduce_only=reduce_only,
                client_order_id=client_order_id,
                created_ts=created_ts,
            )
            order.remaining, order.filled = remaining, filled
            order.fills_notional, order.fees_paid = fills_notional, fees_paid
            order.status = OrderStatus(status)
            order.priority, order.covered = priority, covered
            order.hold, order.fee_accrued, order.hold_currency = (
                hold,
                fee_accrued,
                hold_currency,
            )
            order.in_book = in_book
            restored.append(order)
        for order in sorted(restored, key=lambda o: o.priority):
            account = engine.accounts[order.account_id]
            market = engine.markets[order.market]
            engine._register(order, account)
            if order.in_book:
                market.book.add(order)
            elif order.status is OrderStatus.PENDING_TRIGGER:
                (market.stops_buy if order.side is Side.BUY else market.stops_sell).add(order)
        for market in engine.markets.values():
            market.book.take_changes()
        for account_id, client_order_id, order_id in state["client_order_ids"]:
            engine.client_order_ids[(account_id, client_order_id)] = order_id
        return engine
