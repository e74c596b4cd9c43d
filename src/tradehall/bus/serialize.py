"""Events to JSON payloads: integer ticks, lots and minor units become decimal strings.

The engine's integers only mean something with the market's spec, so the serializer keeps a cache of
specs fed by `MarketCreated` (and restorable from the publisher's position file). Every conversion
goes through `tradehall.domain.fixedpoint`. Money of a market (fees, P&L, margin, payouts) is in the
market's quote currency; a `BalanceChanged` names its own currency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

import msgspec
import structlog

from tradehall.bus.envelope import SCHEMA_VERSION, Envelope, iso_time, message_id
from tradehall.bus.topics import route_of
from tradehall.domain.events import (
    AccountOpened,
    AnyEvent,
    BalanceChanged,
    BookChanged,
    MarketCreated,
    MarketSettled,
    MarketVoided,
    MarkPriceUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderTriggered,
    PositionChanged,
    TradeExecuted,
)
from tradehall.domain.fixedpoint import PPM, amount_of, decimal_of, decimal_str, trail_percent_of
from tradehall.domain.market import DEFAULT_CURRENCY_DECIMALS, MarketSpec
from tradehall.journal.records import JournalRecord

log = structlog.get_logger(__name__)

UNKNOWN_CURRENCY_DECIMALS = 8


class EventSerializer:
    """Turns journal records into envelopes; owns the market spec cache the conversions need."""

    __slots__ = ("_account_currency", "_currency_decimals", "_default_currency", "_specs", "_warned")

    def __init__(
        self,
        specs: Iterable[MarketSpec] = (),
        currency_decimals: Mapping[str, int] = DEFAULT_CURRENCY_DECIMALS,
        default_currency: str = "USD",
    ) -> None:
        self._specs: dict[str, MarketSpec] = {spec.symbol: spec for spec in specs}
        self._currency_decimals = dict(currency_decimals)
        self._warned: set[str] = set()
        self._account_currency: dict[str, str] = {}
        """From `AccountOpened`; an account not seen since the publisher started uses `default_currency`."""
        self._default_currency = default_currency

    @property
    def specs(self) -> list[MarketSpec]:
        return list(self._specs.values())

    def envelopes(self, record: JournalRecord) -> list[Envelope]:
        command = record.command
        time = iso_time(record.ts)
        result: list[Envelope] = []
        for index, event in enumerate(record.events):
            if isinstance(event, MarketCreated):
                self._specs[event.spec.symbol] = event.spec
            route = route_of(event, command)
            result.append(
                Envelope(
                    id=message_id(record.seq, index),
                    seq=record.seq,
                    index=index,
                    type=type(event).__name__,
                    schema_version=SCHEMA_VERSION,
                    correlation_id=command.correlation_id,
                    ts=record.ts,
                    time=time,
                    topic=route.topic,
                    key=route.key,
                    payload=self.payload(event),
                )
            )
        return result

    def payload(self, event: AnyEvent) -> dict[str, Any]:
        payload: dict[str, Any] = msgspec.to_builtins(event)
        payload.pop("event", None)
        if isinstance(event, AccountOpened):
            self._account_currency[event.account_id] = event.currency
            return payload
        account_converter = _account_converters.get(type(event).__name__)
        if account_converter is not None:
            account_converter(self, event, payload)
            return payload
        if isinstance(event, MarketCreated | BalanceChanged):
            if isinstance(event, BalanceChanged):
                decimals = self._decimals(event.currency)
                payload["total"] = _money(event.total, decimals)
                payload["held"] = _money(event.held, decimals)
                payload["available"] = _money(event.total - event.held, decimals)
                payload["delta"] = _money(event.delta, decimals)
            return payload
        market: str | None = getattr(event, "market", None)
        if market is None:
            return payload
        spec = self._specs.get(market)
        if spec is None:
            converter = _converters.get(type(event)) or _converters_by_name.get(type(event).__name__)
            if converter is not None:
                # Publishing must not stall on an unknown market: send the raw integers, say so.
                if market not in self._warned:
                    self._warned.add(market)
                    log.warning("bus_unknown_market_spec", market=market, event_type=type(event).__name__)
                payload["units"] = "raw"
            return payload
        converter = _converters.get(type(event)) or _converters_by_name.get(type(event).__name__)
        if converter is not None:
            converter(self, spec, event, payload)
        return payload

    def _decimals(self, currency: str) -> int:
        return self._currency_decimals.get(currency, UNKNOWN_CURRENCY_DECIMALS)

    def _account_decimals(self, account_id: str) -> int:
        return self._decimals(self._account_currency.get(account_id, self._default_currency))


@lru_cache(maxsize=65_536)
def _steps(units: int, step: Decimal) -> str:
    """Prices and sizes repeat a lot (a book's levels, round lots): the conversion is cached."""
    return decimal_str(decimal_of(units, step))


def _price(ticks: int | None, spec: MarketSpec) -> str | None:
    return None if ticks is None else _steps(ticks, spec.tick_size)


def _qty(lots: int, spec: MarketSpec) -> str:
    return _steps(lots, spec.lot_size)


@lru_cache(maxsize=65_536)
def _money(minor: int, decimals: int) -> str:
    return decimal_str(amount_of(minor, decimals))


_ONE_PPM = Decimal(1) / PPM


_ONE_E8 = Decimal("0.00000001")


def _ppm(ppm: int) -> str:
    return decimal_str(decimal_of(ppm, _ONE_PPM))


def _stop_terms(spec: MarketSpec, p: dict[str, Any]) -> None:
    """A stop's prices as decimals; a trailing stop's trail as `trail_percent` (a percentage)."""
    for field in ("stop_price", "trail_price", "activation_price", "hwm"):
        if field in p:
            p[field] = _price(p[field], spec)
    if "trail_ppm" in p:
        ppm = p.pop("trail_ppm")
        p["trail_percent"] = None if ppm is None else decimal_str(trail_percent_of(ppm))


def _order_accepted(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    p["quantity"] = _qty(e.quantity, spec)
    p["price"] = _price(e.price, spec)
    _stop_terms(spec, p)


def _order_filled(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    decimals = s._decimals(spec.quote)
    p["price"] = _price(e.price, spec)
    p["quantity"] = _qty(e.quantity, spec)
    p["filled_quantity"] = _qty(e.filled_quantity, spec)
    p["fee"] = _money(e.fee, decimals)
    p["realized_pnl"] = _money(e.realized_pnl, decimals)
    cash = getattr(e, "cash", None)
    if cash is None:
        p.pop("cash", None)
    else:
        p["cash"] = _money(cash, decimals)


def _trade(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    p["price"] = _price(e.price, spec)
    p["quantity"] = _qty(e.quantity, spec)


def _filled_only(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    p["filled_quantity"] = _qty(e.filled_quantity, spec)


def _cancelled(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    p["filled_quantity"] = _qty(e.filled_quantity, spec)
    _stop_terms(spec, p)


def _triggered(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    _stop_terms(spec, p)


def _amended(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    p["price"] = _price(e.price, spec)
    p["quantity"] = _qty(e.quantity, spec)
    _stop_terms(spec, p)


def _position(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    decimals = s._decimals(spec.quote)
    p["quantity"] = _qty(e.quantity, spec)
    p["cost"] = decimal_str(decimal_of(e.cost, spec.tick_size * spec.lot_size))
    p.pop("cost_remainder", None)  # the exact fraction below a tick-lot stays in the engine's records
    p.pop("cost_denominator", None)
    p["realized_pnl"] = _money(e.realized_pnl, decimals)
    p["margin"] = _money(e.margin, decimals)


def _book(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    p["bids"] = [[_price(price, spec), _qty(size, spec)] for price, size in e.bids]
    p["asks"] = [[_price(price, spec), _qty(size, spec)] for price, size in e.asks]
    p["best_bid"] = _price(e.best_bid, spec)
    p["best_ask"] = _price(e.best_ask, spec)


def _mark(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    p["price"] = _price(e.price, spec)


def _settled(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    decimals = s._decimals(spec.quote)
    p["payouts"] = [[account, _money(minor, decimals)] for account, minor in e.payouts]


def _voided(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    decimals = s._decimals(spec.quote)
    p["refunds"] = [[account, _money(minor, decimals)] for account, minor in e.refunds]


_converters: dict[type, Callable[[EventSerializer, MarketSpec, Any, dict[str, Any]], None]] = {
    OrderAccepted: _order_accepted,
    OrderFilled: _order_filled,
    TradeExecuted: _trade,
    OrderCancelled: _cancelled,
    OrderTriggered: _triggered,
    OrderExpired: _filled_only,
    OrderAmended: _amended,
    PositionChanged: _position,
    BookChanged: _book,
    MarkPriceUpdated: _mark,
    MarketSettled: _settled,
    MarketVoided: _voided,
}


# Events added to the domain after the first bus release, converted by name (see topics._route_by_name).


def _quote(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    for field in ("bid", "ask", "last"):
        p[field] = _price(getattr(e, field, None), spec)


def _liquidated(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    decimals = s._decimals(spec.quote)
    p["quantity"] = _qty(e.quantity, spec)
    p["price"] = _price(e.price, spec)
    for field in ("equity", "maintenance", "insurance_paid"):
        p[field] = _money(getattr(e, field), decimals)


def _taken_over(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    p["quantity"] = _qty(e.quantity, spec)
    p["price"] = _price(e.price, spec)
    p["pnl"] = _money(e.pnl, s._decimals(spec.quote))


def _funding(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    decimals = s._decimals(spec.quote)
    ppm = p.pop("rate_ppm", None)  # journals from before 8-decimal rates
    units = p.pop("rate_e8", 0) if ppm is None else ppm * 100
    p["rate"] = decimal_str(decimal_of(units, _ONE_E8))
    p["mark"] = _price(e.mark, spec)
    p["payments"] = [[account, _money(minor, decimals)] for account, minor in e.payments]


def _leverage(s: EventSerializer, spec: MarketSpec, e: Any, p: dict[str, Any]) -> None:
    p["initial_margin"] = _ppm(e.initial_margin_ppm)


_converters_by_name: dict[str, Callable[[EventSerializer, MarketSpec, Any, dict[str, Any]], None]] = {
    "QuoteUpdated": _quote,
    "PositionLiquidated": _liquidated,
    "PositionTakenOver": _taken_over,
    "FundingPaid": _funding,
    "LeverageChanged": _leverage,
}

_ASSESSMENT_MONEY = (
    "equity",
    "floor",
    "target",
    "peak_equity",
    "day_start_balance",
    "daily_floor",
    "total_floor",
    "value",
    "limit",
)


def _assessment(s: EventSerializer, e: Any, p: dict[str, Any]) -> None:
    """Assessment money is in the account's currency."""
    decimals = s._account_decimals(e.account_id)
    for field in _ASSESSMENT_MONEY:
        if isinstance(p.get(field), int):
            p[field] = _money(p[field], decimals)


_account_converters: dict[str, Callable[[EventSerializer, Any, dict[str, Any]], None]] = {
    "AssessmentFailed": _assessment,
    "AssessmentPassed": _assessment,
    "AssessmentUpdated": _assessment,
    "AccountStatusChanged": _assessment,
}
