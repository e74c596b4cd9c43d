"""Engine views, engine events and read-model rows -> the wire dicts of `tradehall.api.schemas`.

One place per resource. Integers become decimal strings through `tradehall.domain.fixedpoint` with
the market's spec; a binary NO order shows its price as the NO price (1 - YES), as it was entered.

Over 400 lines on purpose: one converter per resource, engine view, event and read-model row, kept
together so the REST, WebSocket and bus shapes of a resource cannot drift apart.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tradehall.domain.enums import CancelReason, MarketKind, OrderSide, OrderStatus
from tradehall.domain.events import (
    AnyEvent,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderTriggered,
)
from tradehall.domain.fixedpoint import (
    amount_of,
    average_of,
    decimal_of,
    decimal_str,
    floor_amount,
    trail_percent_of,
)
from tradehall.domain.market import BINARY_PAYOUT, MarketSpec, instrument_of, venue_of
from tradehall.domain.tiers import TierSpec
from tradehall.engine import Engine, views
from tradehall.engine.views import AccountView, BookView, MarketView, OrderView, PositionView
from tradehall.store import models

ZERO = Decimal(0)


_seconds: dict[int, str] = {}
"""The date-and-second parts formatted lately: an order's answer names its creation's second and the
present one, so a cache of one second would miss on every order that lived across a second."""
_SECONDS_KEPT = 256


def rfc3339_ns(ns: int) -> str:
    """RFC 3339 UTC with microseconds; the date-and-second part is formatted once per second."""
    seconds, rest = divmod(ns, 1_000_000_000)
    prefix = _seconds.get(seconds)
    if prefix is None:
        if len(_seconds) >= _SECONDS_KEPT:
            _seconds.clear()
        prefix = _seconds[seconds] = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    micros = rest // 1000
    return f"{prefix}.{micros:06d}Z" if micros else f"{prefix}Z"


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dec(value: Decimal) -> str:
    return decimal_str(value)


def opt_dec(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


@functools.lru_cache(maxsize=16384)
def steps_text(units: int, step: Decimal) -> str:
    """`units` steps as wire text (`decimal_str(decimal_of(units, step))`), remembered: order answers
    repeat the same few prices and quantities, and the Decimal arithmetic costs several microseconds."""
    return decimal_str(decimal_of(units, step))


@functools.lru_cache(maxsize=4096)
def _amount_text(minor: int, places: int) -> str:
    return decimal_str(amount_of(minor, places))


def _price(ticks: int | None, spec: MarketSpec) -> str | None:
    return None if ticks is None else steps_text(ticks, spec.tick_size)


def _qty(lots: int, spec: MarketSpec) -> str:
    return steps_text(lots, spec.lot_size)


def _order_price(ticks: int | None, spec: MarketSpec, requested: str) -> str | None:
    """An order's price as entered (`_no_view` for a NO order of a binary market)."""
    if ticks is None:
        return None
    if spec.kind is not MarketKind.BINARY or requested != OrderSide.NO.value:
        return steps_text(ticks, spec.tick_size)
    return opt_dec(_no_view(decimal_of(ticks, spec.tick_size), spec, requested))


def _no_view(value: Decimal | None, spec: MarketSpec, requested: str) -> Decimal | None:
    """A NO order's prices as the NO price it was entered with (the engine keeps YES prices)."""
    if value is None or spec.kind is not MarketKind.BINARY or requested != OrderSide.NO.value:
        return value
    return BINARY_PAYOUT - value


# ---- markets ---------------------------------------------------------------------------------------


