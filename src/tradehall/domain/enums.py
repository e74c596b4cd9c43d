"""Enumerations shared by the engine, the adapters and the API (values are the wire strings)."""

from __future__ import annotations

from enum import StrEnum


class MarketKind(StrEnum):
    SPOT = "spot"
    PERP = "perp"
    BINARY = "binary"


class Venue(StrEnum):
    BOOK = "book"
    QUOTE = "quote"


class MarketStatus(StrEnum):
    OPEN = "open"
    HALTED = "halted"
    CLOSED = "closed"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class Side(StrEnum):
    """The engine's side: every order is a buy or a sell of the market's base (YES for binary)."""

    BUY = "buy"
    SELL = "sell"


class OrderSide(StrEnum):
    """The side a client may ask for; the engine maps it to `Side` per market kind."""

    BUY = "buy"
    SELL = "sell"
    LONG = "long"
    SHORT = "short"
    YES = "yes"
    NO = "no"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class OrderClass(StrEnum):
    """Alpaca's order classes: a plain order, an entry with both exits (`bracket`) or one (`oto`),
    or an exit-only pair for an open position (`oco`)."""

    SIMPLE = "simple"
    BRACKET = "bracket"
    OCO = "oco"
    OTO = "oto"


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    DAY = "day"
    GTD = "gtd"


class OrderStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    PENDING_TRIGGER = "pending_trigger"


class SelfTradePrevention(StrEnum):
    CANCEL_NEWEST = "cancel_newest"
    CANCEL_OLDEST = "cancel_oldest"
    CANCEL_BOTH = "cancel_both"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class FeeModel(StrEnum):
    PROPORTIONAL = "proportional"
    QUADRATIC = "quadratic"


class CostBasis(StrEnum):
    AVERAGE = "average"
    FIFO = "fifo"
    LIFO = "lifo"


class AccountKind(StrEnum):
    CASH = "cash"
    ASSESSMENT = "assessment"
    SYSTEM = "system"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    PASSED = "passed"
    FAILED = "failed"
    CLOSED = "closed"


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class Outcome(StrEnum):
    YES = "yes"
    NO = "no"


class CancelReason(StrEnum):
    """Why an order ended without filling completely: the one list behind `cancel_reason` (an order
    that was accepted and then ended) and `reject_reason` (an order refused at placement).

    `expired` is the reason of every DAY/GTD expiry. `account_closed` is what journals written
    before `assessment_ended` existed carry; nothing emits it any more (kept so they still decode).
    """

    USER = "user"
    IOC_REMAINDER = "ioc_remainder"
    FOK_UNFILLED = "fok_unfilled"
    MARKET_REMAINDER = "market_remainder"
    SELF_TRADE = "self_trade"
    AMENDED_TO_FILLED = "amended_to_filled"
    MARKET_SETTLED = "market_settled"
    MARKET_VOIDED = "market_voided"
    REDUCE_ONLY = "reduce_only"
    UNFUNDED = "unfunded"
    MARKET_CLOSED = "market_closed"
    MARKET_HALTED = "market_halted"
    LIQUIDATION = "liquidation"
    ACCOUNT_CLOSED = "account_closed"
    POST_ONLY = "post_only"
    EXPIRED = "expired"
    OCO = "oco"
    ASSESSMENT_ENDED = "assessment_ended"
    PRICE_PROTECTION = "price_protection"
    WOULD_TRIGGER = "would_trigger"


class StopTrigger(StrEnum):
    """The price a stop watches: the last trade, the mark, or the touch (a buy stop the ask, a sell
    stop the bid). Default: `last` on book venues, `bid_ask` on quote venues."""

    LAST = "last"
    MARK = "mark"
    BID_ASK = "bid_ask"


class FillOrigin(StrEnum):
    """A fill the engine made itself to close a position (absent on ordinary fills)."""

    LIQUIDATION = "liquidation"
    ASSESSMENT_CLOSE = "assessment_close"


class TransferStatus(StrEnum):
    """A cross-shard collateral transfer as one shard's engine holds it (docs/cluster.md).

    The source shard's record goes `in_transit` -> `completed` (the destination credited it) or
    `refunded` (the destination refused it); the destination's record is `credited` or `refused`."""

    IN_TRANSIT = "in_transit"
    COMPLETED = "completed"
    REFUNDED = "refunded"
    CREDITED = "credited"
    REFUSED = "refused"
