"""The normalised market-data model every feed produces, whatever the provider's wire format.

Prices are Decimals in the quote currency (dollars for prediction markets, 0..1), sizes Decimals in
the provider's unit (coins, contracts, shares). Times are nanoseconds since the epoch: `exchange_ts`
is the provider's stamp (None when it sends none), `receive_ts` our clock at arrival.

Events are frozen msgspec Structs (untracked by the garbage collector), not dataclasses, for the
reason the commands are: one or two are created per provider message on the hot path, and a frozen
slotted dataclass costs over ten times as much to build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

import msgspec

Level = tuple[Decimal, Decimal]
"""(price, size)."""


class BookSide(StrEnum):
    BID = "bid"
    ASK = "ask"


class MarketState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    SETTLED_YES = "settled_yes"
    SETTLED_NO = "settled_no"
    VOID = "void"


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Quote(msgspec.Struct, frozen=True, gc=False):
    source: str
    instrument: str
    bid: Decimal | None = None
    ask: Decimal | None = None
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None
    last: Decimal | None = None
    exchange_ts: int | None = None
    receive_ts: int = 0
    volume_24h: Decimal | None = None
    """Base-asset volume of the last 24 hours, from 24 h tickers (None when the source sends none)."""

    @property
    def mid(self) -> Decimal | None:
        """Mid of a two-sided quote, else the last price (price-only sources like CoinGecko)."""
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2
        return self.last


def top_quote(
    source: str,
    instrument: str,
    best_bid: Level | None,
    best_ask: Level | None,
    receive_ts: int,
    *,
    last: Decimal | None = None,
    exchange_ts: int | None = None,
    volume_24h: Decimal | None = None,
) -> Quote:
    """The quote a book's best levels give (None: that side is empty), for every venue's book."""
    return Quote(
        source=source,
        instrument=instrument,
        bid=best_bid[0] if best_bid else None,
        bid_size=best_bid[1] if best_bid else None,
        ask=best_ask[0] if best_ask else None,
        ask_size=best_ask[1] if best_ask else None,
        last=last,
        exchange_ts=exchange_ts,
        receive_ts=receive_ts,
        volume_24h=volume_24h,
    )


class TradeTick(msgspec.Struct, frozen=True, gc=False):
    source: str
    instrument: str
    price: Decimal
    size: Decimal
    side: str | None = None
    """"buy" when the aggressor bought, "sell" when it sold, None when unknown."""
    trade_id: str | None = None
    exchange_ts: int | None = None
    receive_ts: int = 0


class BookSnapshot(msgspec.Struct, frozen=True, gc=False):
    """Full depth; bids best (highest) first, asks best (lowest) first."""

    source: str
    instrument: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int | None = None
    exchange_ts: int | None = None
    receive_ts: int = 0


class BookDelta(msgspec.Struct, frozen=True, gc=False):
    """One level's new absolute size (0 removes it), after the provider's own diff was applied."""

    source: str
    instrument: str
    side: BookSide
    price: Decimal
    size: Decimal
    sequence: int | None = None
    exchange_ts: int | None = None
    receive_ts: int = 0


class Candle(msgspec.Struct, frozen=True, gc=False):
    """One OHLCV bar as the provider built it (Binance `kline`); `closed` once the bar is final."""

    source: str
    instrument: str
    interval: str
    open_ts: int
    close_ts: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    closed: bool
    trades: int | None = None
    exchange_ts: int | None = None
    receive_ts: int = 0


class MarketStatusUpdate(msgspec.Struct, frozen=True, gc=False):
    source: str
    instrument: str
    state: MarketState
    detail: str = ""
    exchange_ts: int | None = None
    receive_ts: int = 0


FeedEvent = Quote | TradeTick | BookSnapshot | BookDelta | Candle | MarketStatusUpdate


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """What /ready and `tradehall feeds status` show for one feed."""

    feed: str
    connected: bool
    mode: str
    """"stream", "polling", "idle" or "stopped"."""
    circuit: CircuitState
    last_message_age_seconds: float | None
    messages: int
    errors: int
    detail: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)
    """Messages that carried no data (acks, unhandled types), by type: never counted as healthy."""

    def as_dict(self) -> dict[str, object]:
        return {
            "feed": self.feed,
            "connected": self.connected,
            "mode": self.mode,
            "circuit": self.circuit.value,
            "last_message_age_seconds": self.last_message_age_seconds,
            "messages": self.messages,
            "errors": self.errors,
            "detail": dict(self.detail),
            "ignored": dict(self.ignored),
        }