def market_dict(
    market: MarketView, outcome: str | None = None, settled_at: datetime | None = None
) -> dict[str, Any]:
    """`outcome` and `settled_at` come from the read models (the engine keeps neither)."""
    spec = market.spec
    return {
        "symbol": spec.symbol,
        "instrument": instrument_of(spec),
        "exchange": venue_of(spec),
        "kind": spec.kind.value,
        "venue": spec.venue.value,
        "base": spec.base,
        "quote": spec.quote,
        "tick_size": dec(spec.tick_size),
        "lot_size": dec(spec.lot_size),
        "min_quantity": opt_dec(spec.min_quantity) or dec(spec.lot_size),
        "max_quantity": opt_dec(spec.max_quantity),
        "status": market.status.value,
        "maker_fee": dec(spec.maker_fee),
        "taker_fee": dec(spec.taker_fee),
        "fee_model": spec.fee_model.value,
        "max_leverage": opt_dec(spec.max_leverage),
        "initial_margin": opt_dec(spec.initial_margin),
        "maintenance_margin": opt_dec(spec.maintenance_margin),
        "last_price": _price(market.last_price, spec),
        "mark_price": _price(market.mark_price, spec),
        "slippage": dec(Decimal(market.slippage_ppm) / 1_000_000),
        "latency_ms": spec.latency_ms,
        "latency_jitter_ms": spec.latency_jitter_ms,
        "quote_max_age_ms": spec.quote_max_age_ms,
        "max_order_notional": opt_dec(spec.max_order_notional),
        "max_position": opt_dec(spec.max_position),
        "price_band": opt_dec(spec.price_band),
        "price_protection": opt_dec(spec.price_protection),
        "mark_band": dec(spec.mark_band),
        "funding_interval_seconds": spec.funding_interval_seconds,
        "funding_rate": opt_dec(spec.funding_rate),
        "close_time": None if spec.close_time is None else rfc3339_ns(spec.close_time),
        "outcome": outcome,
        "settled_at": None if settled_at is None else rfc3339(settled_at),
    }


def levels(raw: Iterable[tuple[int, int]], spec: MarketSpec) -> list[list[str]]:
    tick, lot = spec.tick_size, spec.lot_size
    return [[decimal_str(decimal_of(p, tick)), decimal_str(decimal_of(q, lot))] for p, q in raw]


def book_dict(book: BookView) -> dict[str, Any]:
    """On a quote venue the levels are the external book the paper orders fill against (size "" =
    unknown); a book venue's sizes are always known."""
    tick, lot = book.spec.tick_size, book.spec.lot_size
    return {
        "symbol": book.symbol,
        "sequence": book.sequence,
        "bids": [_quoted(level, tick, lot) for level in book.bids],
        "asks": [_quoted(level, tick, lot) for level in book.asks],
    }


def _quoted(level: tuple[int, int | None], tick: Decimal, lot: Decimal) -> list[str]:
    price, size = level
    return [decimal_str(decimal_of(price, tick)), "" if size is None else decimal_str(decimal_of(size, lot))]


def ticker_dict(market: MarketView, volume_24h_lots: int) -> dict[str, Any]:
    spec = market.spec
    return {
        "symbol": market.symbol,
        "bid": _price(market.bid, spec),
        "ask": _price(market.ask, spec),
        "last": _price(market.last_price, spec),
        "mark": _price(market.mark_price, spec),
        "volume_24h": _qty(volume_24h_lots, spec),
        "sequence": market.book_sequence,
        "status": market.status.value,
    }


# ---- accounts and positions -------------------------------------------------------------------------


def position_dict(position: PositionView) -> dict[str, Any]:
    spec = position.spec
    quantity = position.quantity
    tick_lot = spec.tick_size * spec.lot_size
    price = position.price
    quote_places = position.quote_places
    average: Decimal | None = None
    if quantity:
        average = average_of(
            position.cost,
            position.cost_remainder,
            position.cost_denominator,
            quantity,
            tick_lot,
            spec.lot_size,
        )
        if spec.kind is MarketKind.BINARY and quantity < 0:
            average = BINARY_PAYOUT - average
        average = average.quantize(spec.tick_size * Decimal("0.0001")).normalize()
    mark = price
    if quantity and price is not None and spec.kind is MarketKind.BINARY and quantity < 0:
        mark = position.payout_ticks - price  # NO terms, like its average entry
    if spec.kind is MarketKind.BINARY:
        side = "yes" if quantity > 0 else "no"
    else:
        side = "long" if quantity > 0 else "short"
    return {
        "account_id": position.account_id,
        "market": position.market,
        "side": side,
        "quantity": _qty(abs(quantity), spec),
        "average_entry_price": opt_dec(average),
        "mark_price": _price(mark, spec),
        "unrealized_pnl": dec(amount_of(position.unrealized_pnl, quote_places)),
        "realized_pnl": dec(amount_of(position.realized, quote_places)),
        "margin": dec(amount_of(position.margin, quote_places)),
        "liquidation_price": _price(position.liquidation_price, spec),
    }


