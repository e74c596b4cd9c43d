"""Read-only views of the engine's state: the only thing adapters (API, WebSocket) read of the engine.

Each view is a frozen, slotted dataclass built on demand from the engine's public registries
(`engine.markets`, `engine.orders`, `engine.accounts`) and the fields of their objects: a snapshot of
that moment, in the engine's integers (ticks, lots, minor units), which the adapter turns into its
own format. Nothing here mutates the engine, and a view never hands out a live engine object.

Cheap lookups (`spec`, `account_owner`, `currency_places`, ...) serve the hot paths (order entry, the
WebSocket fan-out) without building a whole view; the richer views are built only when asked for.
Equity and P&L come from `engine.valuation`, the very figures the engine's own rules use.

One module over 400 lines on purpose: it is the whole read surface adapters may import (the
import-linter contract names it), and most of its length is the views' field lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from operator import attrgetter

from tradehall.domain.enums import (
    AccountKind,
    AccountStatus,
    CancelReason,
    CostBasis,
    MarketKind,
    MarketStatus,
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    StopTrigger,
    TimeInForce,
    TradingState,
    Venue,
)
from tradehall.domain.events import OrderCancelled
from tradehall.domain.market import MarketSpec
from tradehall.domain.tiers import TierSpec
from tradehall.engine.engine import Engine
from tradehall.engine.ledger import Account
from tradehall.engine.markets import Market
from tradehall.engine.monitor_views import least_assessment_headroom_ppm as least_assessment_headroom_ppm
from tradehall.engine.orders import Order
from tradehall.engine.position_views import PositionView as PositionView
from tradehall.engine.position_views import money_by_currency as money_by_currency
from tradehall.engine.position_views import position as position
from tradehall.engine.position_views import positions as positions
from tradehall.engine.position_views import system_account_balances as system_account_balances
from tradehall.engine.route_views import RouteView as RouteView  # smart orders, read here too
from tradehall.engine.route_views import route as route
from tradehall.engine.valuation import Valuation, value_account
from tradehall.engine.valuation import valuation_price as _valuation_price

__all__ = [
    "AccountView",
    "AssessmentView",
    "BalanceView",
    "BookView",
    "MarketView",
    "OrderView",
    "PositionView",
    "StatusReasonView",
    "Valuation",
    "account",
    "account_ids_of",
    "account_owner",
    "account_valuation",
    "book",
    "currency_places",
    "has_market",
    "holdable_currencies",
    "initial_margin_ppm",
    "market",
    "market_symbols",
    "markets",
    "open_orders",
    "order",
    "order_id_for",
    "position",
    "positions",
    "spec",
    "tiers",
    "valuation_price",
]


# ---- markets and books ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketView:
    """A market's terms (`spec`), status and prices in ticks. The outcome of a settled binary market
    is not engine state: the read models keep it."""

    symbol: str
    spec: MarketSpec
    status: MarketStatus
    venue: Venue
    last_price: int | None
    mark_price: int | None
    """The valuation price: mark, else last trade, else the mid (`valuation_price`)."""
    bid: int | None
    ask: int | None
    book_sequence: int
    slippage_ppm: int
    payout_ticks: int
    """A binary contract's payout in ticks (YES + NO)."""
    quote_places: int
    """Minor-unit decimals of the quote currency."""


@dataclass(frozen=True, slots=True)
class BookView:
    """The best `depth` levels per side, best first: (price ticks, lots). On a quote venue the levels are
    the external quotes and a size may be None (unknown)."""

    symbol: str
    spec: MarketSpec
    sequence: int
    bids: tuple[tuple[int, int | None], ...]
    asks: tuple[tuple[int, int | None], ...]


def valuation_price(market: Market) -> int | None:
    """The price positions and holdings in `market` are valued at: mark, else last, else mid."""
    return _valuation_price(market)


def _market_view(engine: Engine, m: Market) -> MarketView:
    return MarketView(
        symbol=m.symbol,
        spec=m.spec,
        status=m.status,
        venue=m.venue,
        last_price=m.last_price,
        mark_price=_valuation_price(m),
        bid=m.best_bid(),
        ask=m.best_ask(),
        book_sequence=m.book_sequence,
        slippage_ppm=m.terms.slippage_ppm,
        payout_ticks=m.terms.payout_ticks,
        quote_places=engine.config.decimals(m.spec.quote),
    )


