"""The backtest's engine: a real `Engine` with one quote-venue market and one cash account, seen by
the strategies as their portfolio and order sink.

Orders go in as `PlaceOrder` commands and fill by the quote venue's rules (slippage, fees, quoted
depth, latency) exactly as in paper trading; the broker only reads the events that come back: fills,
order ends, balances and positions of its account. Stop-loss and take-profit go with the entry as the
engine's bracket (`take_profit`/`stop_loss` on the order); a trailing stop is placed as the engine's
trailing-stop order once the entry has filled, where the engine offers that order type.

Just over 400 lines: the broker translates every engine event its strategies care about (fills,
ends, balances, positions, contingent legs) in one place, so a backtest and a session agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tradehall.domain import commands as cmds
from tradehall.domain.enums import MarketKind, OrderSide, OrderType
from tradehall.domain.errors import invalid_request
from tradehall.domain.events import (
    BalanceChanged,
    CommandRejected,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    PositionChanged,
)
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine, EngineConfig
from tradehall.strategies.types import FillReport, OrderRequest, OrderUpdate

ACCOUNT = "backtest"
TRAILING_STOP = getattr(OrderType, "TRAILING_STOP", None)
"""The engine's trailing-stop order type, when this engine has one."""
BRACKETS = "order_class" in cmds.PlaceOrder.__struct_fields__
"""Whether this engine places an order's `take_profit`/`stop_loss` as a bracket's exits."""


@dataclass(slots=True)
class Fill:
    """One fill of the backtest's account, in decimals."""

    ts: int
    order_id: int
    client_order_id: str | None
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    realized_pnl: Decimal
    liquidity: str


@dataclass(slots=True)
class OrderRecord:
    order_id: int
    client_order_id: str | None
    side: str
    type: str
    quantity: Decimal
    ts: int
    status: str = "open"
    parent_order_id: int | None = None
    reason: str = ""
    tag: str = ""


@dataclass(slots=True)
class _Pending:
    tag: str
    trail_percent: float | None