def tier_dict(tier: TierSpec) -> dict[str, Any]:
    return {
        "name": tier.name,
        "currency": tier.currency,
        "starting_balance": dec(tier.starting_balance),
        "profit_target": dec(tier.profit_target),
        "max_daily_loss": dec(tier.max_daily_loss),
        "max_total_loss": dec(tier.max_total_loss),
        "drawdown_mode": tier.drawdown_mode.value,
        "max_risk_per_trade": opt_dec(tier.max_risk_per_trade),
        "max_leverage": opt_dec(tier.max_leverage),
        "min_trading_days": tier.min_trading_days,
        "allowed_markets": None if tier.allowed_markets is None else list(tier.allowed_markets),
        "daily_reset_time": tier.daily_reset_time,
        "timezone": tier.timezone,
    }


def rules_dict(engine: Engine, account: AccountView, equity: Decimal) -> dict[str, Any] | None:
    """An assessment account's tier with its current floors and progress toward the target."""
    state = account.assessment
    if state is None:
        return None
    places = views.currency_places(engine, state.tier.currency)
    target = amount_of(state.target, places)
    initial = amount_of(state.initial, places)
    return {
        **tier_dict(state.tier),
        "floors": {
            "daily": dec(amount_of(state.daily_floor, places)),
            "total": dec(amount_of(state.total_floor, places)),
        },
        "distance": {
            "daily": dec(equity - amount_of(state.daily_floor, places)),
            "total": dec(equity - amount_of(state.total_floor, places)),
        },
        "peak_equity": dec(amount_of(state.peak_equity, places)),
        "progress": {
            "target_equity": dec(target),
            "profit": dec(equity - initial),
            "profit_needed": dec(max(Decimal(0), target - equity)),
            "trading_days": state.trading_days,
            "min_trading_days": state.tier.min_trading_days,
        },
    }


def status_reason_dict(engine: Engine, account: AccountView) -> dict[str, Any] | None:
    """Why an assessment ended: the rule, the equity that decided it and the rule's level."""
    reason = account.status_reason
    if reason is None:
        return None
    places = views.currency_places(engine, account.currency)
    return {
        "rule": reason.rule,
        "value": dec(amount_of(reason.value, places)),
        "limit": dec(amount_of(reason.limit, places)),
        "at": rfc3339_ns(reason.at),
    }


def account_dict(engine: Engine, account: AccountView, peak_equity: Decimal | None = None) -> dict[str, Any]:
    """Equity and P&L are the engine's own valuation (the view's `valuation`): cash, other
    assets held at their market's price, perp P&L and binary contracts at the price, each figure
    in the currency's minor unit rounded as the engine's rules see it (equity and P&L down)."""
    places = views.currency_places(engine, account.currency)
    main = account.balance(account.currency)
    total = main.total if main is not None else 0
    held = main.held if main is not None else 0
    balance = amount_of(total, places)
    valuation = account.valuation
    equity = amount_of(valuation.equity, places)
    unrealized = amount_of(valuation.unrealized_pnl, places)
    realized = amount_of(valuation.realized_pnl, places)
    state = account.assessment
    if state is not None:  # the engine tracks an assessment's peak itself
        peak_equity = amount_of(state.peak_equity, places)
    elif peak_equity is not None:  # the read models' peak, shown like equity (rows older than the rule)
        peak_equity = floor_amount(peak_equity, places)
    peak = equity if peak_equity is None else max(peak_equity, equity)
    return {
        "id": account.account_id,
        "owner": account.owner,
        "kind": account.kind.value,
        "currency": account.currency,
        "balance": dec(balance),
        "available": dec(amount_of(total - held, places)),
        "equity": dec(equity),
        "unrealized_pnl": dec(unrealized),
        "realized_pnl": dec(realized),
        "peak_equity": dec(peak),
        "drawdown": dec(peak - equity),
        "status": account.status.value,
        "trading_state": account.trading_state.value,
        "cost_basis": account.cost_basis.value,
        "tier": account.tier,
        "rules": rules_dict(engine, account, equity),
        "status_reason": status_reason_dict(engine, account),
        "balances": balances_list(engine, account),
    }


