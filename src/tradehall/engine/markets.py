"""A market inside the engine: its spec turned into exact integers once, its book and positions."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from sortedcontainers import SortedList

from tradehall.domain.enums import CostBasis, FeeModel, MarketKind, MarketStatus, SelfTradePrevention, Side
from tradehall.domain.errors import invalid_request
from tradehall.domain.fixedpoint import PPM, Ratio, ceil_div, minor_of, parse_decimal, ppm_of, units_of
from tradehall.domain.market import MarketSpec
from tradehall.engine.book import Fill
from tradehall.engine.orders import Order
from tradehall.engine.positions import Position

QUADRATIC_TAKER_DEFAULT = Decimal("0.07")
QUADRATIC_MAKER_DEFAULT = Decimal("0.0175")


class Book(Protocol):
    """What the engine needs of an order book (`book.OrderBook` and `book_reference.ReferenceBook`)."""

    def best_bid(self) -> int | None: ...
    def best_ask(self) -> int | None: ...
    def depth(self, limit: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: ...
    def orders(self) -> list[Order]: ...
    def would_cross(self, side: Side, price: int) -> bool: ...
    def fillable(
        self, side: Side, limit: int | None, quantity: int, account_id: str, stp: SelfTradePrevention
    ) -> tuple[int, int | None]: ...
    def add(self, order: Order) -> None: ...
    def remove(self, order: Order) -> None: ...
    def reduce(self, order: Order, new_remaining: int) -> None: ...
    def match(
        self,
        side: Side,
        limit: int | None,
        quantity: int,
        account_id: str,
        stp: SelfTradePrevention,
        fills: list[Fill],
        stp_cancelled: list[Order],
    ) -> tuple[int, bool]: ...
    def take_changes(self) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]: ...
    def has_changes(self) -> bool: ...


def _stop_key(order: Order) -> tuple[int, int]:
    assert order.stop_price is not None
    return order.stop_price, order.order_id


class Market:
    """Integers derived from the spec: fees in ppm, the notional ratio from tick-lots to quote minor units."""

    __slots__ = (
        "_lots_cache",
        "_ticks_cache",
        "base_per_lot",
        "book",
        "book_sequence",
        "collateral_id",
        "initial_margin_ppm",
        "kind",
        "last_price",
        "maintenance_margin_ppm",
        "maker_ppm",
        "mark_price",
        "max_lots",
        "min_lots",
        "notional",
        "payout_ticks",
        "positions",
        "quadratic",
        "quadratic_ratio",
        "spec",
        "status",
        "stops_buy",
        "stops_sell",
        "stp",
        "symbol",
        "taker_ppm",
    )

    def __init__(self, spec: MarketSpec, decimals: dict[str, int], book: Book) -> None:
        if spec.tick_size <= 0 or spec.lot_size <= 0:
            raise invalid_request("tick_size and lot_size must be positive")
        if not spec.symbol or len(spec.symbol) > 64:
            raise invalid_request("symbol must be 1 to 64 characters")
        self.spec = spec
        self._ticks_cache: dict[object, int] = {}
        self._lots_cache: dict[object, int] = {}
        self.symbol = spec.symbol
        self.kind = spec.kind
        self.status = spec.status
        self.stp = spec.self_trade_prevention
        self.book = book
        self.book_sequence = 0
        self.last_price: int | None = None
        self.mark_price: int | None = None
        self.positions: dict[str, Position] = {}
        self.stops_buy: SortedList = SortedList(key=_stop_key)
        self.stops_sell: SortedList = SortedList(key=_stop_key)
        self.collateral_id = f"system:collateral:{spec.symbol}"
        quote_decimals = decimals.get(spec.quote, 8)
        self.notional = Ratio.of(spec.tick_size * spec.lot_size * Decimal(10) ** quote_decimals)
        self.min_lots = units_of(spec.min_quantity, spec.lot_size, "min_quantity") if spec.min_quantity else 1
        self.max_lots = (
            units_of(spec.max_quantity, spec.lot_size, "max_quantity") if spec.max_quantity else None
        )
        self.quadratic = spec.fee_model is FeeModel.QUADRATIC
        maker_fee, taker_fee = spec.maker_fee, spec.taker_fee
        if self.quadratic:
            if spec.kind is not MarketKind.BINARY:
                raise invalid_request("the quadratic fee model is for binary markets")
            maker_fee = maker_fee or QUADRATIC_MAKER_DEFAULT
            taker_fee = taker_fee or QUADRATIC_TAKER_DEFAULT
        if not (0 <= maker_fee < 1 and 0 <= taker_fee < 1):
            raise invalid_request("fees must be fractions in [0, 1)")
        self.maker_ppm = ppm_of(maker_fee, "maker_fee")
        self.taker_ppm = ppm_of(taker_fee, "taker_fee")
        self.base_per_lot = 0
        self.payout_ticks = 0
        self.quadratic_ratio = Ratio(0, 1)
        self.initial_margin_ppm = 0
        self.maintenance_margin_ppm = 0
        if spec.kind is MarketKind.SPOT:
            if spec.base == spec.quote:
                raise invalid_request("a spot market needs different base and quote currencies")
            self.base_per_lot = minor_of(spec.lot_size, decimals.get(spec.base, 8), "lot_size")
        elif spec.kind is MarketKind.PERP:
            initial = spec.initial_margin
            if initial is None and spec.max_leverage:
                initial = 1 / spec.max_leverage
            if initial is None:
                raise invalid_request("a perp market needs initial_margin or max_leverage")
            initial = initial.quantize(Decimal("0.000001"))
            maintenance = spec.maintenance_margin or initial / 2
            self.initial_margin_ppm = ppm_of(initial, "initial_margin")
            self.maintenance_margin_ppm = ppm_of(maintenance.quantize(Decimal("0.000001")), "maintenance")
            if not (0 < self.maintenance_margin_ppm <= self.initial_margin_ppm <= PPM):
                raise invalid_request("need 0 < maintenance_margin <= initial_margin <= 1")
        else:
            self.payout_ticks = units_of(Decimal(1), spec.tick_size, "binary payout")
            if self.notional.den != 1:
                raise invalid_request("a binary market's tick x lot must be whole minor units of its quote")
            self.quadratic_ratio = Ratio.of(
                spec.lot_size * spec.tick_size * spec.tick_size * Decimal(10) ** quote_decimals
            )

    # --- money of a fill -----------------------------------------------------------------

    def ticks_of(self, value: object, what: str) -> int:
        """A price in ticks; the Decimal conversion is memoised (prices repeat near the market)."""
        cache = self._ticks_cache
        try:
            ticks = cache.get(value)
        except TypeError:  # unhashable, or a signalling NaN: the parser says what is wrong
            return units_of(parse_decimal(value, what), self.spec.tick_size, what)
        if ticks is None:
            ticks = units_of(parse_decimal(value, what), self.spec.tick_size, what)
            if len(cache) > 100_000:
                cache.clear()
            cache[value] = ticks
        return ticks

    def lots_of(self, value: object) -> int:
        cache = self._lots_cache
        try:
            lots = cache.get(value)
        except TypeError:
            return units_of(parse_decimal(value, "quantity"), self.spec.lot_size, "quantity")
        if lots is None:
            lots = units_of(parse_decimal(value, "quantity"), self.spec.lot_size, "quantity")
            if len(cache) > 100_000:
                cache.clear()
            cache[value] = lots
        return lots

    @property
    def fee_denominator(self) -> int:
        return PPM * self.quadratic_ratio.den if self.quadratic else PPM

    def fee_numerator(self, notional: int, lots: int, price: int, ppm: int) -> int:
        """A fill's exact fee as a numerator over `fee_denominator` minor units."""
        if self.quadratic:
            return ppm * lots * price * (self.payout_ticks - price) * self.quadratic_ratio.num
        return notional * ppm

    def fee_bound(self, lots: int, price: int) -> int:
        """The most `lots` can pay in fees at prices up to `price` (binary: anywhere in the range)."""
        ppm = max(self.maker_ppm, self.taker_ppm)
        if self.quadratic:
            half = self.payout_ticks // 2
            return ceil_div(self.fee_numerator(0, lots, half, ppm), self.fee_denominator)
        return ceil_div(self.notional.ceil(price * lots) * ppm, PPM)

    def margin_of(self, cost: int) -> int:
        """Initial margin of a position whose entry value is `cost` tick-lots."""
        return ceil_div(self.notional.ceil(abs(cost)) * self.initial_margin_ppm, PPM)

    def position(self, account_id: str, method: CostBasis) -> Position:
        position = self.positions.get(account_id)
        if position is None:
            position = self.positions[account_id] = Position(account_id, self.symbol, method)
        return position

    @property
    def open_for_orders(self) -> bool:
        return self.status is MarketStatus.OPEN