@dataclass(slots=True)
class BrokerLog:
    orders: list[OrderRecord] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class EngineBroker:
    """An `OrderSink` and `Portfolio` over a real engine (see the module's docstring)."""

    def __init__(
        self,
        spec: MarketSpec,
        initial_balance: Decimal,
        *,
        engine_config: EngineConfig | None = None,
    ) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.engine = engine = Engine(engine_config or EngineConfig())
        self.currency = spec.quote
        self.now = 0
        self.log = BrokerLog()
        self.on_fill: Callable[[FillReport], None] | None = None
        self.on_order: Callable[[OrderUpdate], None] | None = None
        self.before_order: Callable[[], None] | None = None
        """Called before an order goes in: the runner makes sure the engine holds the current quote."""
        self._tick = spec.tick_size
        self._lot = spec.lot_size
        self._tick_f = float(spec.tick_size)
        self._lot_f = float(spec.lot_size)
        self._spot = spec.kind is MarketKind.SPOT
        config = engine.config
        self._quote_scale: int = 10 ** config.decimals(spec.quote)
        self._base_scale: int = 10 ** config.decimals(spec.base)
        self._cash_minor: int = initial_balance.scaleb(config.decimals(spec.quote)).__int__()
        self._base_minor: int = 0
        self._lots: int = 0
        self._cost: int = 0
        self.price = 0.0
        self.open_order_ids: set[int] = set()
        self._records: dict[int, OrderRecord] = {}
        self._by_client: dict[str, int] = {}
        self._pending: dict[str, _Pending] = {}
        self._counter = 0
        self.fees_minor = 0
        self._notices: list[Callable[[], None]] | None = None
        setup: list[cmds.Command] = [
            cmds.CreateMarket(spec=spec, ts=0),
            cmds.OpenAccount(account_id=ACCOUNT, owner=ACCOUNT, currency=spec.quote, ts=0),
            cmds.Deposit(account_id=ACCOUNT, amount=initial_balance, ts=0),
        ]
        for command in setup:
            for event in engine.apply(command):
                if isinstance(event, CommandRejected):
                    raise invalid_request(f"the backtest's {event.command} was refused: {event.reason}")
        self.initial_cash = self.cash()

    # --- the engine -----------------------------------------------------------------------------

    def _apply(self, command: cmds.Command) -> list[Any]:
        events: list[Any] = self.engine.apply(command)  # dispatched on the exact class below
        outer = self._notices is None
        if outer:
            self._notices = []
        for event in events:
            cls = event.__class__
            if cls is BalanceChanged:
                if event.account_id == ACCOUNT:
                    if event.currency == self.currency:
                        self._cash_minor = event.total
                    elif event.currency == self.spec.base:
                        self._base_minor = event.total
            elif cls is PositionChanged:
                if event.account_id == ACCOUNT:
                    self._lots, self._cost = event.quantity, event.cost
            elif cls is OrderFilled:
                if event.account_id == ACCOUNT:
                    self._filled(event)
            elif cls is OrderAccepted:
                if event.account_id == ACCOUNT:
                    self._accepted(event)
            elif cls is OrderCancelled or cls is OrderExpired:
                if event.account_id == ACCOUNT:
                    status = "cancelled" if cls is OrderCancelled else "expired"
                    self._ended(event.order_id, status, str(getattr(event, "reason", "")))
            elif cls is OrderTriggered:
                if event.account_id == ACCOUNT:
                    self._update(event.order_id, "triggered")
            elif cls is OrderRejected:
                if event.account_id == ACCOUNT:
                    self._rejected(event.client_order_id, event.code.value, event.reason)
            elif cls is CommandRejected and not isinstance(command, cmds.Quote | cmds.CancelAll):
                self.log.rejections.append(
                    {"ts": event.ts, "command": event.command, "code": event.code.value,
                     "reason": event.reason}
                )
        if outer:
            # the strategies hear of fills and order changes once the whole command's events are in,
            # so the portfolio they read agrees with them
            notices, self._notices = self._notices, None
            for notice in notices or ():
                notice()
        return events

    def quote(self, ts: int, bid: Decimal, ask: Decimal, last: Decimal,
              bid_size: Decimal | None = None, ask_size: Decimal | None = None) -> None:
        if ts > self.now:
            self.now = ts
        self._apply(cmds.Quote(market=self.symbol, bid=bid, ask=ask, last=last, bid_size=bid_size,
                               ask_size=ask_size, ts=ts, source="backtest"))

    def advance(self, ts: int) -> None:
        if ts > self.now:
            self.now = ts

    # --- orders in ------------------------------------------------------------------------------------

    def price_of(self, value: float) -> Decimal:
        ticks = round(value / self._tick_f)
        return (Decimal(ticks) * self._tick).quantize(self._tick, ROUND_HALF_EVEN)

    def quantity_of(self, value: float) -> Decimal:
        lots = math.floor(value / self._lot_f + 1e-9)
        return Decimal(lots) * self._lot

    def submit(self, request: OrderRequest) -> str:
        client_id = request.client_order_id
        if client_id is None:
            self._counter += 1
            client_id = f"bt-{self._counter}"
        quantity = self.quantity_of(request.quantity)
        if quantity <= 0:
            self._rejected(client_id, "invalid_order", f"quantity {request.quantity} is below one lot")
            return client_id
        if self.before_order is not None:
            self.before_order()
        if (request.take_profit is not None or request.stop_loss is not None) and not BRACKETS:
            self._warn("stop_loss/take_profit not applied: this engine has no bracket orders")
        order_type = OrderType(request.type)
        self._pending[client_id] = _Pending(request.tag, request.trail_percent)
        self._apply(
            cmds.PlaceOrder(
                account_id=ACCOUNT,
                market=self.symbol,
                side=OrderSide(request.side),
                quantity=quantity,
                type=order_type,
                price=None if request.price is None else self.price_of(request.price),
                stop_price=None if request.stop_price is None else self.price_of(request.stop_price),
                reduce_only=request.reduce_only and not self._spot,  # a spot sell cannot go short
                client_order_id=client_id,
                take_profit=None if request.take_profit is None else self.price_of(request.take_profit),
                stop_loss=None if request.stop_loss is None else self.price_of(request.stop_loss),
                ts=self.now,
            )
        )
        return client_id

    def cancel(self, client_order_id: str) -> None:
        order_id = self._by_client.get(client_order_id)
        if order_id is not None and order_id in self.open_order_ids:
            self._apply(cmds.CancelOrder(order_id=order_id, account_id=ACCOUNT, ts=self.now))

    def cancel_all(self, market: str) -> None:
        if self.open_order_ids:
            self._apply(cmds.CancelAll(account_id=ACCOUNT, market=market, ts=self.now))

    # --- events back ---------------------------------------------------------------------------------

    def _accepted(self, event: OrderAccepted) -> None:
        pending = self._pending.get(event.client_order_id or "")
        record = OrderRecord(
            order_id=event.order_id,
            client_order_id=event.client_order_id,
            side=event.side.value,
            type=event.type.value,
            quantity=event.quantity * self._lot,
            ts=event.ts,
            parent_order_id=getattr(event, "parent_order_id", None),
            tag=pending.tag if pending is not None else ("exit" if getattr(event, "parent_order_id", None)
                                                        else ""),
        )
        self._records[event.order_id] = record
        self.log.orders.append(record)
        if event.client_order_id is not None:
            self._by_client[event.client_order_id] = event.order_id
        self.open_order_ids.add(event.order_id)
        self._notify(record, "accepted")

    def _update(self, order_id: int, status: str, reason: str = "") -> None:
        record = self._records.get(order_id)
        if record is not None:
            record.status = status
            if reason:
                record.reason = reason
            self._notify(record, status)

    def _ended(self, order_id: int, status: str, reason: str) -> None:
        self.open_order_ids.discard(order_id)
        record = self._records.get(order_id)
        if record is not None and record.type == "trailing_stop" and reason == "unfunded":
            self._warn("a trailing stop was unfunded: on a spot market a bracket's take-profit holds the "
                       "base, so use the trailing stop or the bracket, not both")
        self._update(order_id, status, reason)

    def _rejected(self, client_order_id: str | None, code: str, reason: str) -> None:
        self.log.rejections.append(
            {"ts": self.now, "client_order_id": client_order_id, "code": code, "reason": reason}
        )
        self._pending.pop(client_order_id or "", None)
        if self.on_order is not None:
            self.on_order(
                OrderUpdate(self.symbol, self.now, "rejected", None, client_order_id, f"{code}: {reason}")
            )

    def _notify(self, record: OrderRecord, status: str) -> None:
        if self.on_order is not None:
            self._later(
                self.on_order,
                OrderUpdate(
                    self.symbol, self.now, status, record.order_id, record.client_order_id, record.reason
                ),
            )

    def _later(self, callback: Callable[[Any], None], argument: Any) -> None:
        if self._notices is None:
            callback(argument)
        else:
            self._notices.append(lambda: callback(argument))

    def _filled(self, event: OrderFilled) -> None:
        tick, lot = self._tick, self._lot
        places = Decimal(1) / self._quote_scale
        fill = Fill(
            ts=event.ts,
            order_id=event.order_id,
            client_order_id=self._records[event.order_id].client_order_id
            if event.order_id in self._records else None,
            side=event.side.value,
            price=event.price * tick,
            quantity=event.quantity * lot,
            fee=event.fee * places,
            realized_pnl=event.realized_pnl * places,
            liquidity=event.liquidity.value,
        )
        self.fees_minor += event.fee
        self.log.fills.append(fill)
        if self.on_fill is not None:
            self._later(
                self.on_fill,
                FillReport(self.symbol, event.ts, event.order_id, fill.side, float(fill.price),
                           float(fill.quantity), float(fill.fee), float(fill.realized_pnl),
                           fill.client_order_id),
            )
        if event.status.value == "filled":
            self.open_order_ids.discard(event.order_id)
            self._update(event.order_id, "filled")
            pending = self._pending.pop(fill.client_order_id or "", None)
            if pending is not None and pending.trail_percent is not None and pending.tag == "entry":
                self._trail(event, pending.trail_percent)
        else:
            self._update(event.order_id, "partially_filled")

    def _warn(self, warning: str) -> None:
        if warning not in self.log.warnings:
            self.log.warnings.append(warning)

    def _trail(self, entry: OrderFilled, trail_percent: float) -> None:
        """The entry's trailing-stop exit, for its filled quantity (the engine's own order type)."""
        if TRAILING_STOP is None or "trail_percent" not in cmds.PlaceOrder.__struct_fields__:
            self._warn("trailing_stop_percent not applied: this engine has no trailing-stop orders")
            return
        record = self._records[entry.order_id]
        command = cmds.PlaceOrder(
            account_id=ACCOUNT,
            market=self.symbol,
            side=OrderSide.SELL if entry.side.value == "buy" else OrderSide.BUY,
            quantity=record.quantity,
            type=TRAILING_STOP,
            reduce_only=not self._spot,
            client_order_id=f"{record.client_order_id}-t"[:64] if record.client_order_id else None,
            trail_percent=Decimal(repr(trail_percent)),
            ts=self.now,
        )
        self._pending[command.client_order_id or ""] = _Pending("exit", None)
        self._apply(command)

    # --- the portfolio ---------------------------------------------------------------------------

    def position(self, market: str) -> float:
        return self._lots * self._lot_f if market == self.symbol else 0.0

    def position_lots(self) -> int:
        return self._lots

    def entry_price(self, market: str) -> float | None:
        if market != self.symbol or self._lots == 0:
            return None
        return self._cost / self._lots * self._tick_f

    def cash(self) -> float:
        return self._cash_minor / self._quote_scale

    @property
    def flat_equity(self) -> float:
        """Equity without a position (spot: the base held is worth its price all the same)."""
        if self._base_minor:
            return self._cash_minor / self._quote_scale + self._base_minor / self._base_scale * self.price
        return self._cash_minor / self._quote_scale

    def equity(self) -> float:
        """Cash plus the position at the last price (spot: the base held; perp: unrealised P&L)."""
        if self._spot:
            return self._cash_minor / self._quote_scale + self._base_minor / self._base_scale * self.price
        if self._lots == 0:
            return self._cash_minor / self._quote_scale
        unrealised = (self._lots * self.price / self._tick_f - self._cost) * self._tick_f * self._lot_f
        return self._cash_minor / self._quote_scale + unrealised

    def open_positions(self) -> int:
        return 1 if self._lots else 0
