"""The deterministic engine: `Engine.apply(command) -> list[Event]`.

No I/O, no clock, no randomness: time arrives inside commands. A refused command leaves the state
unchanged (every check happens before the first change) and yields a rejection event with its code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from decimal import Decimal
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
    FillOrigin,
    Liquidity,
    MarketKind,
    MarketStatus,
    OrderSide,
    OrderType,
    Outcome,
    Side,
    StopTrigger,
    TimeInForce,
    TradingState,
)
from tradehall.domain.errors import Code, TradehallError, invalid_order, invalid_request, not_found
from tradehall.domain.events import (
    AccountOpened,
    AccountStatusChanged,
    AnyEvent,
    AssessmentFailed,
    AssessmentPassed,
    AssessmentUpdated,
    BookChanged,
    CommandRejected,
    EngineConfigured,
    FundingPaid,
    LeverageChanged,
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
    PositionLiquidated,
    PositionTakenOver,
    QuoteUpdated,
    TradeExecuted,
)
from tradehall.domain.fixedpoint import (
    PPM,
    ceil_div,
    decimal_of,
    decimal_str,
    div_round_half_even,
    format_money,
    minor_of,
    parse_decimal,
    units_of,
)
from tradehall.domain.market import DEFAULT_CURRENCY_DECIMALS, MarketSpec
from tradehall.domain.tiers import DEFAULT_TIERS, TierSpec
from tradehall.engine.book import Fill, OrderBook
from tradehall.engine.constants import (
    ACCOUNT_ACTIVE,
    BINARY,
    BOOK_VENUE,
    BUY,
    CANCELLED,
    DAY,
    EXPIRED,
    FILLED,
    FOK,
    GTC,
    GTD,
    IOC,
    LIMIT_ORDER,
    MAKER,
    MARKET_OPEN,
    MARKET_ORDER,
    OPEN,
    PARTIALLY_FILLED,
    PENDING_TRIGGER,
    PERP,
    QUOTE_VENUE,
    SELL,
    SPOT,
    STOP_LIMIT_ORDER,
    STOP_ORDER,
    SYSTEM_KIND,
    TAKER,
    TRADING_HALTED,
    TRADING_REDUCING,
    TRIGGER_BID_ASK,
    TRIGGER_LAST,
    TRIGGER_MARK,
)
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
from tradehall.engine.risk import (
    UNBOUNDED_HIGH,
    UNBOUNDED_LOW,
    AssessmentState,
    liquidation_price,
    maintenance_of,
    mark_interval,
    mark_of,
    next_reset_ts,
    tier_day_index,
)
from tradehall.engine.valuation import valuation_price, value_account
from tradehall.engine.venues import consume, crossing_size, plan_fills, slipped

DAY_NS = 86_400 * 1_000_000_000
_EnumT = TypeVar("_EnumT", bound=StrEnum)
_EMIT_OWN_BOOK_CHANGES = frozenset({"PlaceOrder", "CancelOrder", "AmendOrder"})
"""Commands that touch one book and emit its change themselves; others sweep every book."""
SNAPSHOT_VERSION = 1
CLOSE_OUT_PROTECTION_PPM = 50_000
"""A close-out on a book trades no further than 5 % beyond the best opposite price when its market
has no `price_protection` of its own; the rest is taken over by the insurance fund at the mark."""


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Engine-wide settings; part of the snapshot, so a restored engine behaves the same.

    `incremental_marks`: a mark touches only the accounts whose mark interval it leaves (False:
    every account with a position in the market, the plain oracle for tests).
    """

    currency_decimals: dict[str, int] = msgspec.field(default_factory=lambda: dict(DEFAULT_CURRENCY_DECIMALS))
    default_currency_decimals: int = 8
    tiers: dict[str, TierSpec] = msgspec.field(default_factory=lambda: dict(DEFAULT_TIERS))
    quote_max_age_ms: int = 10_000
    max_open_orders: int = 1_000
    incremental_marks: bool = True

    def decimals(self, currency: str) -> int:
        return self.currency_decimals.get(currency, self.default_currency_decimals)


_SIDE_BY_KIND: dict[MarketKind, dict[OrderSide, Side]] = {
    SPOT: {OrderSide.BUY: BUY, OrderSide.SELL: SELL},
    PERP: {
        OrderSide.BUY: BUY,
        OrderSide.SELL: SELL,
        OrderSide.LONG: BUY,
        OrderSide.SHORT: SELL,
    },
    BINARY: {
        OrderSide.BUY: BUY,
        OrderSide.SELL: SELL,
        OrderSide.YES: BUY,
        OrderSide.NO: SELL,
    },
}


_TRIGGER_SOURCES = ((StopTrigger.LAST, 0), (StopTrigger.MARK, 1), (StopTrigger.BID_ASK, 2))
"""Each trigger source with its group in the stop lists (`markets.TRIGGER_RANK`)."""