def market(engine: Engine, symbol: str) -> MarketView | None:
    m = engine.markets.get(symbol)
    return None if m is None else _market_view(engine, m)


def markets(engine: Engine) -> list[MarketView]:
    """Every market, by symbol."""
    return [_market_view(engine, engine.markets[symbol]) for symbol in sorted(engine.markets)]


def spec(engine: Engine, symbol: str) -> MarketSpec | None:
    """The market's terms alone (the hot paths need no more)."""
    m = engine.markets.get(symbol)
    return None if m is None else m.spec


def has_market(engine: Engine, symbol: str) -> bool:
    return symbol in engine.markets


def market_symbols(engine: Engine) -> list[str]:
    return sorted(engine.markets)


def book(engine: Engine, symbol: str, depth: int) -> BookView | None:
    m = engine.markets.get(symbol)
    if m is None:
        return None
    if m.venue is Venue.QUOTE:
        bids = tuple((level[0], level[1]) for level in m.quote.bids[:depth])
        asks = tuple((level[0], level[1]) for level in m.quote.asks[:depth])
        return BookView(m.symbol, m.spec, m.book_sequence, bids, asks)
    raw_bids, raw_asks = m.book.depth(depth)
    return BookView(m.symbol, m.spec, m.book_sequence, tuple(raw_bids), tuple(raw_asks))


# ---- configuration --------------------------------------------------------------------------------


def currency_places(engine: Engine, currency: str) -> int:
    """Minor-unit decimals of `currency` (the configured ones, else the default)."""
    return engine.config.decimals(currency)


def holdable_currencies(engine: Engine) -> set[str]:
    """The configured currencies, those markets settle in and spot markets' base assets."""
    known = set(engine.config.currency_decimals)
    for m in engine.markets.values():
        known.add(m.spec.quote)
        if m.spec.kind is MarketKind.SPOT:  # a perp's or binary's base is no holdable asset
            known.add(m.spec.base)
    return known


def tiers(engine: Engine) -> Mapping[str, TierSpec]:
    return engine.config.tiers


# ---- orders ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderView:
    """An open (or untriggered) order. Prices in ticks as the engine keeps them (a binary NO order's in
    YES terms; `requested_side` says what was entered), quantities in lots, fees in minor units."""

    order_id: int
    account_id: str
    market: str
    requested_side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    price: int | None
    stop_price: int | None
    quantity: int
    filled: int
    fills_notional: int
    """Sum of price x lots of its fills (tick-lots): the average price's numerator."""
    fees_paid: int
    status: OrderStatus
    client_order_id: str | None
    trigger: StopTrigger | None
    cancel_reason: CancelReason | None
    created_ts: int
    updated_ts: int
    trail_ppm: int | None = None
    """A trailing stop's trail_percent in parts per million of the price (or `trail_price` in ticks)."""
    trail_price: int | None = None
    activation_price: int | None = None
    hwm: int | None = None
    """A trailing stop's watermark now (its `stop_price` is the stop it gives)."""
    order_class: OrderClass = OrderClass.SIMPLE
    parent_order_id: int | None = None
    take_profit: int | None = None
    stop_loss: int | None = None
    stop_loss_limit: int | None = None
    legs: tuple[int, ...] = ()
    """Contingent orders: the class, the entry an exit belongs to, the exits' prices (an entry's, or an
    oco's) and the ids of the exits placed so far."""

    def cancelled(self, event: OrderCancelled) -> OrderView:
        """The order as its cancel left it (the engine drops a closed order from its registry)."""
        return replace(
            self,
            status=OrderStatus.CANCELLED,
            cancel_reason=event.reason,
            filled=event.filled_quantity,
            updated_ts=event.ts,
        )


_ORDER_VIEW_FIELDS = attrgetter(*(f.name for f in fields(OrderView)))
"""Reads the view's fields off an order, in their order (`OrderView`'s fields are the one list). Not
`msgspec.convert`: the compiled build's dataclasses carry no annotations it can read."""


def _order_view(o: Order) -> OrderView:
    return OrderView(*_ORDER_VIEW_FIELDS(o))


def order(engine: Engine, order_id: int) -> OrderView | None:
    """An open or untriggered order; None once it has ended (the read models keep those)."""
    o = engine.orders.get(order_id)
    return None if o is None else _order_view(o)


