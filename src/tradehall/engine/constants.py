"""Enum members bound to module-level names for the hot path.

In CPython 3.11 reading `Side.BUY` is a descriptor lookup on the enum class (about 65 ns); a module
global is about 6 ns, and the engine reads dozens of members per command. The enums stay the types
everywhere; these are the same objects under shorter, faster names.
"""

from __future__ import annotations

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

BUY = Side.BUY
SELL = Side.SELL
MARKET_ORDER = OrderType.MARKET
LIMIT_ORDER = OrderType.LIMIT
STOP_ORDER = OrderType.STOP
STOP_LIMIT_ORDER = OrderType.STOP_LIMIT
TRAILING_STOP_ORDER = OrderType.TRAILING_STOP
GTC = TimeInForce.GTC
IOC = TimeInForce.IOC
FOK = TimeInForce.FOK
DAY = TimeInForce.DAY
GTD = TimeInForce.GTD
OPEN = OrderStatus.OPEN
PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
FILLED = OrderStatus.FILLED
CANCELLED = OrderStatus.CANCELLED
EXPIRED = OrderStatus.EXPIRED
PENDING_TRIGGER = OrderStatus.PENDING_TRIGGER
MAKER = Liquidity.MAKER
TAKER = Liquidity.TAKER
SPOT = MarketKind.SPOT
PERP = MarketKind.PERP
BINARY = MarketKind.BINARY
BOOK_VENUE = Venue.BOOK
QUOTE_VENUE = Venue.QUOTE
MARKET_OPEN = MarketStatus.OPEN
SYSTEM_KIND = AccountKind.SYSTEM
ACCOUNT_ACTIVE = AccountStatus.ACTIVE
TRADING_HALTED = TradingState.HALTED
TRADING_REDUCING = TradingState.REDUCING
STP_CANCEL_NEWEST = SelfTradePrevention.CANCEL_NEWEST
STP_CANCEL_OLDEST = SelfTradePrevention.CANCEL_OLDEST
STP_CANCEL_BOTH = SelfTradePrevention.CANCEL_BOTH
TRIGGER_LAST = StopTrigger.LAST
TRIGGER_MARK = StopTrigger.MARK
TRIGGER_BID_ASK = StopTrigger.BID_ASK
SIMPLE_CLASS = OrderClass.SIMPLE
BRACKET_CLASS = OrderClass.BRACKET
OCO_CLASS = OrderClass.OCO
OTO_CLASS = OrderClass.OTO