def _fingerprint(command: cmds.PlaceOrder, trigger: StopTrigger | None) -> bytes:
    """What makes a repeated `client_order_id` "the same order": every parameter, decimals by value
    ("0.10" = "0.1") and the stop's effective trigger source. A short digest keeps the map small."""

    def number(value: object) -> str | None:
        if value is None:
            return None
        try:
            return str(parse_decimal(value, "value").normalize())
        except TradehallError:
            return str(value)

    fields = (
        str(command.side),
        str(command.type),
        number(command.quantity),
        number(command.price),
        number(command.stop_price),
        str(command.time_in_force),
        command.expire_at,
        bool(command.post_only),
        bool(command.reduce_only),
        None if trigger is None else str(trigger),
        number(command.take_profit),
        number(command.stop_loss),
    )
    return hashlib.blake2b(msgspec.msgpack.encode(fields), digest_size=8).digest()


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
        self.client_order_fingerprints: dict[tuple[str, str], bytes] = {}
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
            cmds.SetLeverage: self._set_leverage,
            cmds.ApplyFunding: self._apply_funding,
            cmds.Configure: self._configure,
        }
        self._next_reset: int | None = None
        self._spot_index: dict[tuple[str, str], Market] = {}
        self._spot_index_size = -1

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
                        reject_reason=error.reason,
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
        """Check the accounts the command touched, then emit its summaries: balances, positions, books."""
        events = self._events
        self._evaluate_touched()
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
        if kind is SYSTEM_KIND:
            raise invalid_request("system accounts are opened by the engine")
        tier = None
        if kind is AccountKind.ASSESSMENT:
            tier = self.config.tiers.get(command.tier or "")
            if tier is None:
                raise invalid_request(f"unknown tier {command.tier!r}")
        elif command.tier is not None:
            raise invalid_request("only assessment accounts have a tier")
        account = Account(
            command.account_id,
            command.owner,
            kind,
            tier.currency if tier is not None else command.currency,
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
        if tier is not None:
            state = AssessmentState(tier, self.config.decimals(tier.currency), tier_day_index(tier, self.now))
            account.assessment = state
            external = self.ledger.system_account(SYSTEM_EXTERNAL, tier.currency)
            self.ledger.transfer(external, account, tier.currency, state.initial)
            self._emit_assessment(account, state.initial)
            self._schedule_resets()

    def _money(self, minor: int, currency: str, bare: bool = False) -> str:
        """An amount for a message, in the currency's units ("3,030.00 USD"; `bare`: "3,030.00")."""
        text = format_money(minor, currency, self.config.decimals(currency))
        return text.rsplit(" ", 1)[0] if bare else text

    def _trader(self, account_id: str) -> Account:
        account = self.accounts.get(account_id)
        if account is None or account.kind is SYSTEM_KIND:
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
            raise TradehallError(
                Code.INSUFFICIENT_BALANCE,
                f"the withdrawal needs {self._money(minor, currency)}, "
                f"{self._money(account.available(currency), currency, bare=True)} available",
            )
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
        if spec.status not in (MARKET_OPEN, MarketStatus.HALTED, MarketStatus.CLOSED):
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
        if status not in (MARKET_OPEN, MarketStatus.HALTED, MarketStatus.CLOSED):
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
        if status is MARKET_OPEN:
            self._trigger_stops(market)  # prices may have passed stops while it was halted

    def _mark_price(self, command: cmds.MarkPrice) -> None:
        market = self._market(command.market)
        price = self._price(market, command.price, "price")
        self._check_mark_band(market, price)
        market.mark_price = price
        self._events.append(MarkPriceUpdated(market=market.symbol, price=price, ts=self.now))
        self._mark_to_market(market)
        self._trigger_stops(market)

    @staticmethod
    def _check_mark_band(market: Market, mark: int) -> None:
        """A book market's mark must lie within `mark_band` of its book while the book has both sides
        (one bad tick must not decide an account); with an empty or one-sided book there is no band."""
        if market.venue is not BOOK_VENUE:
            return
        bid, ask = market.book.best_bid(), market.book.best_ask()
        if bid is None or ask is None:
            return
        band = market.mark_band_ppm
        if bid * (PPM - band) <= mark * PPM <= ask * (PPM + band):
            return
        spec = market.spec
        low = decimal_of(bid, spec.tick_size) * (1 - spec.mark_band)
        high = decimal_of(ask, spec.tick_size) * (1 + spec.mark_band)
        raise invalid_request(
            f"mark {decimal_str(decimal_of(mark, spec.tick_size))} is outside the band "
            f"[{decimal_str(low.normalize())}, {decimal_str(high.normalize())}]: "
            f"{decimal_str((spec.mark_band * 100).normalize())} % beyond the book's bid and ask"
        )

    def _price(self, market: Market, value: object, what: str) -> int:
        price = market.ticks_of(value, what)
        if price <= 0:
            raise invalid_order(f"{what} must be positive")
        if market.kind is BINARY and price >= market.payout_ticks:
            raise invalid_order(f"{what} of a binary market must be between 0 and 1 exclusive")
        return price

    # --- orders: validation --------------------------------------------------------------

    def _place_order(self, command: cmds.PlaceOrder) -> None:
        market = self._market(command.market)
        account = self._trader(command.account_id)
        key: tuple[str, str] | None = None
        fingerprint = b""
        if command.client_order_id is not None:
            if not command.client_order_id or len(command.client_order_id) > 64:
                raise invalid_order("client_order_id must be 1 to 64 characters")
            key = (account.account_id, command.client_order_id)
            fingerprint = _fingerprint(command, self._stated_trigger(market, command))
            original = self.client_order_ids.get(key)
            if original is not None:
                if self.client_order_fingerprints.get(key, fingerprint) != fingerprint:
                    raise TradehallError(
                        Code.CONFLICT,
                        f"client_order_id {command.client_order_id!r} belongs to order {original},"
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
        if order_type in (LIMIT_ORDER, STOP_LIMIT_ORDER):
            if command.price is None:
                raise invalid_order(f"a {order_type} order needs a price")
            price = self._order_price(market, requested_side, command.price, "price")
        elif command.price is not None:
            raise invalid_order(f"a {order_type} order takes no price")
        if order_type in (STOP_ORDER, STOP_LIMIT_ORDER):
            if command.stop_price is None:
                raise invalid_order(f"a {order_type} order needs a stop_price")
            stop_price = self._order_price(market, requested_side, command.stop_price, "stop_price")
        elif command.stop_price is not None:
            raise invalid_order(f"a {order_type} order takes no stop_price")
        trigger = None
        if stop_price is not None:
            trigger = (
                self._default_trigger(market)
                if command.trigger is None
                else _enum(StopTrigger, command.trigger, "trigger")
            )
            self._refuse_triggering(market, requested_side, side, trigger, stop_price)
        elif command.trigger is not None:
            raise invalid_order("trigger is only for stop and stop_limit orders")
        tif = _enum(TimeInForce, command.time_in_force, "time_in_force")
        is_market = order_type in (MARKET_ORDER, STOP_ORDER)
        if is_market:
            if tif in (DAY, GTD):
                raise invalid_order("a market order cannot rest; use ioc, fok or gtc")
            if tif is GTC:
                tif = IOC
        expire_at = None
        if tif is GTD:
            if command.expire_at is None or command.expire_at <= self.now:
                raise invalid_order("a gtd order needs expire_at in the future")
            expire_at = command.expire_at
        elif command.expire_at is not None:
            raise invalid_order("expire_at is only for gtd orders")
        elif tif is DAY:
            expire_at = (self.now // DAY_NS + 1) * DAY_NS
        if command.post_only and (order_type is not LIMIT_ORDER or tif in (IOC, FOK)):
            raise invalid_order("post_only is for limit orders that may rest")
        if command.reduce_only and market.kind is SPOT:
            raise invalid_order("reduce_only is for perp and binary markets")
        if command.post_only and price is not None and self._would_cross(market, side, price):
            raise invalid_order("post_only order would take liquidity", CancelReason.POST_ONLY)
        if account.trading_state is TRADING_REDUCING and not command.reduce_only:
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
            trigger=trigger,
            updated_ts=self.now,
        )
        if command.stop_loss is not None:
            order.stop_loss = self._order_price(market, requested_side, command.stop_loss, "stop_loss")
        if order_type in (STOP_ORDER, STOP_LIMIT_ORDER):
            order.status = PENDING_TRIGGER
        if market.venue is QUOTE_VENUE:
            self._check_quote_fresh(market)
        limit, lots = self._taking_terms(market, order)
        self._compute_hold(order, account, market, limit, lots)
        self._check_risk(order, account, market, limit)
        self._accept(order, account, market, limit)
        if key is not None:
            self.client_order_fingerprints[key] = fingerprint

    @staticmethod
    def _default_trigger(market: Market) -> StopTrigger:
        return TRIGGER_BID_ASK if market.venue is QUOTE_VENUE else TRIGGER_LAST

    def _stated_trigger(self, market: Market, command: cmds.PlaceOrder) -> StopTrigger | None:
        """The trigger source a placement asks for, the venue's default for a stop (not yet checked)."""
        if command.trigger is not None:
            return command.trigger
        if command.type in (STOP_ORDER, STOP_LIMIT_ORDER):
            return self._default_trigger(market)
        return None

    @staticmethod
    def _trigger_price(market: Market, trigger: StopTrigger | None, side: Side) -> int | None:
        """The price a stop watches now (None: its source has no price yet, so it waits)."""
        if trigger is TRIGGER_LAST:
            return market.last_price
        if trigger is TRIGGER_MARK:
            return mark_of(market)
        return market.best_ask() if side is BUY else market.best_bid()

    def _refuse_triggering(
        self, market: Market, requested: OrderSide, side: Side, trigger: StopTrigger, stop: int
    ) -> None:
        """Binance's rule: a stop whose trigger source is already at or through it is refused, not
        fired at once at whatever the book holds (raises, changes nothing)."""
        reference = self._trigger_price(market, trigger, side)
        if reference is None or (stop > reference if side is BUY else stop < reference):
            return
        no = requested is OrderSide.NO  # shown in NO prices, as entered: a NO stop fires as NO rises
        if no:
            stop, reference = market.payout_ticks - stop, market.payout_ticks - reference
        rises = side is BUY or no
        source = {TRIGGER_LAST: "last trade price", TRIGGER_MARK: "mark price"}.get(
            trigger, "best ask" if rises else "best bid"
        )
        tick = market.spec.tick_size
        raise invalid_order(
            f"a {requested} stop at {decimal_str(decimal_of(stop, tick))} would trigger immediately: the"
            f" {source} is {decimal_str(decimal_of(reference, tick))}, already at or"
            f" {'above' if rises else 'below'} it",
            CancelReason.WOULD_TRIGGER,
        )

    @staticmethod
    def _would_cross(market: Market, side: Side, price: int) -> bool:
        if market.venue is BOOK_VENUE:
            return market.book.would_cross(side, price)
        if side is BUY:
            best = market.best_ask()
            return best is not None and price >= best
        best = market.best_bid()
        return best is not None and price <= best

    def _order_price(self, market: Market, requested: OrderSide, value: object, what: str) -> int:
        price = self._price(market, value, what)
        if requested is OrderSide.NO:
            return market.payout_ticks - price  # a NO at q is a YES sell at 1 - q
        return price

    def _compute_hold(
        self, order: Order, account: Account, market: Market, limit: int | None, lots: int | None = None
    ) -> None:
        """Set the order's hold terms and check the account can afford them (raises, changes nothing).

        `lots`: hold for only that many (a market order's fillable part)."""
        kind = market.kind
        side = order.side
        spec = market.spec
        quantity = order.remaining if lots is None else min(lots, order.remaining)
        if order.status is PENDING_TRIGGER and order.type is STOP_ORDER:
            order.hold_currency = spec.quote
            return  # a stop market order is checked when it triggers, at the prices of that moment
        if kind is SPOT:
            order.hold_currency = spec.quote if side is BUY else spec.base
        else:
            order.hold_currency = spec.quote
            position = market.positions.get(account.account_id)
            free = 0
            if position is not None:
                if side is SELL:
                    free = max(0, position.quantity - position.reserved_sell)
                else:
                    free = max(0, -position.quantity - position.reserved_buy)
            order.covered = min(quantity, free)
            if order.reduce_only and order.covered < quantity:
                raise invalid_order("reduce_only order would increase the position", CancelReason.REDUCE_ONLY)
        order.hold = self._hold_amount(
            market, side, limit, quantity, order.covered, self._im_ppm(account, market)
        )
        need = order.hold
        if need > account.available(order.hold_currency):
            raise TradehallError(
                Code.INSUFFICIENT_BALANCE,
                f"the order needs {self._money(need, order.hold_currency)}, "
                f"{self._money(account.available(order.hold_currency), order.hold_currency, bare=True)}"
                " available",
            )

    @staticmethod
    def _im_ppm(account: Account, market: Market) -> int:
        """The account's initial margin rate on a perp market: the market's, or higher by its leverage."""
        return max(market.initial_margin_ppm, account.leverage.get(market.symbol, 0))

    @staticmethod
    def _hold_amount(
        market: Market, side: Side, limit: int | None, quantity: int, covered: int, im_ppm: int
    ) -> int:
        """The most `quantity` lots at `limit` can cost: cash or margin for the uncovered lots, plus fees."""
        if market.kind is SPOT and side is SELL:
            return quantity * market.base_per_lot
        if limit is None:
            return 0
        worst = limit
        if side is SELL:  # a selling taker fills at bids up to the best one
            best_bid = market.best_bid()
            if best_bid is not None and best_bid > worst:
                worst = best_bid
        opening = quantity - covered
        if market.kind is SPOT:
            cash = market.notional.ceil(limit * quantity)
        elif market.kind is PERP:
            # +1: the position's margin is rounded up once more when the fills join it
            cash = market.margin_of(worst * opening, im_ppm) + 1 if opening else 0
        elif side is BUY:
            cash = market.notional.ceil(limit * opening)
        else:
            cash = market.notional.ceil((market.payout_ticks - limit) * opening)
        return cash + market.fee_bound(quantity, worst)

    # --- orders: changes -----------------------------------------------------------------

    def _accept(self, order: Order, account: Account, market: Market, limit: int | None) -> None:
        self.next_order_id += 1
        if order.client_order_id is not None:
            self.client_order_ids[(account.account_id, order.client_order_id)] = order.order_id
        self._events.append(self._accepted(order))
        self._take_hold(order, account, market)
        if order.status is PENDING_TRIGGER:
            self._register(order, account)
            (market.stops_buy if order.side is BUY else market.stops_sell).add(order)
        else:
            self._execute(order, account, market, limit)
            self._trigger_stops(market)
        self._emit_book_changes(market)

    def _accepted(self, order: Order) -> OrderAccepted:
        order.updated_ts = self.now
        return OrderAccepted(
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
            trigger=order.trigger,
        )

    def _take_hold(self, order: Order, account: Account, market: Market) -> None:
        self.ledger.adjust_held(account, order.hold_currency, order.hold)
        if order.covered and market.kind is not SPOT:
            position = self._position(market, account)
            if order.side is SELL:
                position.reserved_sell += order.covered
            else:
                position.reserved_buy += order.covered

    def _release_hold(self, order: Order, account: Account, market: Market) -> None:
        self.ledger.adjust_held(account, order.hold_currency, -order.hold)
        order.hold = 0
        if order.covered:
            position = market.positions[account.account_id]
            if order.side is SELL:
                position.reserved_sell -= order.covered
            else:
                position.reserved_buy -= order.covered
            order.covered = 0

    @staticmethod
    def _position(market: Market, account: Account) -> Position:
        position = market.positions.get(account.account_id)
        if position is None:
            position = market.position(account.account_id, account.cost_basis)
            account.positions[market.symbol] = position
        return position

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
        if market.venue is QUOTE_VENUE:
            self._execute_on_quote(order, account, market, limit)
            return
        book = market.book
        tif = order.time_in_force
        if tif is FOK and (
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
        if fills and market.kind is not SPOT:
            self._rebalance_reservations(
                market, {maker.account_id for maker, _, _ in fills} | {account.account_id}
            )
        if remaining == 0:
            return
        if taker_stopped:
            self._close(order, account, market, CancelReason.SELF_TRADE)
        else:
            self._rest_or_close(order, account, market, limit, bool(fills))

    def _rest_or_close(
        self, order: Order, account: Account, market: Market, limit: int | None, filled: bool
    ) -> None:
        """After taking: a market or IOC/FOK rest is cancelled; a limit rests (book or paper list)."""
        tif = order.time_in_force
        if order.type is MARKET_ORDER or order.type is STOP_ORDER:
            cut = market.protection_ppm is not None and self._liquidity_left(market, order.side)
            reason = CancelReason.PRICE_PROTECTION if cut else CancelReason.MARKET_REMAINDER
            self._close(order, account, market, reason)
        elif tif is IOC or tif is FOK:
            self._close(order, account, market, CancelReason.IOC_REMAINDER)
        else:
            if limit is not None and filled and order.hold:
                # price improvement while taking: hold only what the resting rest can still cost
                tight = self._hold_amount(
                    market, order.side, limit, order.remaining, order.covered, self._im_ppm(account, market)
                )
                if tight < order.hold:
                    self.ledger.adjust_held(account, order.hold_currency, tight - order.hold)
                    order.hold = tight
            self._priority += 1
            order.priority = self._priority
            if market.venue is QUOTE_VENUE:
                (market.paper_bids if order.side is BUY else market.paper_asks).add(order)
                order.in_book = True
            else:
                market.book.add(order)
            if order.order_id not in self.orders:
                self._register(order, account)

    def _close(self, order: Order, account: Account, market: Market, reason: CancelReason) -> None:
        """End an order that is not (or no longer) in the book: release its hold, emit the cancel."""
        self._release_hold(order, account, market)
        order.status = CANCELLED
        order.cancel_reason = reason
        order.updated_ts = self.now
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
        if in_book:
            self._unrest(order, market)
        self._close(order, self.accounts[order.account_id], market, reason)

    @staticmethod
    def _unrest(order: Order, market: Market) -> None:
        """Take an open order out of wherever it waits: book, paper list, latency queue or stops."""
        if order.status is PENDING_TRIGGER:
            (market.stops_buy if order.side is BUY else market.stops_sell).remove(order)
        elif order.in_book:
            if market.venue is QUOTE_VENUE:
                (market.paper_bids if order.side is BUY else market.paper_asks).remove(order)
                order.in_book = False
            else:
                market.book.remove(order)
        elif order in market.delayed:
            market.delayed.remove(order)

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
        if market.kind is SPOT:
            buyer, seller = (
                (taker_account, maker_account) if taker.side is BUY else (maker_account, taker_account)
            )
            self.ledger.transfer(buyer, seller, market.spec.quote, notional)
            self.ledger.transfer(seller, buyer, market.spec.base, quantity * market.base_per_lot)
        self._fill_side(market, maker, maker_account, quantity, price, notional, trade_id, MAKER)
        self._fill_side(market, taker, taker_account, quantity, price, notional, trade_id, TAKER)

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
        if liquidity is TAKER:
            order.remaining -= quantity  # a maker's remaining was already lowered by its book
        position = self._position(market, account)
        used = order.covered if order.covered < quantity else quantity
        if used:
            order.covered -= used
            if order.side is SELL:
                position.reserved_sell -= used
            else:
                position.reserved_buy -= used
        accrued = order.fee_accrued
        ppm = market.maker_ppm if liquidity is MAKER else market.taker_ppm
        if account.kind is SYSTEM_KIND or order.fee_exempt:
            ppm = 0  # the venue or the insurance fund taking the other side, or a liquidation
        order.fee_accrued = accrued + market.fee_numerator(notional, quantity, price, ppm)
        denominator = market.fee_denominator
        fee = ceil_div(order.fee_accrued, denominator) - ceil_div(accrued, denominator)
        delta = quantity if order.side is BUY else -quantity
        if kind is SPOT and delta < 0:
            # holdings that were deposited rather than bought have no cost basis
            delta = -min(quantity, max(position.quantity, 0))
        before = position.quantity
        closed, realized_ticks = position.change(delta, price, account.cost_basis) if delta else (0, 0)
        if kind is PERP and (before == 0) != (position.quantity == 0):
            account.open_perps += 1 if before == 0 else -1
        realized = market.notional.round(realized_ticks) if realized_ticks else 0
        position.realized += realized
        self._dirty_positions[(account.account_id, market.symbol)] = position
        consumed = fee
        if kind is SPOT:
            consumed = notional + fee if order.side is BUY else quantity * market.base_per_lot
        elif kind is PERP:
            margin_before = position.margin
            position.margin = market.margin_of(position.cost, self._im_ppm(account, market))
            margin_change = position.margin - margin_before
            if margin_change > 0:
                consumed += margin_change
            ledger.adjust_held(account, quote, margin_change)
        else:
            pool = ledger.system_account(market.collateral_id, quote)
            closing_price = market.payout_ticks - price if order.side is BUY else price
            opening_price = price if order.side is BUY else market.payout_ticks - price
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
        if realized and kind is PERP:  # after the fee, so a loss floors the balance at zero
            self._settle_pnl(account, quote, realized)
        order.filled += quantity
        order.fills_notional += price * quantity
        order.fees_paid += fee
        order.updated_ts = self.now
        if order.remaining == 0:
            order.status = FILLED
            if order.hold:  # the bound's slack: what the fills did not consume
                ledger.adjust_held(account, order.hold_currency, -order.hold)
                order.hold = 0
            if order.order_id in self.orders:
                self._unregister(order, account)
        else:
            order.status = PARTIALLY_FILLED
        if account.assessment is not None and abs(position.quantity) > abs(before):
            account.assessment.count_trading_day(self._tier_day(account))
        if order.order_id == 0:
            return  # the venue's side of a paper fill is not an order of anyone's
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
                origin=order.origin,
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
        """Fire the stops whose trigger source has reached them (inclusive: >= for buys, <= for
        sells), in order-id order, in the same command as the change that moved the price; again
        while the fired stops move a price further. Only an open market fires stops."""
        stops_buy, stops_sell = market.stops_buy, market.stops_sell
        while (stops_buy or stops_sell) and market.status is MARKET_OPEN:
            triggered: list[Order] = []
            for trigger, rank in _TRIGGER_SOURCES:
                if stops_buy:
                    price = self._trigger_price(market, trigger, BUY)
                    if price is not None:
                        triggered.extend(
                            stops_buy.irange_key((rank,), (rank, price + 1), inclusive=(True, False))
                        )
                if stops_sell:
                    price = self._trigger_price(market, trigger, SELL)
                    if price is not None:
                        triggered.extend(
                            stops_sell.irange_key((rank, price), (rank + 1,), inclusive=(True, False))
                        )
            if not triggered:
                return
            triggered.sort(key=lambda o: o.order_id)
            for order in triggered:
                (stops_buy if order.side is BUY else stops_sell).remove(order)
            for order in triggered:
                self._fire_stop(order, market)

    def _fire_stop(self, order: Order, market: Market) -> None:
        account = self.accounts[order.account_id]
        self._release_hold(order, account, market)
        order.status = OPEN
        order.updated_ts = self.now
        self._events.append(
            OrderTriggered(
                order_id=order.order_id, account_id=order.account_id, market=order.market, ts=self.now
            )
        )
        limit, lots = self._taking_terms(market, order)
        try:
            self._compute_hold(order, account, market, limit, lots)
        except TradehallError as error:
            order.covered = 0
            order.hold = 0
            self._close(order, account, market, error.reason or CancelReason.UNFUNDED)
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
        market = self.markets[order.market]
        self._cancel(order, market, CancelReason.USER)
        self._trigger_stops(market)  # a cancel can move the touch that bid_ask stops watch
        self._emit_book_changes(market)

    def _cancel_all(self, command: cmds.CancelAll) -> None:
        account = self._trader(command.account_id)
        if command.market is not None:
            self._market(command.market)
        touched: set[str] = set()
        for order in sorted(account.open_orders.values(), key=lambda o: o.order_id):  # type: ignore[attr-defined]
            assert isinstance(order, Order)
            if command.market is None or order.market == command.market:
                self._cancel(order, self.markets[order.market], CancelReason.USER)
                touched.add(order.market)
        for symbol in sorted(touched):
            self._trigger_stops(self.markets[symbol])

    def _amend_order(self, command: cmds.AmendOrder) -> None:
        order = self._owned_order(command.order_id, command.account_id)
        market = self.markets[order.market]
        account = self.accounts[order.account_id]
        if not market.open_for_orders:
            raise TradehallError(Code.MARKET_CLOSED, f"market {market.symbol} is {market.status}")
        if command.price is None and command.quantity is None and command.stop_price is None:
            raise invalid_order("an amend needs a price, a quantity or a stop_price")
        if order.status is PENDING_TRIGGER:
            self._amend_stop(order, account, market, command)
            return
        if command.stop_price is not None:
            if order.type is STOP_ORDER or order.type is STOP_LIMIT_ORDER:
                raise TradehallError(
                    Code.CONFLICT, f"order {order.order_id} has triggered: its stop_price no longer moves"
                )
            raise invalid_order(f"a {order.type} order has no stop_price")
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
            self._unrest(order, market)
            self._close(order, account, market, CancelReason.AMENDED_TO_FILLED)
            self._trigger_stops(market)
            self._emit_book_changes(market)
            return
        new_remaining = new_quantity - order.filled
        if new_price == order.price and new_remaining <= order.remaining:
            released_cover = max(0, order.covered - new_remaining)
            if market.venue is QUOTE_VENUE or not order.in_book:
                order.remaining = new_remaining
            else:
                market.book.reduce(order, new_remaining)
            order.covered -= released_cover
            self._adjust_reservation(order, market, -released_cover)
            order.quantity = new_quantity
            new_hold = min(
                order.hold,
                self._hold_amount(
                    market,
                    order.side,
                    order.price,
                    new_remaining,
                    order.covered,
                    self._im_ppm(account, market),
                ),
            )
            self.ledger.adjust_held(account, order.hold_currency, new_hold - order.hold)
            order.hold = new_hold
            order.updated_ts = self.now
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
        if order.post_only and self._would_cross(market, order.side, new_price):
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
        self._unrest(order, market)
        self._release_hold(order, account, market)
        trial.stop_price = order.stop_price
        trial.trigger = order.trigger
        trial.updated_ts = self.now
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

    def _amend_stop(self, order: Order, account: Account, market: Market, command: cmds.AmendOrder) -> None:
        """An untriggered stop takes a new stop price, limit price (stop-limit) or quantity and keeps
        waiting; a stop price its trigger source has already reached is refused like at placement."""
        if command.price is not None and order.type is STOP_ORDER:
            raise invalid_order("a stop order takes no price; amend its stop_price")
        assert order.stop_price is not None
        stop_price = order.stop_price
        if command.stop_price is not None:
            stop_price = self._order_price(market, order.requested_side, command.stop_price, "stop_price")
        price = order.price
        if command.price is not None:
            price = self._order_price(market, order.requested_side, command.price, "price")
        quantity = order.quantity
        if command.quantity is not None:
            quantity = units_of(parse_decimal(command.quantity, "quantity"), market.spec.lot_size, "quantity")
            if quantity <= 0:
                raise invalid_order("quantity must be positive")
            if quantity < market.min_lots:
                raise invalid_order(f"quantity is below the minimum {market.spec.min_quantity}")
            if market.max_lots is not None and quantity > market.max_lots:
                raise invalid_order(f"quantity is above the maximum {market.spec.max_quantity}")
        assert order.trigger is not None
        self._refuse_triggering(market, order.requested_side, order.side, order.trigger, stop_price)
        trial = msgspec.structs.replace(
            order, price=price, stop_price=stop_price, quantity=quantity, remaining=quantity
        )
        trial.hold = trial.covered = 0
        self._check_replacement(trial, order, account, market)
        stops = market.stops_buy if order.side is BUY else market.stops_sell
        stops.remove(order)  # its sort key changes
        self._release_hold(order, account, market)
        order.price, order.stop_price, order.quantity, order.remaining = price, stop_price, quantity, quantity
        order.hold, order.covered = trial.hold, trial.covered
        self._take_hold(order, account, market)
        stops.add(order)
        order.updated_ts = self.now
        self._events.append(
            OrderAmended(
                order_id=order.order_id,
                account_id=order.account_id,
                market=market.symbol,
                price=price,
                quantity=quantity,
                priority_lost=False,
                ts=self.now,
                stop_price=stop_price,
            )
        )

    def _rebalance_reservations(self, market: Market, account_ids: set[str]) -> None:
        """A position shrunk by an uncovered fill can no longer back every covered lot: the newest
        covering orders lose their cover and hold for opening instead, or are cancelled if unfunded."""
        for account_id in sorted(account_ids):
            position = market.positions.get(account_id)
            if position is None or account_id.startswith("system:"):
                continue
            excess_sell = position.reserved_sell - max(position.quantity, 0)
            excess_buy = position.reserved_buy - max(-position.quantity, 0)
            if excess_sell <= 0 and excess_buy <= 0:
                continue
            account = self.accounts[account_id]
            orders = sorted(
                (
                    o
                    for o in account.open_orders.values()
                    if isinstance(o, Order) and o.market == market.symbol
                ),
                key=lambda o: -o.order_id,
            )
            for order in orders:
                excess = excess_sell if order.side is SELL else excess_buy
                if excess <= 0 or order.covered == 0:
                    continue
                lots = min(order.covered, excess)
                if order.side is SELL:
                    excess_sell -= lots
                else:
                    excess_buy -= lots
                self._adjust_reservation(order, market, -lots)
                order.covered -= lots
                if order.reduce_only:
                    self._cancel(order, market, CancelReason.REDUCE_ONLY)
                    continue
                limit = order.price if order.status is not PENDING_TRIGGER else None
                need = self._hold_amount(
                    market, order.side, limit, order.remaining, order.covered, self._im_ppm(account, market)
                )
                extra = max(0, need - order.hold)
                if extra > account.available(order.hold_currency):
                    self._cancel(order, market, CancelReason.UNFUNDED)
                    continue
                self.ledger.adjust_held(account, order.hold_currency, extra)
                order.hold += extra

    def _adjust_reservation(self, order: Order, market: Market, lots: int) -> None:
        if lots == 0:
            return
        position = market.positions[order.account_id]
        if order.side is SELL:
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
            if order.side is SELL:
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
        expired_in: set[str] = set()
        while expiries and expiries[0][0] <= self.now:
            _, order_id = heappop(expiries)
            order = self.orders.get(order_id)
            if order is None or order.expire_at is None or order.expire_at > self.now:
                continue
            market = self.markets[order.market]
            self._unrest(order, market)
            account = self.accounts[order.account_id]
            self._release_hold(order, account, market)
            order.status = EXPIRED
            order.cancel_reason = CancelReason.EXPIRED
            order.updated_ts = self.now
            expired_in.add(market.symbol)
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
        for symbol in sorted(expired_in):  # an expiry can move the touch that bid_ask stops watch
            self._trigger_stops(self.markets[symbol])
        for market in self.markets.values():
            close_time = market.spec.close_time
            if (
                close_time is not None
                and close_time <= self.now
                and market.status in (MARKET_OPEN, MarketStatus.HALTED)
            ):
                self._change_market_status(market, MarketStatus.CLOSED)
        if self._next_reset is not None and self.now >= self._next_reset:
            self._daily_resets()
        for symbol in sorted(self.markets):
            market = self.markets[symbol]
            if market.delayed and market.status is MARKET_OPEN:
                self._quote_venue_tick(market)
            interval = market.funding_interval_ns
            if not interval or not market.funding_rate_ppm or mark_of(market) is None:
                continue
            if market.next_funding_ts is None:
                market.next_funding_ts = (self.now // interval + 1) * interval
                continue
            if self.now >= market.next_funding_ts:
                self._pay_funding(market, market.funding_rate_ppm)  # once, however many intervals passed
                market.next_funding_ts = (self.now // interval + 1) * interval

    # --- binary settlement ---------------------------------------------------------------

    def _binary_market(self, symbol: str) -> Market:
        market = self._market(symbol)
        if market.kind is not BINARY:
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
        """Polymarket's 50-50 resolution: every YES and every NO contract pays half the payout.

        Every open pair put exactly 1.00 into the collateral account, so half a payout per contract on
        each side sums to what it holds; each payout is rounded down to the minor unit (a half unit when
        a contract's payout is odd) and that residue goes to `system:fees`, leaving the collateral at
        zero. Fees are not refunded. Cash a trader took out by selling stays theirs: nothing is clawed
        back, so no balance can go negative."""
        market = self._binary_market(command.market)
        quote = market.spec.quote
        pool = self.ledger.system_account(market.collateral_id, quote)
        payout_ticks = market.payout_ticks
        notional = market.notional
        refunds = [
            (account_id, notional.floor(abs(position.quantity) * payout_ticks) // 2)
            for account_id, position in sorted(market.positions.items())
            if position.quantity
        ]
        if sum(amount for _, amount in refunds) > pool.balance(quote).total:  # pragma: no cover
            raise TradehallError(Code.CONFLICT, f"the collateral of {market.symbol} does not cover its void")
        self._change_market_status(market, MarketStatus.CANCELLED)  # cancels its orders, releases holds
        for account_id, amount in refunds:
            position = market.positions[account_id]
            self.ledger.transfer(pool, self.accounts[account_id], quote, amount)
            # closed at half the payout: the P&L of the position's life, floored like its payout
            position.realized += notional.floor(position.quantity * payout_ticks - 2 * position.cost) // 2
            position.quantity = 0
            position.cost = 0
            if position.lots is not None:
                position.lots.clear()
            self._dirty_positions[(account_id, market.symbol)] = position
        residue = pool.balance(quote).total
        self.ledger.transfer(pool, self.ledger.system_account(SYSTEM_FEES, quote), quote, residue)
        self._events.append(MarketVoided(market=market.symbol, refunds=tuple(refunds), ts=self.now))

    # --- quote venue -----------------------------------------------------------------------

    def _check_quote_fresh(self, market: Market) -> None:
        if market.quote_ts is None:
            raise TradehallError(Code.MARKET_DATA_UNAVAILABLE, f"no quote for {market.symbol} yet")
        max_age = market.quote_max_age_ns
        if max_age is None:
            max_age = self.config.quote_max_age_ms * 1_000_000
        if self.now - market.quote_ts > max_age:
            raise TradehallError(Code.MARKET_DATA_UNAVAILABLE, f"the quote for {market.symbol} is stale")

    def _taking_terms(self, market: Market, order: Order) -> tuple[int | None, int | None]:
        """(price bound, lots) to hold for: a limit's price; for a market order its worst fill and the
        lots that can fill now within its price protection (the rest is cancelled at once, so it
        holds nothing)."""
        if order.type is LIMIT_ORDER or order.type is STOP_LIMIT_ORDER:
            return order.price, None
        if order.status is PENDING_TRIGGER:
            return None, None
        band = market.protection_limit(order.side)
        if market.venue is QUOTE_VENUE:
            plan = plan_fills(market, order.side, order.remaining, band)
            if not plan:
                return None, 0
            prices = [price for _, price, _ in plan]
            best_case = max(prices) if order.side is BUY else min(prices)
            return best_case, sum(taken for _, _, taken in plan)
        fillable, worst = market.book.fillable(
            order.side, band, order.remaining, order.account_id, market.stp
        )
        return worst, fillable

    @staticmethod
    def _liquidity_left(market: Market, side: Side) -> bool:
        """Whether the opposite side still offers something after a market order took what it could
        (then its price protection, not the book, stopped it)."""
        if market.venue is QUOTE_VENUE:
            levels = market.quote_asks if side is BUY else market.quote_bids
            return any(size is None or size > 0 for _, size in levels)
        return (market.book.best_ask() if side is BUY else market.book.best_bid()) is not None

    def _execute_on_quote(self, order: Order, account: Account, market: Market, limit: int | None) -> None:
        """Fill against the external quote now (or after the market's latency), then rest or close."""
        if (
            market.latency_ns
            and order not in market.delayed
            and order.created_ts + market.latency_ns > self.now
        ):
            market.delayed.append(order)
            if order.order_id not in self.orders:
                self._register(order, account)
            return
        plan = plan_fills(
            market,
            order.side,
            order.remaining,
            limit if order.type is not MARKET_ORDER else market.protection_limit(order.side),
        )
        if order.time_in_force is FOK and sum(lots for _, _, lots in plan) < order.remaining:
            self._close(order, account, market, CancelReason.FOK_UNFILLED)
            return
        for index, price, lots in plan:
            consume(market, order.side, index, lots)
            self._venue_fill(market, order, account, lots, price, SYSTEM_VENUE)
        if plan and market.kind is not SPOT:
            self._rebalance_reservations(market, {account.account_id})
        if order.remaining:
            self._rest_or_close(order, account, market, limit, bool(plan))

    def _venue_fill(
        self, market: Market, order: Order, account: Account, lots: int, price: int, counterparty: str
    ) -> None:
        """A fill against a system account (the venue, or the insurance fund taking a liquidation)."""
        other = Order(
            order_id=0,
            account_id=counterparty,
            market=market.symbol,
            side=SELL if order.side is BUY else BUY,
            requested_side=OrderSide.SELL if order.side is BUY else OrderSide.BUY,
            type=LIMIT_ORDER,
            time_in_force=GTC,
            price=price,
            stop_price=None,
            quantity=lots,
            remaining=0,
        )
        self.ledger.system_account(counterparty, market.spec.quote)
        self._settle_fill(market, other, order, account, lots, price)

    def _quote(self, command: cmds.Quote) -> None:
        market = self._market(command.market)
        bids = self._quote_levels(market, command.bids, command.bid, command.bid_size, "bid")
        asks = self._quote_levels(market, command.asks, command.ask, command.ask_size, "ask")
        bids.sort(key=lambda level: -level[0])
        asks.sort(key=lambda level: level[0])
        last = self._price(market, command.last, "last") if command.last is not None else None
        if bids and asks and bids[0][0] > asks[0][0]:
            raise invalid_request("a quote's bid is above its ask")
        if bids and asks:
            mark = (bids[0][0] + asks[0][0]) // 2
        elif last is not None:
            mark = last
        elif bids or asks:
            mark = (bids or asks)[0][0]
        else:
            raise invalid_request("a quote needs a bid, an ask or a last price")
        self._check_mark_band(market, mark)
        market.quote_bids, market.quote_asks = bids, asks
        market.quote_ts = self.now
        if last is not None and market.venue is QUOTE_VENUE:
            market.last_price = last
        market.mark_price = mark
        self._events.append(
            QuoteUpdated(
                market=market.symbol,
                bid=bids[0][0] if bids else None,
                ask=asks[0][0] if asks else None,
                last=last,
                source=command.source,
                ts=self.now,
            )
        )
        self._events.append(MarkPriceUpdated(market=market.symbol, price=mark, ts=self.now))
        if market.venue is QUOTE_VENUE and market.status is MARKET_OPEN:
            self._quote_venue_tick(market)
        self._mark_to_market(market)
        self._trigger_stops(market)  # mark stops; last stops after any close-out fills

    def _quote_levels(
        self, market: Market, levels: tuple[tuple[Any, Any], ...], top: Any, top_size: Any, what: str
    ) -> list[list[Any]]:
        """Quoted levels as [ticks, lots or None]; sizes are floored to whole lots (feeds quote any size)."""
        raw = list(levels) if levels else ([(top, top_size)] if top is not None else [])
        result: list[list[Any]] = []
        for price, size in raw:
            lots = None
            if size is not None:
                amount = parse_decimal(size, f"{what} size")
                if amount < 0:
                    raise invalid_request(f"a quoted {what} size is negative")
                lots = int(amount // market.spec.lot_size)
            result.append([self._price(market, price, what), lots])
        return result

    def _quote_venue_tick(self, market: Market) -> None:
        """A new quote: orders waiting for latency fill, resting paper limits it crosses, stops it reaches."""
        if market.delayed:
            due = [o for o in market.delayed if o.created_ts + market.latency_ns <= self.now]
            for order in due:
                market.delayed.remove(order)
                self._refill_hold_and_execute(order, market)
        for paper, side in ((market.paper_bids, BUY), (market.paper_asks, SELL)):
            while paper:
                order = paper[0]
                assert order.price is not None
                available = crossing_size(market, side, order.price)
                if available == 0:
                    break
                account = self.accounts[order.account_id]
                take = order.remaining if available is None else min(available, order.remaining)
                levels = market.quote_asks if side is BUY else market.quote_bids
                left = take
                for index, (quoted, size) in enumerate(levels):
                    if left == 0 or (quoted > order.price if side is BUY else quoted < order.price):
                        break
                    part = left if size is None else min(left, size)
                    if part:
                        consume(market, side, index, part)
                        left -= part
                if order.remaining == take:
                    paper.remove(order)
                    order.in_book = False
                self._venue_fill_resting(market, order, account, take)
                if market.kind is not SPOT:
                    self._rebalance_reservations(market, {account.account_id})
                if order.remaining:
                    break
        self._trigger_stops(market)

    def _venue_fill_resting(self, market: Market, order: Order, account: Account, lots: int) -> None:
        """A resting paper limit fills at its limit price, as the maker."""
        assert order.price is not None
        other_side = SELL if order.side is BUY else BUY
        taker = Order(
            order_id=0,
            account_id=SYSTEM_VENUE,
            market=market.symbol,
            side=other_side,
            requested_side=OrderSide(other_side.value),
            type=LIMIT_ORDER,
            time_in_force=IOC,
            price=order.price,
            stop_price=None,
            quantity=lots,
            remaining=lots,
        )
        venue = self.ledger.system_account(SYSTEM_VENUE, market.spec.quote)
        order.remaining -= lots  # as a book lowers its maker's remaining
        self._settle_fill(market, order, taker, venue, lots, order.price)

    def _refill_hold_and_execute(self, order: Order, market: Market) -> None:
        """An order whose execution was deferred re-checks its funds at the prices of now."""
        account = self.accounts[order.account_id]
        self._release_hold(order, account, market)
        limit, lots = self._taking_terms(market, order)
        try:
            self._compute_hold(order, account, market, limit, lots)
        except TradehallError:
            order.covered = 0
            order.hold = 0
            self._close(order, account, market, CancelReason.UNFUNDED)
            return
        self._take_hold(order, account, market)
        self._execute(order, account, market, limit)

    # --- margin, liquidation, assessments ---------------------------------------------------

    def _equity(self, account: Account) -> tuple[int, int]:
        """(equity, maintenance margin) in the account's currency, at the marks (`valuation`)."""
        valuation = value_account(account, self.markets, self.spot_market_for)
        return valuation.equity, valuation.maintenance

    def spot_market_for(self, asset: str, currency: str) -> Market | None:
        """The spot market that prices `asset` in `currency` (the first by symbol when several do).

        The index is rebuilt when a market was added (markets are never removed), so a restored
        engine needs nothing special."""
        if len(self.markets) != self._spot_index_size:
            index: dict[tuple[str, str], Market] = {}
            for symbol in sorted(self.markets, reverse=True):
                market = self.markets[symbol]
                if market.kind is SPOT:
                    index[(market.spec.base, market.spec.quote)] = market
            self._spot_index = index
            self._spot_index_size = len(self.markets)
        return self._spot_index.get((asset, currency))

    def _mark_to_market(self, market: Market) -> None:
        mark = mark_of(market)
        if mark is None:
            return
        if self.config.incremental_marks:
            account_ids = market.accounts_to_evaluate(mark)
        else:
            account_ids = sorted(a for a, p in market.positions.items() if p.quantity != 0)
        for account_id in account_ids:
            self._evaluate(self.accounts[account_id], on_mark=True)

    def _evaluate_touched(self) -> None:
        """After a command: every account whose balance or position changed is checked once, also
        those a close-out touched on the way (its fills against the book move other accounts)."""
        if not self._dirty_positions and not self.ledger.totals_changed:
            return  # only holds moved: equity is unchanged
        accounts = self.accounts
        evaluated: set[str] = set()
        while True:
            touched = {a for a, _ in self.ledger.pending_changes() if accounts[a].watched}
            touched.update(a for a, _ in self._dirty_positions if accounts[a].watched)
            touched -= evaluated
            if not touched:
                return
            for account_id in sorted(touched):
                evaluated.add(account_id)
                self._evaluate(accounts[account_id])

    def _evaluate(self, account: Account, on_mark: bool = False) -> None:
        """Liquidation and assessment rules on the account's equity now; then its mark intervals.

        Peak equity moves on every mark only where a rule trails it (intraday trailing); elsewhere it
        is taken at the account's own events (fills, transfers, daily resets), so that a mark touches
        only the accounts whose interval it leaves."""
        if account.kind is SYSTEM_KIND:
            return
        if account.assessment is None and not any(
            p.quantity and self.markets[s].kind is PERP for s, p in account.positions.items()
        ):
            for symbol in account.positions:  # no rule can fire: forget any interval left from before
                if account.account_id in self.markets[symbol].interval_of:
                    self.markets[symbol].set_interval(account.account_id, None)
            return
        equity, maintenance = self._equity(account)
        if maintenance and equity < maintenance:
            self._liquidate(account, equity, maintenance)
            equity, maintenance = self._equity(account)
        state = account.assessment
        if state is not None and account.status is ACCOUNT_ACTIVE:
            before = (state.peak_equity, state.total_floor)
            if not on_mark or state.trails_on_marks:
                state.observe_equity(equity)
            breach = state.breach(equity)
            if breach is not None:
                self._end_assessment(account, AccountStatus.FAILED, breach[0], equity, breach[1])
                equity, maintenance = self._equity(account)
            elif state.passes(equity):
                self._end_assessment(account, AccountStatus.PASSED, "profit_target", equity, state.target)
                equity, maintenance = self._equity(account)
            elif (state.peak_equity, state.total_floor) != before:
                self._emit_assessment(account, equity)
        self._update_intervals(account, equity, maintenance)

    def _update_intervals(self, account: Account, equity: int, maintenance: int) -> None:
        state = account.assessment
        lower = upper = None
        if state is not None and account.status is ACCOUNT_ACTIVE:
            lower = state.floor()
            if state.trading_days >= state.tier.min_trading_days:
                upper = state.target
            if state.trails_on_marks:
                upper = state.peak_equity if upper is None else min(upper, state.peak_equity)
        # what moves with each market's mark: a position's lots, or (spot) the holding of its base
        exposure: dict[str, tuple[Market, int, int, int]] = {}
        for symbol, position in account.positions.items():
            market = self.markets[symbol]
            lots = position.quantity if market.spec.quote == account.currency else 0
            if market.kind is SPOT:
                lots = 0  # valued as a holding, below
            exposure[symbol] = (market, lots, 1, maintenance - maintenance_of(market, position))
        for asset, balance in account.balances.items():
            if asset == account.currency or not balance.total:
                continue
            spot = self.spot_market_for(asset, account.currency)
            if spot is not None:
                exposure[spot.symbol] = (spot, balance.total, spot.base_per_lot, maintenance)
        for market, quantity, per_lot, other in exposure.values():
            if quantity == 0:
                if account.account_id in market.interval_of:
                    market.set_interval(account.account_id, None)
                continue
            interval = mark_interval(market, quantity, equity, lower, upper, other, per_lot)
            unbounded = interval == (UNBOUNDED_LOW, UNBOUNDED_HIGH)
            if not unbounded or account.account_id in market.interval_of:
                market.set_interval(account.account_id, None if unbounded else interval)

    def _liquidate(self, account: Account, equity: int, maintenance: int) -> None:
        """Equity below maintenance: cancel its perp orders, close every perp position at the mark."""
        for order in sorted(account.open_orders.values(), key=lambda o: o.order_id):  # type: ignore[attr-defined]
            assert isinstance(order, Order)
            market = self.markets[order.market]
            if market.kind is PERP:
                self._cancel(order, market, CancelReason.LIQUIDATION)
        for symbol in sorted(account.positions):
            position = account.positions[symbol]
            market = self.markets[symbol]
            price = mark_of(market)
            if market.kind is not PERP or position.quantity == 0 or price is None:
                continue
            insurance_before = (
                self.ledger.system_account(SYSTEM_INSURANCE, market.spec.quote)
                .balance(market.spec.quote)
                .total
            )
            quantity = position.quantity
            self._close_out(
                market,
                account,
                quantity,
                price,
                SYSTEM_INSURANCE,
                "liquidation",
                CancelReason.LIQUIDATION,
                fee_exempt=True,
            )
            insurance_after = self.accounts[SYSTEM_INSURANCE].balance(market.spec.quote).total
            self._events.append(
                PositionLiquidated(
                    account_id=account.account_id,
                    market=symbol,
                    quantity=quantity,
                    price=price,
                    equity=equity,
                    maintenance=maintenance,
                    insurance_paid=insurance_before - insurance_after,
                    ts=self.now,
                )
            )

    def _engine_order(
        self,
        market: Market,
        account: Account,
        quantity: int,
        price: int | None,
        counterparty: str | None,
        label: str,
        fee_exempt: bool = False,
    ) -> Order:
        """Close `quantity` signed lots of the account's position by an order the engine places itself:
        filled at once against `counterparty` at `price` (a quote venue), or (None) left to the caller."""
        side = SELL if quantity > 0 else BUY
        order = Order(
            order_id=self.next_order_id,
            account_id=account.account_id,
            market=market.symbol,
            side=side,
            requested_side=OrderSide(side.value),
            type=MARKET_ORDER,
            time_in_force=IOC,
            price=None,
            stop_price=None,
            quantity=abs(quantity),
            remaining=abs(quantity),
            client_order_id=f"{label}-{self.next_order_id}",
            reduce_only=True,
            fee_exempt=fee_exempt,
            created_ts=self.now,
            origin=FillOrigin.LIQUIDATION if label == "liquidation" else FillOrigin.ASSESSMENT_CLOSE,
            hold_currency=market.spec.quote if market.kind is not SPOT or side is BUY else market.spec.base,
        )
        self.next_order_id += 1
        self._events.append(self._accepted(order))
        if counterparty is not None and price is not None:
            self._venue_fill(market, order, account, abs(quantity), price, counterparty)
        return order

    def _close_out(
        self,
        market: Market,
        account: Account,
        quantity: int,
        price: int | None,
        counterparty: str,
        label: str,
        reason: CancelReason,
        fee_exempt: bool = False,
    ) -> None:
        """Close `quantity` signed lots of a position the engine ends (liquidation, assessment end).

        Quote venue: one paper fill against `counterparty` at `price`. Book venue: an IOC order that
        trades against the book no further than the protection band beyond the best opposite price;
        whatever the book cannot absorb there is taken over by the insurance fund at the mark, which
        is a transfer, not a trade (public trades and candles only ever show real matches)."""
        if market.venue is QUOTE_VENUE:
            if price is not None:
                self._engine_order(market, account, quantity, price, counterparty, label, fee_exempt)
            return
        order = self._engine_order(market, account, quantity, None, None, label, fee_exempt)
        limit = self._close_out_limit(market, order.side)
        if limit is not None:
            fills: list[Fill] = []
            stp_cancelled: list[Order] = []
            market.book.match(
                order.side, limit, order.remaining, account.account_id, market.stp, fills, stp_cancelled
            )
            for maker in stp_cancelled:
                self._cancel(maker, market, CancelReason.SELF_TRADE, in_book=False)
            for maker, lots, fill_price in fills:
                self._settle_fill(market, maker, order, account, lots, fill_price)
            if fills and market.kind is not SPOT:
                self._rebalance_reservations(
                    market, {maker.account_id for maker, _, _ in fills} | {account.account_id}
                )
        left = order.remaining
        if left:
            self._close(order, account, market, reason)
            mark = valuation_price(market)
            if mark is not None:
                self._take_over(market, account, left if quantity > 0 else -left, mark, reason)
        self._emit_book_changes(market)
        self._trigger_stops(market)

    @staticmethod
    def _close_out_limit(market: Market, side: Side) -> int | None:
        """The furthest price a close-out may trade at: the market's `price_protection` (else
        CLOSE_OUT_PROTECTION) beyond the best opposite price; None when that side of the book is empty."""
        ppm = market.protection_ppm if market.protection_ppm is not None else CLOSE_OUT_PROTECTION_PPM
        if side is BUY:
            best = market.book.best_ask()
            if best is None:
                return None
            limit = best * (PPM + ppm) // PPM
            return min(limit, market.payout_ticks - 1) if market.kind is BINARY else limit
        best = market.book.best_bid()
        if best is None:
            return None
        return max(ceil_div(best * (PPM - ppm), PPM), 1)

    def _take_over(
        self, market: Market, account: Account, quantity: int, price: int, reason: CancelReason
    ) -> None:
        """`system:insurance` takes `quantity` signed lots of the account's position over at `price`.

        Settled like a fill (P&L, margin, binary collateral, spot cash and base) without fees, but
        it is no trade: no TradeExecuted, no OrderFilled, the last price does not move."""
        lots = abs(quantity)
        side = SELL if quantity > 0 else BUY
        other = BUY if side is SELL else SELL
        quote = market.spec.quote
        fund = self.ledger.system_account(SYSTEM_INSURANCE, quote)
        closing = Order(
            order_id=0,
            account_id=account.account_id,
            market=market.symbol,
            side=side,
            requested_side=OrderSide(side.value),
            type=MARKET_ORDER,
            time_in_force=IOC,
            price=None,
            stop_price=None,
            quantity=lots,
            remaining=lots,
            fee_exempt=True,
            hold_currency=quote if market.kind is not SPOT or side is BUY else market.spec.base,
        )
        taking = Order(
            order_id=0,
            account_id=SYSTEM_INSURANCE,
            market=market.symbol,
            side=other,
            requested_side=OrderSide(other.value),
            type=LIMIT_ORDER,
            time_in_force=GTC,
            price=price,
            stop_price=None,
            quantity=lots,
            remaining=0,
        )
        notional = market.notional.floor(price * lots)
        if market.kind is SPOT:
            buyer, seller = (fund, account) if side is SELL else (account, fund)
            self.ledger.transfer(buyer, seller, quote, notional)
            self.ledger.transfer(seller, buyer, market.spec.base, lots * market.base_per_lot)
        position = self._position(market, account)
        realized_before = position.realized
        self._fill_side(market, taking, fund, lots, price, notional, 0, MAKER)
        self._fill_side(market, closing, account, lots, price, notional, 0, TAKER)
        self._events.append(
            PositionTakenOver(
                account_id=account.account_id,
                market=market.symbol,
                quantity=quantity,
                price=price,
                pnl=position.realized - realized_before,
                reason=reason.value,
                ts=self.now,
            )
        )

    def _end_assessment(
        self, account: Account, status: AccountStatus, rule: str, equity: int, level: int
    ) -> None:
        """A breach fails the account, the target passes it: orders cancelled, positions closed, halted."""
        for order in sorted(account.open_orders.values(), key=lambda o: o.order_id):  # type: ignore[attr-defined]
            assert isinstance(order, Order)
            self._cancel(order, self.markets[order.market], CancelReason.ASSESSMENT_ENDED)
        for symbol in sorted(account.positions):
            position = account.positions[symbol]
            market = self.markets[symbol]
            if position.quantity == 0:
                continue
            price = self._closing_price(market, position.quantity)
            self._close_out(
                market,
                account,
                position.quantity,
                price,
                SYSTEM_VENUE,
                status.value,
                CancelReason.ASSESSMENT_ENDED,
            )
        account.status = status
        account.trading_state = TRADING_HALTED
        account.status_reason = (rule, equity, level, self.now)
        final_equity, _ = self._equity(account)
        state = account.assessment
        assert state is not None
        if status is AccountStatus.FAILED:
            self._events.append(
                AssessmentFailed(
                    account_id=account.account_id, rule=rule, equity=equity, floor=level, ts=self.now
                )
            )
        else:
            self._events.append(
                AssessmentPassed(
                    account_id=account.account_id,
                    equity=final_equity,
                    target=level,
                    trading_days=state.trading_days,
                    ts=self.now,
                )
            )
        self._events.append(
            AccountStatusChanged(
                account_id=account.account_id,
                status=status,
                trading_state=TRADING_HALTED,
                reason=rule,
                ts=self.now,
                value=equity,
                limit=level,
            )
        )

    def _closing_price(self, market: Market, quantity: int) -> int | None:
        """Where a position closes "at the market": the quote's side with slippage, else the mark."""
        if market.venue is QUOTE_VENUE:
            side = SELL if quantity > 0 else BUY
            levels = market.quote_bids if side is SELL else market.quote_asks
            if levels:
                return slipped(market, side, levels[0][0])
        return mark_of(market)

    def _emit_assessment(self, account: Account, equity: int) -> None:
        state = account.assessment
        assert state is not None
        self._events.append(
            AssessmentUpdated(
                account_id=account.account_id,
                equity=equity,
                peak_equity=state.peak_equity,
                day_start_balance=state.day_start_balance,
                daily_floor=state.daily_floor,
                total_floor=state.total_floor,
                trading_days=state.trading_days,
                ts=self.now,
            )
        )

    @staticmethod
    def _tier_day(account: Account) -> int:
        """The account's trading day as the engine knows it: days turn at the resets of AdvanceTime."""
        state = account.assessment
        assert state is not None
        return state.day_index

    def _daily_resets(self) -> None:
        """At each tier's reset time: the day's starting balance and the end-of-day trailing floor."""
        for account_id in sorted(self.accounts):
            account = self.accounts[account_id]
            state = account.assessment
            if state is None or account.status is not ACCOUNT_ACTIVE:
                continue
            day = tier_day_index(state.tier, self.now)
            if day != state.day_index:
                state.daily_reset(account.balance(account.currency).total, day)
                equity, _ = self._equity(account)
                self._emit_assessment(account, equity)
                self._evaluate(account)
        self._schedule_resets()

    def _schedule_resets(self) -> None:
        tiers = {a.assessment.tier.name: a.assessment.tier for a in self.accounts.values() if a.assessment}
        self._next_reset = min((next_reset_ts(tier, self.now) for tier in tiers.values()), default=None)

    # --- leverage and funding -------------------------------------------------------------

    def _set_leverage(self, command: cmds.SetLeverage) -> None:
        market = self._market(command.market)
        account = self._trader(command.account_id)
        if market.kind is not PERP:
            raise invalid_request("leverage is for perp markets")
        leverage = parse_decimal(command.leverage, "leverage")
        if leverage < 1:
            raise invalid_request("leverage must be at least 1")
        limit = PPM * PPM // market.initial_margin_ppm  # in ppm of 1x
        if account.assessment is not None and account.assessment.tier.max_leverage is not None:
            limit = min(limit, int(account.assessment.tier.max_leverage * PPM))
        if leverage * PPM > limit:
            raise TradehallError(
                Code.RISK_LIMIT_EXCEEDED, f"leverage above the maximum {Decimal(limit) / PPM}"
            )
        initial = max(market.initial_margin_ppm, ceil_div(PPM * PPM, int(leverage * PPM)))
        position = market.positions.get(account.account_id)
        if position is not None and position.quantity:
            margin = market.margin_of(position.cost, initial)
            quote = market.spec.quote
            if margin - position.margin > account.available(quote):
                raise TradehallError(
                    Code.INSUFFICIENT_BALANCE,
                    f"the position needs {self._money(margin - position.margin, quote)} more margin at "
                    f"that leverage, {self._money(account.available(quote), quote, bare=True)} available",
                )
            self.ledger.adjust_held(account, market.spec.quote, margin - position.margin)
            position.margin = margin
            self._dirty_positions[(account.account_id, market.symbol)] = position
        account.leverage[market.symbol] = initial
        self._events.append(
            LeverageChanged(
                account_id=account.account_id, market=market.symbol, initial_margin_ppm=initial, ts=self.now
            )
        )

    def _configure(self, command: cmds.Configure) -> None:
        changes: dict[str, Any] = {}
        if command.tiers is not None:
            for name, tier in command.tiers.items():
                if name != tier.name or tier.starting_balance <= 0:
                    raise invalid_request(f"tier {name!r}: its name must match and its balance be positive")
                try:
                    tier_day_index(tier, self.now)
                except (ValueError, KeyError) as error:
                    raise invalid_request(f"tier {name!r}: {error}") from None
            changes["tiers"] = dict(command.tiers)
        if command.quote_max_age_ms is not None:
            if command.quote_max_age_ms <= 0:
                raise invalid_request("quote_max_age_ms must be positive")
            changes["quote_max_age_ms"] = command.quote_max_age_ms
        if command.max_open_orders is not None:
            if command.max_open_orders <= 0:
                raise invalid_request("max_open_orders must be positive")
            changes["max_open_orders"] = command.max_open_orders
        self.config = msgspec.structs.replace(self.config, **changes)
        self._events.append(
            EngineConfigured(
                tiers=tuple(sorted(self.config.tiers)),
                quote_max_age_ms=self.config.quote_max_age_ms,
                max_open_orders=self.config.max_open_orders,
                ts=self.now,
            )
        )

    def _apply_funding(self, command: cmds.ApplyFunding) -> None:
        market = self._market(command.market)
        if market.kind is not PERP:
            raise invalid_request("funding is for perp markets")
        rate = parse_decimal(command.rate, "rate")
        if abs(rate) >= 1:
            raise invalid_request("a funding rate is a fraction below 1")
        if mark_of(market) is None:
            raise invalid_request(f"market {market.symbol} has no mark to fund at")
        self._pay_funding(market, int(rate * PPM))

    def _pay_funding(self, market: Market, rate_ppm: int) -> None:
        mark = mark_of(market)
        assert mark is not None
        quote = market.spec.quote
        clearing = self.ledger.system_account(SYSTEM_PERP_SETTLEMENT, quote)
        payments: list[tuple[str, int]] = []
        for account_id in sorted(market.positions):
            position = market.positions[account_id]
            if position.quantity == 0:
                continue
            payment = div_round_half_even(
                market.notional.num * position.quantity * mark * rate_ppm, market.notional.den * PPM
            )
            if payment == 0:
                continue
            account = self.accounts[account_id]
            if payment > 0:
                self._settle_pnl(account, quote, -payment)
            else:
                self.ledger.transfer(clearing, account, quote, -payment)
            payments.append((account_id, payment))
        self._events.append(
            FundingPaid(
                market=market.symbol, rate_ppm=rate_ppm, mark=mark, payments=tuple(payments), ts=self.now
            )
        )

    # --- pre-trade risk ----------------------------------------------------------------------

    def _check_risk(self, order: Order, account: Account, market: Market, limit: int | None) -> None:
        """Limits checked before anything changes: open orders, price band, notional, position, tier rules."""
        if len(account.open_orders) >= self.config.max_open_orders:
            raise TradehallError(
                Code.RISK_LIMIT_EXCEEDED, f"at most {self.config.max_open_orders} open orders"
            )
        state = account.assessment
        if (
            state is None
            and market.band_ppm is None
            and market.max_order_notional is None
            and market.max_position_lots is None
        ):
            return  # no limit configured beyond the funds already checked
        reference = mark_of(market)
        if (
            market.band_ppm is not None
            and order.price is not None
            and reference is not None
            and abs(order.price - reference) * PPM > market.band_ppm * reference
        ):
            raise TradehallError(Code.RISK_LIMIT_EXCEEDED, "price is outside the band around the mark")
        price = limit if limit is not None else reference
        notional = market.notional.ceil(price * order.quantity) if price is not None else 0
        if market.max_order_notional is not None and notional > market.max_order_notional:
            quote = market.spec.quote
            raise TradehallError(
                Code.RISK_LIMIT_EXCEEDED,
                f"the order's notional {self._money(notional, quote)} is above the market's maximum "
                f"{self._money(market.max_order_notional, quote)}",
            )
        position = market.positions.get(account.account_id)
        held = position.quantity if position is not None else 0
        after = held + (order.quantity if order.side is BUY else -order.quantity)
        if (
            market.max_position_lots is not None
            and abs(after) > abs(held)
            and abs(after) > market.max_position_lots
        ):
            raise TradehallError(Code.POSITION_LIMIT_EXCEEDED, "position would exceed the market's maximum")
        if state is None:
            return
        tier = state.tier
        if tier.allowed_markets is not None and market.symbol not in tier.allowed_markets:
            raise TradehallError(
                Code.RISK_LIMIT_EXCEEDED, f"market {market.symbol} is not allowed in this tier"
            )
        if price is None:
            return
        opening = abs(after) > abs(held)
        if tier.max_risk_per_trade is not None and opening:
            risk = self._order_risk(order, account, market, price)
            allowed = state.initial * tier.max_risk_per_trade
            if risk > allowed:
                raise TradehallError(
                    Code.RISK_LIMIT_EXCEEDED, "the order risks more than the tier allows per trade"
                )
        equity, _ = self._equity(account)
        if tier.max_leverage is not None and market.kind is PERP and opening:
            exposure = notional + sum(
                self.markets[s].notional.ceil(abs(p.quantity) * (mark_of(self.markets[s]) or 0))
                for s, p in account.positions.items()
                if p.quantity and self.markets[s].kind is PERP
            )
            if exposure > equity * tier.max_leverage:
                raise TradehallError(
                    Code.RISK_LIMIT_EXCEEDED, "the order would exceed the tier's maximum leverage"
                )
        impact = self._immediate_impact(order, account, market, limit, reference)
        if impact is not None:
            after_equity = equity + impact
            currency = account.currency
            if after_equity < state.total_floor:
                raise TradehallError(
                    Code.DRAWDOWN_VIOLATION,
                    f"the fill would take equity to {self._money(after_equity, currency)}, below the "
                    f"drawdown floor {self._money(state.total_floor, currency)}",
                )
            if state.max_daily_loss and after_equity < state.daily_floor:
                raise TradehallError(
                    Code.DAILY_LOSS_LIMIT,
                    f"the fill would take equity to {self._money(after_equity, currency)}, below the "
                    f"daily loss floor {self._money(state.daily_floor, currency)}",
                )

    def _order_risk(self, order: Order, account: Account, market: Market, price: int) -> int:
        """Lots x |price - stop_loss| with a stop-loss; else the full cost (spot, binary) or margin (perp)."""
        if order.stop_loss is not None:
            return market.notional.ceil(order.quantity * abs(price - order.stop_loss))
        if market.kind is PERP:
            return market.margin_of(price * order.quantity, self._im_ppm(account, market))
        if market.kind is BINARY and order.side is SELL:
            return market.notional.ceil((market.payout_ticks - price) * order.quantity)
        return market.notional.ceil(price * order.quantity)

    def _immediate_impact(
        self, order: Order, account: Account, market: Market, limit: int | None, reference: int | None
    ) -> int | None:
        """Equity change of the part that would fill now: (mark - price) x lots per fill, minus fees."""
        if order.status is PENDING_TRIGGER:
            return None
        if market.venue is QUOTE_VENUE:
            fills = [
                (price, lots) for _, price, lots in plan_fills(market, order.side, order.remaining, limit)
            ]
        else:
            lots, worst = market.book.fillable(
                order.side, limit, order.remaining, account.account_id, market.stp
            )
            fills = [(worst, lots)] if lots and worst is not None else []
        if not fills:
            return None
        mark = reference if reference is not None else fills[0][0]
        sign = 1 if order.side is BUY else -1
        impact = 0
        for price, lots in fills:
            impact += market.notional.floor(sign * (mark - price) * lots)
            impact -= market.fee_bound(lots, price)
        return impact

    # --- reads for adapters ----------------------------------------------------------------

    def order_id_for(self, account_id: str, client_order_id: str) -> int | None:
        return self.client_order_ids.get((account_id, client_order_id))

    def liquidation_price(self, account_id: str, market: str) -> int | None:
        """Ticks at which the account's perp position in `market` would be liquidated, other marks fixed."""
        account = self.accounts.get(account_id)
        position = None if account is None else account.positions.get(market)
        if account is None or position is None or position.quantity == 0:
            return None
        equity, maintenance = self._equity(account)
        other = maintenance - maintenance_of(self.markets[market], position)
        return liquidation_price(self.markets[market], position, equity, other)

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
                    sorted(a.leverage.items()),
                    None if a.assessment is None else [a.assessment.tier, a.assessment.snapshot()],
                    None if a.status_reason is None else list(a.status_reason),
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
            markets.append(
                {
                    "spec": m.spec,
                    "status": m.status,
                    "book_sequence": m.book_sequence,
                    "last_price": m.last_price,
                    "mark_price": m.mark_price,
                    "positions": positions,
                    "quote": [m.quote_bids, m.quote_asks, m.quote_ts],
                    "delayed": [o.order_id for o in m.delayed],
                    "intervals": sorted([a, low, high] for a, (low, high) in m.interval_of.items()),
                    "next_funding_ts": m.next_funding_ts,
                }
            )
        return {
            "version": SNAPSHOT_VERSION,
            "config": self.config,
            "now": self.now,
            "next_order_id": self.next_order_id,
            "next_trade_id": self.next_trade_id,
            "priority": self._priority,
            "accounts": accounts,
            "markets": markets,
            "orders": [order for _, order in sorted(self.orders.items())],
            "client_order_ids": sorted([a, c, i] for (a, c), i in self.client_order_ids.items()),
            "client_order_fingerprints": sorted(
                [a, c, f] for (a, c), f in self.client_order_fingerprints.items()
            ),
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
        for raw_account in state["accounts"]:
            (
                account_id,
                owner,
                kind,
                currency,
                cost_basis,
                tier,
                status,
                trading_state,
                balances,
                leverage,
                assessment,
            ) = raw_account[:11]
            account = Account(account_id, owner, AccountKind(kind), currency, CostBasis(cost_basis), tier)
            reason = raw_account[11] if len(raw_account) > 11 else None  # absent in older snapshots
            if reason is not None:
                account.status_reason = (reason[0], reason[1], reason[2], reason[3])
            account.status = AccountStatus(status)
            account.trading_state = TradingState(trading_state)
            for currency_code, total, held in balances:
                account.balances[currency_code] = Balance(total, held)
            account.leverage = dict(leverage)
            if assessment is not None:
                tier_spec = msgspec.convert(assessment[0], TierSpec)
                account.assessment = AssessmentState(tier_spec, config.decimals(tier_spec.currency), 0)
                account.assessment.restore(assessment[1])
            engine.accounts[account_id] = account
        delayed: dict[str, list[int]] = {}
        for raw in state["markets"]:
            spec = msgspec.convert(raw["spec"], MarketSpec)
            market = Market(spec, config.currency_decimals, book_factory())
            market.status = MarketStatus(raw["status"])
            market.book_sequence = raw["book_sequence"]
            market.last_price = raw["last_price"]
            market.mark_price = raw["mark_price"]
            market.quote_bids, market.quote_asks, market.quote_ts = raw["quote"]
            market.next_funding_ts = raw["next_funding_ts"]
            for account_id, quantity, cost, realized, margin, reserved_buy, reserved_sell, lots in raw[
                "positions"
            ]:
                position = engine._position(market, engine.accounts[account_id])
                position.quantity, position.cost, position.realized = quantity, cost, realized
                if quantity and market.kind is PERP:
                    engine.accounts[account_id].open_perps += 1
                position.margin, position.reserved_buy, position.reserved_sell = (
                    margin,
                    reserved_buy,
                    reserved_sell,
                )
                if lots is not None and position.lots is not None:
                    position.lots.extend([list(lot) for lot in lots])
            for account_id, low, high in raw["intervals"]:
                market.set_interval(account_id, (low, high))
            delayed[spec.symbol] = raw["delayed"]
            engine.markets[spec.symbol] = market
        restored = [msgspec.convert(raw, Order) for raw in state["orders"]]
        for order in sorted(restored, key=lambda o: o.priority):
            account = engine.accounts[order.account_id]
            market = engine.markets[order.market]
            engine._register(order, account)
            if order.status is PENDING_TRIGGER and order.trigger is None:  # a snapshot from before triggers
                order.trigger = engine._default_trigger(market)
            if order.status is PENDING_TRIGGER:
                (market.stops_buy if order.side is BUY else market.stops_sell).add(order)
            elif order.in_book and market.venue is QUOTE_VENUE:
                (market.paper_bids if order.side is BUY else market.paper_asks).add(order)
            elif order.in_book:
                order.in_book = False
                market.book.add(order)
        for symbol, order_ids in delayed.items():
            engine.markets[symbol].delayed = [engine.orders[order_id] for order_id in order_ids]
        for market in engine.markets.values():
            market.book.take_changes()
        for account_id, client_order_id, order_id in state["client_order_ids"]:
            engine.client_order_ids[(account_id, client_order_id)] = order_id
        for account_id, client_order_id, fingerprint in state.get("client_order_fingerprints", ()):
            engine.client_order_fingerprints[(account_id, client_order_id)] = fingerprint
        engine._schedule_resets()
        return engine