def open_orders(
    engine: Engine, account_ids: set[str], market: str | None = None, before: int | None = None
) -> list[OrderView]:
    """Open orders of `account_ids` (of one `market`, with ids below `before`), newest first: read
    through each account's own index, so the cost grows with those accounts' orders only."""
    registry = engine.orders
    found: list[Order] = []
    for account_id in account_ids:
        a = engine.accounts.get(account_id)
        if a is None:
            continue
        for order_id in a.open_orders:
            o = registry.get(order_id)
            if (
                o is not None
                and (market is None or o.market == market)
                and (before is None or order_id < before)
            ):
                found.append(o)
    found.sort(key=lambda o: -o.order_id)
    return [_order_view(o) for o in found]


def order_id_for(engine: Engine, account_id: str, client_order_id: str) -> int | None:
    """The order an account placed with `client_order_id` (idempotent repeats)."""
    return engine.order_id_for(account_id, client_order_id)


# ---- accounts -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BalanceView:
    currency: str
    total: int
    held: int
    """Held by open orders; available = total - held."""


@dataclass(frozen=True, slots=True)
class StatusReasonView:
    """Why an assessment ended: the rule, the equity that decided it, the rule's level, when."""

    rule: str
    value: int
    limit: int
    at: int


@dataclass(frozen=True, slots=True)
class AssessmentView:
    """An assessment in progress or ended: floors, peak and target in minor units of the tier's currency."""

    tier: TierSpec
    initial: int
    target: int
    daily_floor: int
    total_floor: int
    peak_equity: int
    trading_days: int


@dataclass(frozen=True, slots=True)
class AccountView:
    account_id: str
    owner: str
    kind: AccountKind
    currency: str
    cost_basis: CostBasis
    status: AccountStatus
    trading_state: TradingState
    tier: str | None
    balances: tuple[BalanceView, ...]
    """Every currency the account holds, by currency."""
    status_reason: StatusReasonView | None
    assessment: AssessmentView | None
    valuation: Valuation

    def balance(self, currency: str) -> BalanceView | None:
        for entry in self.balances:
            if entry.currency == currency:
                return entry
        return None


def account_valuation(engine: Engine, account_id: str) -> Valuation:
    """The account's equity and its parts in minor units of its currency (KeyError: no such account)."""
    return value_account(engine.accounts[account_id], engine.markets, engine.spot_market_for)


def _account_view(engine: Engine, a: Account) -> AccountView:
    reason = a.status_reason
    state = a.assessment
    return AccountView(
        account_id=a.account_id,
        owner=a.owner,
        kind=a.kind,
        currency=a.currency,
        cost_basis=a.cost_basis,
        status=a.status,
        trading_state=a.trading_state,
        tier=a.tier,
        balances=tuple(
            BalanceView(currency, a.balances[currency].total, a.balances[currency].held)
            for currency in sorted(a.balances)
        ),
        status_reason=None if reason is None else StatusReasonView(*reason),
        assessment=None
        if state is None
        else AssessmentView(
            tier=state.tier,
            initial=state.initial,
            target=state.target,
            daily_floor=state.daily_floor,
            total_floor=state.total_floor,
            peak_equity=state.peak_equity,
            trading_days=state.trading_days,
        ),
        valuation=value_account(a, engine.markets, engine.spot_market_for),
    )


def account(engine: Engine, account_id: str) -> AccountView | None:
    a = engine.accounts.get(account_id)
    return None if a is None else _account_view(engine, a)


def account_owner(engine: Engine, account_id: str) -> str | None:
    """The account's owner (None: no such account); the ownership checks need no more."""
    a = engine.accounts.get(account_id)
    return None if a is None else a.owner


def account_ids_of(engine: Engine, owner: str) -> list[str]:
    """The ids of `owner`'s accounts, sorted."""
    return sorted(a.account_id for a in engine.accounts.values() if a.owner == owner)


def initial_margin_ppm(engine: Engine, account_id: str, symbol: str) -> int:
    """The initial margin the account's perp positions in `symbol` need, in ppm: the market's, or the
    higher one its chosen leverage sets (KeyError: no such account or market)."""
    return max(
        engine.markets[symbol].terms.initial_margin_ppm, engine.accounts[account_id].leverage.get(symbol, 0)
    )
