"""Enum members bound to module-level names for the hot path.

In CPython 3.11 reading `Side.BUY` is a descriptor lookup on the enum class (about 65 ns); a module
global is about 6 ns, and the engine reads dozens of members per command. The enums stay the types
everywhere; these are the same objects under shorter, faster names.
"""

from __future__ import annotations

from typing import Final

from tradehall.domain.enums import (
    AccountKind,
    AccountStatus,
    Liquidity,
    MarketKind,
    MarketStatus,
    OrderClass,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    StopTrigger,
    TimeInForce,
    TradingState,
    Venue,
)

BUY: Final = Side.BUY
SELL: Final = Side.SELL
MARKET_ORDER: Final = OrderType.MARKET
LIMIT_ORDER: Final = OrderType.LIMIT
STOP_ORDER: Final = OrderType.STOP
STOP_LIMIT_ORDER: Final = OrderType.STOP_LIMIT
TRAILING_STOP_ORDER: Final = OrderType.TRAILING_STOP
GTC: Final = TimeInForce.GTC
IOC: Final = TimeInForce.IOC
FOK: Final = TimeInForce.FOK
DAY: Final = TimeInForce.DAY
GTD: Final = TimeInForce.GTD
OPEN: Final = OrderStatus.OPEN
PARTIALLY_FILLED: Final = OrderStatus.PARTIALLY_FILLED
FILLED: Final = OrderStatus.FILLED
CANCELLED: Final = OrderStatus.CANCELLED
EXPIRED: Final = OrderStatus.EXPIRED
PENDING_TRIGGER: Final = OrderStatus.PENDING_TRIGGER
MAKER: Final = Liquidity.MAKER
TAKER: Final = Liquidity.TAKER
SPOT: Final = MarketKind.SPOT
PERP: Final = MarketKind.PERP
BINARY: Final = MarketKind.BINARY
BOOK_VENUE: Final = Venue.BOOK
QUOTE_VENUE: Final = Venue.QUOTE
MARKET_OPEN: Final = MarketStatus.OPEN
SYSTEM_KIND: Final = AccountKind.SYSTEM
ACCOUNT_ACTIVE: Final = AccountStatus.ACTIVE
TRADING_HALTED: Final = TradingState.HALTED
TRADING_REDUCING: Final = TradingState.REDUCING
STP_CANCEL_NEWEST: Final = SelfTradePrevention.CANCEL_NEWEST
STP_CANCEL_OLDEST: Final = SelfTradePrevention.CANCEL_OLDEST
STP_CANCEL_BOTH: Final = SelfTradePrevention.CANCEL_BOTH
TRIGGER_LAST: Final = StopTrigger.LAST
TRIGGER_MARK: Final = StopTrigger.MARK
TRIGGER_BID_ASK: Final = StopTrigger.BID_ASK
SIMPLE_CLASS: Final = OrderClass.SIMPLE
BRACKET_CLASS: Final = OrderClass.BRACKET
OCO_CLASS: Final = OrderClass.OCO
OTO_CLASS: Final = OrderClass.OTO