def balances_list(engine: Engine, account: AccountView) -> list[dict[str, Any]]:
    balances = []
    for entry in account.balances:
        decimals = views.currency_places(engine, entry.currency)
        balances.append(
            {
                "currency": entry.currency,
                "total": dec(amount_of(entry.total, decimals)),
                "available": dec(amount_of(entry.total - entry.held, decimals)),
                "held": dec(amount_of(entry.held, decimals)),
            }
        )
    return balances


def account_part_dict(engine: Engine, shard: str, account: AccountView) -> dict[str, Any]:
    """What one shard of a cluster holds of an account (`AccountOut.shards`)."""
    places = views.currency_places(engine, account.currency)
    return {
        "shard": shard,
        "equity": dec(amount_of(account.valuation.equity, places)),
        "balances": balances_list(engine, account),
    }


# ---- fills and orders -------------------------------------------------------------------------------


def fill_from_event(event: OrderFilled, spec: MarketSpec, quote_places: int) -> dict[str, Any]:
    taker = str(event.liquidity) == "taker"
    return {
        "id": str(event.trade_id * 2 + (1 if taker else 0)),
        "trade_id": str(event.trade_id),
        "order_id": str(event.order_id),
        "account_id": event.account_id,
        "market": event.market,
        "side": str(event.side),
        "price": decimal_str(decimal_of(event.price, spec.tick_size)),
        "quantity": decimal_str(decimal_of(event.quantity, spec.lot_size)),
        "fee": dec(amount_of(event.fee, quote_places)),
        "liquidity": str(event.liquidity),
        "realized_pnl": dec(amount_of(event.realized_pnl, quote_places)),
        "executed_at": rfc3339_ns(event.ts),
        "origin": None if event.origin is None else str(event.origin),
    }


def fill_from_row(row: models.Fill) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "trade_id": str(row.trade_id),
        "order_id": row.order_id,
        "account_id": row.account_id,
        "market": row.market,
        "side": row.side,
        "price": dec(row.price),
        "quantity": dec(row.quantity),
        "fee": dec(row.fee),
        "liquidity": row.liquidity,
        "realized_pnl": dec(row.realized_pnl),
        "executed_at": rfc3339(row.executed_at),
        "origin": row.origin,
    }


def ledger_from_row(row: models.LedgerEntry) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "type": row.type,
        "amount": dec(row.amount),
        "currency": row.currency,
        "balance_after": dec(row.balance_after),
        "market": row.market,
        "order_id": row.order_id,
        "trade_id": None if row.trade_id is None else str(row.trade_id),
        "at": rfc3339(row.at),
    }


def _average(notional_tick_lots: int, filled_lots: int, spec: MarketSpec) -> Decimal | None:
    if not filled_lots:
        return None
    average = decimal_of(notional_tick_lots, spec.tick_size * spec.lot_size) / decimal_of(
        filled_lots, spec.lot_size
    )
    return average.quantize(spec.tick_size * Decimal("0.0001")).normalize()


def _exit_prices(
    order_class: str,
    parent_order_id: object,
    take_profit: Decimal | None,
    stop_loss: Decimal | None,
    stop_loss_limit: Decimal | None,
    spec: MarketSpec | None,
    requested: str,
) -> dict[str, Any]:
    """A contingent order's class, parent and exit prices (in the terms the order was entered in)."""

    def shown(value: Decimal | None) -> str | None:
        return opt_dec(value if spec is None else _no_view(value, spec, requested))

    stop = shown(stop_loss)
    take = shown(take_profit)
    return {
        "order_class": order_class,
        "parent_order_id": None if parent_order_id is None else str(parent_order_id),
        "take_profit": None if take is None else {"limit_price": take},
        "stop_loss": None if stop is None else {"stop_price": stop, "limit_price": shown(stop_loss_limit)},
        "legs": [],
    }


