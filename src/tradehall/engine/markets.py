"""A market inside the engine: its fixed terms (the spec turned into exact integers once) composed with one
state object per concern: the book, positions, stops, quote-venue state, marks and funding."""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any, Final, TypeAlias

from sortedcontainers import SortedList

from tradehall.domain.enums import (
    CostBasis,
    FeeModel,
    Side,
)
from tradehall.domain.errors import invalid_request
from tradehall.domain.fixedpoint import (
    PPM,
    Ratio,
    ceil_div,
    decimal_places,
    minor_of,
    parse_decimal,
    ppm_of,
    rate_units_of,
    units_of,
    units_of_places,
)
from tradehall.domain.market import MarketSpec
from tradehall.engine.book import OrderBook
from tradehall.engine.constants import (
    BINARY,
    BUY,
    MARKET_OPEN,
    PERP,
    QUOTE_VENUE,
    SPOT,
)
from tradehall.engine.orders import Order
from tradehall.engine.positions import Position
from tradehall.engine.stop_book import StopBook

QUADRATIC_TAKER_DEFAULT: Final = Decimal("0.07")
QUADRATIC_MAKER_DEFAULT: Final = Decimal("0.0175")


Book: TypeAlias = OrderBook
"""What a market's book is: `book.OrderBook`, or a subclass overriding all of it (`book_reference.
ReferenceBook`, the tests' oracle). A concrete class rather than a Protocol so that the compiled build
calls the book's methods natively instead of looking each one up by name."""


def _paper_bid_key(order: Order) -> tuple[int, int]:
    assert order.price is not None
    return -order.price, order.priority


def _paper_ask_key(order: Order) -> tuple[int, int]:
    assert order.price is not None
    return order.price, order.priority


MASK64: Final = (1 << 64) - 1


