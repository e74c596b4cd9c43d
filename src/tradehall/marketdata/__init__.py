"""Market data: feeds (one module per source), circuit breaker, failover, quote cache, router, candles.

Feeds produce the normalised events of `models`; the `Router` turns them into engine commands.
"""

from tradehall.marketdata.breaker import Backoff, CircuitBreaker
from tradehall.marketdata.cache import CachedQuote, InProcessQuoteCache, RedisQuoteCache
from tradehall.marketdata.candles import INTERVALS, Candle, CandleAggregator
from tradehall.marketdata.feed import Feed
from tradehall.marketdata.models import (
    BookDelta,
    BookSide,
    BookSnapshot,
    CircuitState,
    FeedEvent,
    FeedStatus,
    MarketState,
    MarketStatusUpdate,
    Quote,
    TradeTick,
)
from tradehall.marketdata.parsing import ErrorKind, FeedError
from tradehall.marketdata.pump import CommandPump
from tradehall.marketdata.registry import FeedRegistry
from tradehall.marketdata.router import CommandKind, InstrumentRef, MarketRoute, Router, SettlementMode

__all__ = [
    "INTERVALS",
    "Backoff",
    "BookDelta",
    "BookSide",
    "BookSnapshot",
    "CachedQuote",
    "Candle",
    "CandleAggregator",
    "CircuitBreaker",
    "CircuitState",
    "CommandKind",
    "CommandPump",
    "ErrorKind",
    "Feed",
    "FeedError",
    "FeedEvent",
    "FeedRegistry",
    "FeedStatus",
    "InProcessQuoteCache",
    "InstrumentRef",
    "MarketRoute",
    "MarketState",
    "MarketStatusUpdate",
    "Quote",
    "RedisQuoteCache",
    "Router",
    "SettlementMode",
    "TradeTick",
]