def _ticks(value: int | None, spec: MarketSpec) -> Decimal | None:
    return None if value is None else decimal_of(value, spec.tick_size)


def order_from_engine(order: OrderView, spec: MarketSpec, quote_places: int) -> dict[str, Any]:
    requested = order.requested_side.value
    average = _average(order.fills_notional, order.filled, spec)
    created = rfc3339_ns(order.created_ts)
    reason = order.cancel_reason
    return {
        "id": str(order.order_id),
        "client_order_id": order.client_order_id,
        "account_id": order.account_id,
        "market": order.market,
        "side": requested,
        "type": order.type.value,
        "time_in_force": order.time_in_force.value,
        "quantity": _qty(order.quantity, spec),
        "price": _order_price(order.price, spec, requested),
        "stop_price": _order_price(order.stop_price, spec, requested),
        "status": order.status.value,
        "filled_quantity": _qty(order.filled, spec),
        "average_price": opt_dec(_no_view(average, spec, requested)),
        "fees": _amount_text(order.fees_paid, quote_places),
        "created_at": created,
        "updated_at": rfc3339_ns(order.updated_ts) if order.updated_ts else created,
        "fills": [],
        "trigger": None if order.trigger is None else order.trigger.value,
        "cancel_reason": None if reason is None else reason.value,
        **_trailing(order.trail_ppm, order.trail_price, order.activation_price, order.hwm, spec, requested),
        **_exit_prices(
            order.order_class.value,
            order.parent_order_id,
            _ticks(order.take_profit, spec),
            _ticks(order.stop_loss, spec),
            _ticks(order.stop_loss_limit, spec),
            spec,
            requested,
        ),
    }


def _trailing(
    trail_ppm: int | None,
    trail_price: int | None,
    activation: int | None,
    hwm: int | None,
    spec: MarketSpec,
    requested: str,
) -> dict[str, str | None]:
    """A trailing stop's fields (prices as entered: a NO order's in NO prices; a trail is a distance)."""

    def price(ticks: int | None) -> str | None:
        if ticks is None:
            return None
        return opt_dec(_no_view(decimal_of(ticks, spec.tick_size), spec, requested))

    return {
        "trail_percent": None if trail_ppm is None else dec(trail_percent_of(trail_ppm)),
        "trail_price": None if trail_price is None else dec(decimal_of(trail_price, spec.tick_size)),
        "activation_price": price(activation),
        "hwm": price(hwm),
    }


