"""Which topic an event goes to, and topic patterns.

Topics are dot-separated: `orders.<market>`, `trades.<market>`, `accounts`, `markets`,
`market-data.<source>-ticks`. The first token is the topic *family*; brokers that want few
streams/topics (NATS JetStream, Kafka) keep one per family. Patterns use NATS wildcards:
`*` matches one token, `>` (last token only) matches one or more tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tradehall.domain.commands import AnyCommand, Quote
from tradehall.domain.events import (
    AccountOpened,
    AccountStatusChanged,
    AnyEvent,
    BalanceChanged,
    BookChanged,
    CommandRejected,
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
    TradeExecuted,
)

FAMILIES: tuple[str, ...] = ("orders", "trades", "accounts", "markets", "market-data")

BOOK_SOURCE = "book"
"""The market-data source of the engine's own order book (`BookChanged`)."""
MARK_SOURCE = "mark"
"""The market-data source of marks set by a `MarkPrice` command (or a `Quote` without a source)."""


@dataclass(frozen=True, slots=True)
class Route:
    topic: str
    key: str
    """The partition key: the market (or the account on `accounts`), so one key's messages stay ordered."""


class InvalidTopicError(ValueError):
    pass


def route_of(event: AnyEvent, command: AnyCommand) -> Route:
    """The topic and key of `event`; `command` is the journaled command that produced it."""
    match event:
        case OrderAccepted() | OrderRejected() | OrderTriggered() | OrderFilled() | OrderCancelled():
            return Route(f"orders.{event.market}", event.market)
        case OrderExpired() | OrderAmended():
            return Route(f"orders.{event.market}", event.market)
        case TradeExecuted():
            return Route(f"trades.{event.market}", event.market)
        case AccountOpened() | AccountStatusChanged() | BalanceChanged() | PositionChanged():
            return Route("accounts", event.account_id)
        case MarketCreated():
            return Route("markets", event.spec.symbol)
        case MarketStatusChanged() | MarketSettled() | MarketVoided():
            return Route("markets", event.market)
        case BookChanged():
            return Route(f"market-data.{BOOK_SOURCE}-ticks", event.market)
        case MarkPriceUpdated():
            source = command.source if isinstance(command, Quote) and command.source else MARK_SOURCE
            return Route(f"market-data.{_token(source)}-ticks", event.market)
        case CommandRejected():
            # A refused cancel/deposit/withdraw concerns its account; a refused admin command its market.
            return _by_account_then_market(command)
    return _route_by_name(event)


_MARKET_DATA_EVENTS = frozenset({"QuoteUpdated"})
_MARKET_EVENTS = frozenset({"FundingPaid"})


def _route_by_name(event: object) -> Route:
    """Events added after this module: quotes to market data, funding to markets, the rest by owner.

    Matched by name so the bus keeps publishing (never stalls the outbox) when the engine grows.
    """
    name = type(event).__name__
    market = getattr(event, "market", None)
    if name in _MARKET_DATA_EVENTS and isinstance(market, str):
        source = getattr(event, "source", "") or MARK_SOURCE
        return Route(f"market-data.{_token(str(source))}-ticks", market)
    if name in _MARKET_EVENTS and isinstance(market, str):
        return Route("markets", market)
    return _by_account_then_market(event)


def _by_account_then_market(thing: object) -> Route:
    account = getattr(thing, "account_id", None)
    if isinstance(account, str):
        return Route("accounts", account)
    market = getattr(thing, "market", None)
    return Route("markets", market if isinstance(market, str) else "")


def _token(name: str) -> str:
    """A topic token: dots and wildcards would split or widen NATS subjects."""
    return name.lower().replace(".", "_").replace("*", "_").replace(">", "_").replace(" ", "_")


def family_of(topic: str) -> str:
    return topic.split(".", 1)[0]


def validate_pattern(pattern: str) -> list[str]:
    tokens = pattern.split(".")
    if any(not token for token in tokens):
        raise InvalidTopicError(f"empty token in topic pattern {pattern!r}")
    if ">" in tokens[:-1]:
        raise InvalidTopicError(f"'>' must be the last token of {pattern!r}")
    return tokens


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, topic: str) -> bool:
    """Cached: a consumer asks this for every message, about a handful of topics."""
    pattern_tokens = validate_pattern(pattern)
    topic_tokens = topic.split(".")
    for position, wanted in enumerate(pattern_tokens):
        if wanted == ">":
            return len(topic_tokens) > position
        if position >= len(topic_tokens):
            return False
        if wanted != "*" and wanted != topic_tokens[position]:
            return False
    return len(topic_tokens) == len(pattern_tokens)


def families_of_pattern(pattern: str) -> tuple[str, ...]:
    """The families a pattern can match: all of them when its first token is a wildcard."""
    first = validate_pattern(pattern)[0]
    if first in ("*", ">"):
        return FAMILIES
    if first not in FAMILIES:
        known = ", ".join(FAMILIES)
        raise InvalidTopicError(f"unknown topic family {first!r} in {pattern!r}; known: {known}")
    return (first,)
