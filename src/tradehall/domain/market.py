"""The market specification: what a market trades and on which terms."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradehall.domain.enums import FeeModel, MarketKind, MarketStatus, SelfTradePrevention, Venue


class MarketSpec(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Edge values are Decimals as the API gives them; the engine turns them into integers once.

    Fees are decimal fractions ("0.001" = 0.1 %). Binary markets may use `fee_model = quadratic`:
    fee = ceil_to_cent(rate x C x P x (1 - P)) with rate `taker_fee` / `maker_fee` (defaults 0.07 / 0.0175).
    Perp margins are fractions of notional; `max_leverage` caps 1 / initial margin.
    Quote-venue markets fill against the latest external quote plus `slippage` (default 0.1 %, binary
    0.2 %), `latency_ms` later when set (plus, per order, a seeded draw in [0, `latency_jitter_ms`]: a
    venue's latency varies, replayably), and refuse orders when the quote is older than `quote_max_age_ms`.
    `price_band` refuses limit prices further than that fraction from the last trade or mark.
    `instrument` names what the market lists (default: its own symbol); markets listing one instrument
    on several venues are named `<instrument>.<VENUE>` (NautilusTrader's convention, `BTC-USD.OKX`),
    and a smart order on the instrument routes across them.
    A msgspec Struct rather than a dataclass: it travels inside journaled commands.
    """

    symbol: str
    kind: MarketKind
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    venue: Venue = Venue.BOOK
    min_quantity: Decimal | None = None
    max_quantity: Decimal | None = None
    maker_fee: Decimal = Decimal("0")
    taker_fee: Decimal = Decimal("0")
    fee_model: FeeModel = FeeModel.PROPORTIONAL
    max_leverage: Decimal | None = None
    initial_margin: Decimal | None = None
    maintenance_margin: Decimal | None = None
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST
    status: MarketStatus = MarketStatus.OPEN
    close_time: int | None = None
    # quote venue (paper fills against external prices)
    slippage: Decimal | None = None
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    quote_max_age_ms: int | None = None
    # pre-trade risk limits (None: no limit)
    max_order_notional: Decimal | None = None
    max_position: Decimal | None = None
    price_band: Decimal | None = None
    # perp funding: a rate per interval, paid by longs to shorts when positive
    funding_interval_seconds: int | None = None
    funding_rate: Decimal | None = None
    # a market order trades no further than this fraction beyond the best opposite price at its
    # arrival; the rest is cancelled (`price_protection`). None: no band.
    price_protection: Decimal | None = Decimal("0.05")
    # book venue: a mark outside [best bid x (1 - mark_band), best ask x (1 + mark_band)] is refused
    # while the book has both sides (one bad tick must not decide an account)
    mark_band: Decimal = Decimal("0.05")
    instrument: str | None = None  # None: the market's own symbol


SMART_VENUE = "smart"
"""An order's `venue` that routes it across the markets of the instrument its `market` names."""


def instrument_of(spec: MarketSpec) -> str:
    """The instrument a market lists: its `instrument`, or its own symbol."""
    return spec.instrument or spec.symbol


def venue_of(spec: MarketSpec) -> str:
    """The venue a market lists its instrument on: `OKX` for `BTC-USD.OKX`; a market named after its
    instrument is tradehall's own venue, `TRADEHALL`."""
    instrument = instrument_of(spec)
    if spec.symbol != instrument and spec.symbol.startswith(instrument + "."):
        return spec.symbol[len(instrument) + 1 :]
    return "TRADEHALL"


DEFAULT_CURRENCY_DECIMALS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "USDT": 6,
    "USDC": 6,
    "BTC": 8,
    "ETH": 8,
    "SOL": 8,
}
"""Minor-unit precision per currency; a currency not listed has 8 places unless configured."""

BINARY_PAYOUT = Decimal("1")
"""A winning binary contract pays 1.00 of the quote currency."""