def order_from_events(
    events: Sequence[AnyEvent], order_id: int, spec: MarketSpec, quote_places: int
) -> dict[str, Any] | None:
    """The order `order_id` as the events of its placing command describe it (fills included).

    On every order answer: the enums (all `StrEnum`) are read with `str(...)`, their value, which
    costs a fifth of the `.value` property."""
    accepted: OrderAccepted | None = None
    fills: list[dict[str, Any]] = []
    status: OrderStatus | None = None
    filled = 0
    notional = 0
    fees = 0
    updated = 0
    quantity = 0
    price: int | None = None
    stop_price: int | None = None
    reason: str | None = None
    trail: tuple[int | None, int | None] = (None, None)
    hwm: int | None = None
    for event in events:
        if getattr(event, "order_id", None) != order_id:
            continue
        if isinstance(event, OrderAccepted):
            accepted = event
            status = event.status
            quantity = event.quantity
            price = event.price
            stop_price = event.stop_price
            trail, hwm = (event.trail_ppm, event.trail_price), event.hwm
            updated = event.ts
        elif isinstance(event, OrderFilled):
            fills.append(fill_from_event(event, spec, quote_places))
            filled = event.filled_quantity
            notional += event.price * event.quantity
            fees += event.fee
            status = event.status
            updated = event.ts
        elif isinstance(event, OrderCancelled):
            status = OrderStatus.CANCELLED
            filled = event.filled_quantity
            reason = str(event.reason)
            updated = event.ts
            if event.hwm is not None:
                stop_price, hwm = event.stop_price, event.hwm
        elif isinstance(event, OrderExpired):
            status = OrderStatus.EXPIRED
            reason = str(CancelReason.EXPIRED)
            updated = event.ts
        elif isinstance(event, OrderTriggered):
            status = OrderStatus.OPEN
            updated = event.ts
            if event.hwm is not None:
                stop_price, hwm = event.stop_price, event.hwm
        elif isinstance(event, OrderAmended):
            quantity = event.quantity
            price = event.price if event.price is not None else price
            stop_price = event.stop_price if event.stop_price is not None else stop_price
            if event.trail_ppm is not None or event.trail_price is not None:
                trail = (event.trail_ppm, event.trail_price)
            updated = event.ts
    if accepted is None or status is None:
        return None
    requested = str(accepted.requested_side)
    data = {
        "id": str(order_id),
        "client_order_id": accepted.client_order_id,
        "account_id": accepted.account_id,
        "market": accepted.market,
        "side": requested,
        "type": str(accepted.type),
        "time_in_force": str(accepted.time_in_force),
        "quantity": _qty(quantity, spec),
        "price": _order_price(price, spec, requested),
        "stop_price": _order_price(stop_price, spec, requested),
        "status": str(status),
        "filled_quantity": _qty(filled, spec),
        "average_price": opt_dec(_no_view(_average(notional, filled, spec), spec, requested)),
        "fees": _amount_text(fees, quote_places),
        "created_at": rfc3339_ns(accepted.ts),
        "updated_at": rfc3339_ns(updated),
        "fills": fills,
        "trigger": None if accepted.trigger is None else str(accepted.trigger),
        "cancel_reason": reason,
        **_trailing(trail[0], trail[1], accepted.activation_price, hwm, spec, requested),
        **_exit_prices(
            str(accepted.order_class),
            accepted.parent_order_id,
            _ticks(accepted.take_profit, spec),
            _ticks(accepted.stop_loss, spec),
            _ticks(accepted.stop_loss_limit, spec),
            spec,
            requested,
        ),
    }
    data["legs"] = [
        leg
        for event in events
        if isinstance(event, OrderAccepted) and event.parent_order_id == order_id
        for leg in [order_from_events(events, event.order_id, spec, quote_places)]
        if leg is not None
    ]
    return data


def order_from_row(
    row: models.Order, spec: MarketSpec | None, fills: Sequence[models.Fill]
) -> dict[str, Any]:
    average = row.average_price
    if average is not None and spec is not None:
        average = average.quantize(spec.tick_size * Decimal("0.0001")).normalize()
    view = (lambda v: _no_view(v, spec, row.side)) if spec is not None else (lambda v: v)
    return {
        "id": row.id,
        "client_order_id": row.client_order_id,
        "account_id": row.account_id,
        "market": row.market,
        "side": row.side,
        "type": row.type,
        "time_in_force": row.time_in_force,
        "quantity": dec(row.quantity),
        "price": opt_dec(view(row.price)),
        "stop_price": opt_dec(view(row.stop_price)),
        "status": row.status,
        "filled_quantity": dec(row.filled_quantity),
        "average_price": opt_dec(view(average)),
        "fees": dec(row.fees),
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
        "fills": [fill_from_row(fill) for fill in fills],
        "trigger": row.trigger,
        "cancel_reason": row.cancel_reason,
        "trail_percent": opt_dec(row.trail_percent),
        "trail_price": opt_dec(row.trail_price),
        "activation_price": opt_dec(view(row.activation_price)),
        "hwm": opt_dec(view(row.hwm)),
        **_exit_prices(
            row.order_class or "simple",
            row.parent_order_id,
            row.take_profit,
            row.stop_loss,
            row.stop_loss_limit,
            spec,
            row.side,
        ),
    }