class MarketTerms:
    """A market's fixed terms: the spec turned into exact integers once (fees in ppm, the notional ratio
    from tick-lots to quote minor units, bounds in lots or minor units); nothing here changes after
    creation, so every rule reads the same numbers the snapshot's spec gives back on restore."""

    __slots__ = (
        "band_ppm",
        "base",
        "base_per_lot",
        "collateral_id",
        "funding_interval_ns",
        "funding_rate_e8",
        "initial_margin_ppm",
        "latency_jitter_ns",
        "latency_ns",
        "latency_seed",
        "lot_places",
        "lot_size",
        "maintenance_margin_ppm",
        "maker_ppm",
        "mark_band_ppm",
        "max_lots",
        "max_order_notional",
        "max_position_lots",
        "min_lots",
        "notional",
        "payout_ticks",
        "protection_ppm",
        "quadratic",
        "quadratic_ratio",
        "quote",
        "quote_max_age_ns",
        "slippage_ppm",
        "spec",
        "stp",
        "taker_ppm",
        "tick_places",
        "tick_size",
    )

    def __init__(self, spec: MarketSpec, decimals: dict[str, int]) -> None:
        if spec.tick_size <= 0 or spec.lot_size <= 0:
            raise invalid_request("tick_size and lot_size must be positive")
        if not spec.symbol or len(spec.symbol) > 64:
            raise invalid_request("symbol must be 1 to 64 characters")
        self.spec = spec
        # the currencies as native fields: the hold check and every fill read them (a spec read is a
        # generic attribute lookup on a Struct in the compiled build)
        self.base = spec.base
        self.quote = spec.quote
        self.tick_size = spec.tick_size
        self.lot_size = spec.lot_size
        self.tick_places = decimal_places(spec.tick_size)  # None: a step that is not a power of ten
        self.lot_places = decimal_places(spec.lot_size)
        self.stp = spec.self_trade_prevention
        self.collateral_id = f"system:collateral:{spec.symbol}"
        self.quote_max_age_ns = None if spec.quote_max_age_ms is None else spec.quote_max_age_ms * 1_000_000
        if spec.latency_ms < 0 or spec.latency_jitter_ms < 0:
            raise invalid_request("latency_ms and latency_jitter_ms must be at least 0")
        self.latency_ns = spec.latency_ms * 1_000_000
        self.latency_jitter_ns = spec.latency_jitter_ms * 1_000_000
        self.latency_seed = zlib.crc32(spec.symbol.encode())
        quote_decimals = decimals.get(spec.quote, 8)
        self.notional = Ratio.of(spec.tick_size * spec.lot_size * Decimal(10) ** quote_decimals)
        self.min_lots = units_of(spec.min_quantity, spec.lot_size, "min_quantity") if spec.min_quantity else 1
        self.max_lots = (
            units_of(spec.max_quantity, spec.lot_size, "max_quantity") if spec.max_quantity else None
        )
        self.quadratic = spec.fee_model is FeeModel.QUADRATIC
        maker_fee, taker_fee = spec.maker_fee, spec.taker_fee
        if self.quadratic:
            if spec.kind is not BINARY:
                raise invalid_request("the quadratic fee model is for binary markets")
            maker_fee = maker_fee or QUADRATIC_MAKER_DEFAULT
            taker_fee = taker_fee or QUADRATIC_TAKER_DEFAULT
        if not (0 <= maker_fee < 1 and 0 <= taker_fee < 1):
            raise invalid_request("fees must be fractions in [0, 1)")
        self.maker_ppm = ppm_of(maker_fee, "maker_fee")
        self.taker_ppm = ppm_of(taker_fee, "taker_fee")
        slippage = spec.slippage
        if slippage is None:
            slippage = Decimal("0.002") if spec.kind is BINARY else Decimal("0.001")
        if not 0 <= slippage < 1:
            raise invalid_request("slippage must be a fraction in [0, 1)")
        self.slippage_ppm = ppm_of(slippage, "slippage")
        self.band_ppm = ppm_of(spec.price_band, "price_band") if spec.price_band is not None else None
        if not 0 <= spec.mark_band < 1:
            raise invalid_request("mark_band must be a fraction in [0, 1)")
        self.mark_band_ppm = ppm_of(spec.mark_band, "mark_band")
        protection = spec.price_protection
        if protection is not None and not 0 < protection < 1:
            raise invalid_request("price_protection must be a fraction in (0, 1)")
        self.protection_ppm = ppm_of(protection, "price_protection") if protection is not None else None
        self.max_order_notional = (
            minor_of(spec.max_order_notional, quote_decimals, "max_order_notional")
            if spec.max_order_notional is not None
            else None
        )
        self.max_position_lots = (
            units_of(spec.max_position, spec.lot_size, "max_position")
            if spec.max_position is not None
            else None
        )
        self.funding_interval_ns = (spec.funding_interval_seconds or 0) * 1_000_000_000
        self.funding_rate_e8 = rate_units_of(spec.funding_rate) if spec.funding_rate is not None else 0
        self.base_per_lot = 0
        self.payout_ticks = 0
        self.quadratic_ratio = Ratio(0, 1)
        self.initial_margin_ppm = 0
        self.maintenance_margin_ppm = 0
        if spec.kind is SPOT:
            if spec.base == spec.quote:
                raise invalid_request("a spot market needs different base and quote currencies")
            self.base_per_lot = minor_of(spec.lot_size, decimals.get(spec.base, 8), "lot_size")
        elif spec.kind is PERP:
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

    def latency_of(self, order_id: int) -> int:
        """An order's simulated latency in ns: `latency_ms`, plus a draw in [0, `latency_jitter_ms`]
        seeded by the market's symbol and the order id (splitmix64), so a replay delays it the same."""
        jitter = self.latency_jitter_ns
        if not jitter:
            return self.latency_ns
        mixed = (self.latency_seed * 0x9E3779B97F4A7C15 + order_id) & MASK64
        mixed = ((mixed ^ (mixed >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        mixed = ((mixed ^ (mixed >> 27)) * 0x94D049BB133111EB) & MASK64
        mixed ^= mixed >> 31
        return self.latency_ns + mixed % (jitter // 1_000_000 + 1) * 1_000_000

    def ticks_of(self, value: object, what: str) -> int:
        """A price in ticks. Divided each time, not memoised: a command's Decimal is a fresh object, and
        hashing a fresh Decimal with a fraction (for a memo's key) costs several times the division."""
        return units_of_places(parse_decimal(value, what), self.tick_places, self.tick_size, what)

    def lots_of(self, value: object) -> int:
        return units_of_places(parse_decimal(value, "quantity"), self.lot_places, self.lot_size, "quantity")

    @property
    def fee_denominator(self) -> int:
        return PPM * self.quadratic_ratio.den if self.quadratic else PPM * self.notional.den

    def fee_numerator(self, lots: int, price: int, ppm: int) -> int:
        """A fill's exact fee as a numerator over `fee_denominator` minor units: the rate x the exact
        notional (no rounding before the order's fees are rounded up)."""
        if self.quadratic:
            return ppm * lots * price * (self.payout_ticks - price) * self.quadratic_ratio.num
        return lots * price * self.notional.num * ppm

    def fee_bound(self, lots: int, price: int) -> int:
        """The most `lots` can pay in fees at prices up to `price` (binary: anywhere in the range)."""
        ppm = max(self.maker_ppm, self.taker_ppm)
        if self.quadratic:
            half = self.payout_ticks // 2
            return ceil_div(self.fee_numerator(lots, half, ppm), self.fee_denominator)
        return ceil_div(self.notional.ceil(price * lots) * ppm, PPM)

    def margin_of(self, cost: int, initial_margin_ppm: int) -> int:
        """Initial margin of a position whose entry value is `cost` tick-lots."""
        return ceil_div(self.notional.ceil(abs(cost)) * initial_margin_ppm, PPM)


class QuoteState:
    """A quote venue's view of the external market: the last quote's levels and time, the paper limit
    orders resting against it and the orders waiting out the market's latency."""

    __slots__ = ("asks", "bids", "delayed", "paper_asks", "paper_bids", "ts")

    def __init__(self) -> None:
        self.bids: list[list[Any]] = []  # [price ticks, lots or None], best first
        self.asks: list[list[Any]] = []
        self.ts: int | None = None
        self.paper_bids: SortedList = SortedList(key=_paper_bid_key)
        self.paper_asks: SortedList = SortedList(key=_paper_ask_key)
        self.delayed: list[Order] = []


class MarkState:
    """The market's mark, each account's mark interval (where its next mark-to-market evaluation lies)
    and the time of the next scheduled funding payment."""

    __slots__ = ("interval_high", "interval_low", "interval_of", "next_funding_ts", "price")

    def __init__(self) -> None:
        self.price: int | None = None
        self.interval_low: SortedList = SortedList()  # (low, account id)
        self.interval_high: SortedList = SortedList()  # (high, account id)
        self.interval_of: dict[str, tuple[int, int]] = {}
        self.next_funding_ts: int | None = None

    def set_interval(self, account_id: str, interval: tuple[int, int] | None) -> None:
        """Where this account's next mark-to-market evaluation lies; None: it has no position here."""
        old = self.interval_of.pop(account_id, None)
        if old is not None:
            self.interval_low.remove((old[0], account_id))
            self.interval_high.remove((old[1], account_id))
        if interval is not None:
            self.interval_of[account_id] = interval
            self.interval_low.add((interval[0], account_id))
            self.interval_high.add((interval[1], account_id))

    def accounts_to_evaluate(self, mark: int) -> list[str]:
        """Accounts whose interval the mark has left (mark <= low or mark >= high)."""
        lows = self.interval_low
        highs = self.interval_high
        # Most marks leave no interval: the highest low and the lowest high say so without a search.
        # They are read from the sorted lists' sublists (`_lists`, sortedcontainers 2's layout: sorted
        # non-empty lists, none when empty), as SortedList's own indexing is interpreted Python.
        low_lists, high_lists = lows._lists, highs._lists
        if (not low_lists or low_lists[-1][-1] < (mark + 1, "")) and (
            not high_lists or high_lists[0][0] > (mark, "\uffff")
        ):
            return []
        found: set[str] = set()
        index = lows.bisect_left((mark + 1, ""))
        for position in range(index, len(lows)):
            found.add(lows[position][1])
        for position in range(highs.bisect_right((mark, "\uffff"))):
            found.add(highs[position][1])
        return sorted(found)


class Market:
    """A market inside the engine: its identity and status, its fixed terms, and one state object per
    concern (the book and its last trade, positions, stops, quote-venue state, marks and funding)."""

    __slots__ = (
        "book",
        "book_sequence",
        "clearing_pnl",
        "kind",
        "last_price",
        "marks",
        "open_lots",
        "positions",
        "quote",
        "spec",
        "status",
        "stops",
        "symbol",
        "terms",
        "venue",
    )

    def __init__(self, spec: MarketSpec, decimals: dict[str, int], book: Book) -> None:
        self.terms = MarketTerms(spec, decimals)
        self.spec = spec
        self.symbol = spec.symbol
        self.kind = spec.kind
        self.venue = spec.venue
        self.status = spec.status
        self.book = book
        self.book_sequence = 0
        self.last_price: int | None = None
        self.positions: dict[str, Position] = {}
        self.open_lots = 0  # perp: sum of |quantity| over positions; 0 = nothing open
        self.clearing_pnl = 0  # perp: realised P&L posted since the market was last flat (minor units)
        self.stops = StopBook()
        self.quote = QuoteState()
        self.marks = MarkState()

    def best_bid(self) -> int | None:
        """The best price a seller can reach: the book's bid, or the external quote's."""
        if self.venue is QUOTE_VENUE:
            return self.quote.bids[0][0] if self.quote.bids else None
        return self.book.best_bid()

    def best_ask(self) -> int | None:
        if self.venue is QUOTE_VENUE:
            return self.quote.asks[0][0] if self.quote.asks else None
        return self.book.best_ask()

    def protection_limit(self, side: Side) -> int | None:
        """The furthest price a market order arriving now may trade at: `price_protection` beyond
        the best opposite price (None: no band, or no opposite price to measure it from)."""
        ppm = self.terms.protection_ppm
        if ppm is None:
            return None
        if side is BUY:
            best = self.best_ask()
            if best is None:
                return None
            limit = best * (PPM + ppm) // PPM
            return min(limit, self.terms.payout_ticks - 1) if self.kind is BINARY else limit
        best = self.best_bid()
        if best is None:
            return None
        return max(ceil_div(best * (PPM - ppm), PPM), 1)

    def position(self, account_id: str, method: CostBasis) -> Position:
        position = self.positions.get(account_id)
        if position is None:
            position = self.positions[account_id] = Position(account_id, self.symbol, method)
        return position

    def resting_orders(self) -> list[Order]:
        """Orders waiting for a counterparty: in the book, or (quote venue) in the paper lists."""
        return (
            self.book.orders()
            + list(self.quote.paper_bids)
            + list(self.quote.paper_asks)
            + list(self.quote.delayed)
        )

    @property
    def open_for_orders(self) -> bool:
        return self.status is MARKET_OPEN
