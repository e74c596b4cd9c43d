"""The wire schemas (pydantic v2), separate from the domain types; decimals travel as strings.

Requests reject unknown fields. Responses are built as plain dicts by `tradehall.api.convert` and
serialised with orjson on the hot paths; these models describe them for OpenAPI and the SDK.

Over 400 lines on purpose: it is the whole wire contract in one place (every request and response
model the OpenAPI document and the SDK describe); splitting it by resource would scatter shared fields.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DecimalStr = Annotated[
    str,
    Field(
        pattern=r"^-?[0-9]{1,20}(\.[0-9]{1,18})?$",
        max_length=40,
        examples=["64000.5"],
        description="A decimal number as a string.",
    ),
]
Symbol = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", examples=["BTC-USD"])]
Currency = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9_\-]{0,31}$", examples=["USD"])]
Username = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
Password = Annotated[str, Field(min_length=1, max_length=256)]
Ident = Annotated[str, Field(min_length=1, max_length=64)]
Timestamp = Annotated[str, Field(description="RFC 3339 UTC time", examples=["2026-01-01T00:00:00Z"])]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(extra="allow")


# ---- auth -------------------------------------------------------------------------------------------


class Credentials(Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"username": "alice", "password": "correct horse battery staple"}]}
    )

    username: Username
    password: Password


class UserOut(Response):
    user_id: str
    username: str
    role: str = "trader"


class TokenOut(Response):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


Scope = Literal["read", "trade"]


class ApiKeyCreate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"label": "trading bot"},
                {"label": "dashboard", "scopes": ["read"], "expires_at": "2035-01-01T00:00:00Z"},
                {
                    "label": "bot of one account",
                    "scopes": ["read", "trade"],
                    "account_id": "acc_3f9c2a7e51d04b8e9a61",
                },
            ]
        }
    )

    label: Annotated[str, Field(max_length=128)] | None = None
    expires_at: Timestamp | None = Field(default=None, description="In the future; null: never expires.")
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=8)] | None = Field(
        default=None,
        description='Default `["read", "trade"]`. `read` is always needed; `trade` places, amends and '
        "cancels orders, closes positions, sets leverage, opens accounts. A key cannot get more than "
        "the credentials that create it.",
    )
    account_id: Ident | None = Field(
        default=None, description="Bind the key to one of the caller's accounts: it acts on that one only."
    )


class ApiKeyInfo(Response):
    key_id: str
    label: str | None = None
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(
        default=None, description="The key's last use, recorded at most once a minute."
    )
    expires_at: Timestamp | None = None
    scopes: list[Scope]
    account_id: str | None = None


class ApiKeyOut(Response):
    key_id: str
    api_key: str = Field(description="The secret: shown once, stored hashed.")
    label: str | None = None
    created_at: Timestamp
    expires_at: Timestamp | None = None
    scopes: list[Scope]
    account_id: str | None = None


class ApiKeysPage(Response):
    items: list[ApiKeyInfo]
    next_cursor: str | None = None


class UserInfo(Response):
    user_id: str
    username: str
    role: Literal["trader", "admin"]
    created_at: Timestamp


class UsersPage(Response):
    items: list[UserInfo]
    next_cursor: str | None = None


class AdminUserCreate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"username": "bob", "password": "a long passphrase", "role": "trader"}]
        }
    )

    username: Username
    password: Password
    role: Literal["trader", "admin"] = "trader"


# ---- accounts ---------------------------------------------------------------------------------------


class AccountCreate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"kind": "cash", "currency": "USD", "initial_balance": "100000"},
                {"kind": "assessment", "currency": "USD", "tier": "ftmo-2step-10k"},
            ]
        }
    )

    kind: Literal["cash", "assessment"] = "cash"
    currency: Currency = "USD"
    initial_balance: DecimalStr | None = None
    tier: Annotated[str, Field(max_length=64)] | None = None
    cost_basis: Literal["fifo", "lifo", "average"] = Field(
        default="average",
        description="How a sale's realised P&L picks the lots it closes: first in, last in, or the "
        "average entry. Fees never enter the cost basis.",
    )


class BalanceOut(Response):
    currency: str
    total: str
    available: str
    held: str


class StatusReasonOut(Response):
    """Why an assessment ended: the rule, the equity that decided it and the rule's level."""

    rule: Literal["max_total_loss", "max_daily_loss", "profit_target"]
    value: str
    limit: str
    at: Timestamp


class AccountShardOut(Response):
    """One shard's part of an account in a cluster (its collateral there)."""

    shard: str
    equity: str
    balances: list[BalanceOut]


class AccountOut(Response):
    id: str
    owner: str
    kind: str
    currency: str
    balance: str
    available: str
    equity: str
    unrealized_pnl: str
    realized_pnl: str
    peak_equity: str
    drawdown: str
    status: Literal["active", "passed", "failed", "closed"]
    trading_state: str
    cost_basis: Literal["fifo", "lifo", "average"]
    tier: str | None = None
    rules: dict[str, object] | None = None
    status_reason: StatusReasonOut | None = None
    balances: list[BalanceOut]
    shards: list[AccountShardOut] | None = Field(
        default=None,
        description="A cluster gateway only: what each shard holds (home shard first). The figures above "
        "add these up, but a shard's balance backs only that shard's orders and positions.",
    )


class LedgerEntryOut(Response):
    id: str
    type: Literal[
        "deposit",
        "withdrawal",
        "trade",
        "fee",
        "funding",
        "settlement",
        "void_refund",
        "liquidation",
        "insurance",
        "opening_balance",
        "transfer",
    ]
    amount: str = Field(description="Signed: a credit is positive, a debit negative.", examples=["-3.20"])
    currency: str
    balance_after: str = Field(description="The account's total in `currency` after this change.")
    market: str | None = None
    order_id: str | None = None
    trade_id: str | None = None
    at: Timestamp


class LedgerPage(Response):
    items: list[LedgerEntryOut]
    next_cursor: str | None = None


class AccountsPage(Response):
    items: list[AccountOut]
    next_cursor: str | None = None


class DepositRequest(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"amount": "5000", "currency": "USD"},
                {"amount": "2", "currency": "BTC", "cost_price": "60000"},
            ]
        }
    )

    amount: DecimalStr
    currency: Currency | None = None
    cost_price: DecimalStr | None = Field(
        default=None,
        description="What deposited units of a spot base cost, in the account's currency: they join the "
        "account's position in the spot market that prices them with that basis, so selling them "
        "realises P&L against it. Without it deposited units have no basis (their sale realises 0).",
    )


class TierOut(Response):
    name: str
    currency: str
    starting_balance: str
    profit_target: str
    max_daily_loss: str
    max_total_loss: str
    drawdown_mode: Literal["static", "eod_trailing", "intraday_trailing"]
    max_risk_per_trade: str | None = None
    max_leverage: str | None = None
    min_trading_days: int
    allowed_markets: list[str] | None = None
    daily_reset_time: str
    timezone: str


class TiersPage(Response):
    items: list[TierOut]
    next_cursor: str | None = None


# ---- markets ----------------------------------------------------------------------------------------


class MarketOut(Response):
    symbol: str
    instrument: str = Field(
        default="",
        description="What the market lists (its own symbol unless listed on several venues, where the"
        " market is named `<instrument>.<VENUE>`); a smart order names the instrument.",
    )
    exchange: str = Field(
        default="TRADEHALL",
        description="The venue the market lists its instrument on: the `<VENUE>` of `<instrument>.<VENUE>`,"
        " `TRADEHALL` for a market named after its instrument.",
    )
    kind: Literal["spot", "perp", "binary"]
    venue: Literal["book", "quote"]
    base: str
    quote: str
    tick_size: str
    lot_size: str
    min_quantity: str | None = None
    max_quantity: str | None = None
    status: Literal["open", "halted", "closed", "settled", "cancelled"]
    maker_fee: str
    taker_fee: str
    fee_model: str
    max_leverage: str | None = None
    initial_margin: str | None = None
    maintenance_margin: str | None = None
    last_price: str | None = None
    mark_price: str | None = None
    slippage: str | None = None
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    quote_max_age_ms: int | None = None
    max_order_notional: str | None = None
    max_position: str | None = None
    price_band: str | None = None
    price_protection: str | None = Field(
        default=None,
        description="A market order trades no further than this fraction beyond the best opposite price"
        " at its arrival; the rest is cancelled with `price_protection`. null: no band.",
    )
    mark_band: str | None = Field(
        default=None,
        description="Book venue: while the book has both sides, a mark outside [best bid x (1 - band),"
        " best ask x (1 + band)] is refused.",
    )
    funding_interval_seconds: int | None = None
    funding_rate: str | None = None
    close_time: Timestamp | None = None
    outcome: Literal["yes", "no"] | None = Field(
        default=None, description="A settled binary market's outcome; null otherwise (also when voided)."
    )
    settled_at: Timestamp | None = Field(
        default=None, description="When a binary market was settled (or voided: status `cancelled`)."
    )


class MarketsPage(Response):
    items: list[MarketOut]
    next_cursor: str | None = None


class MarketCreate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTC-USD",
                    "kind": "spot",
                    "base": "BTC",
                    "quote": "USD",
                    "tick_size": "0.5",
                    "lot_size": "0.001",
                    "maker_fee": "0.0005",
                    "taker_fee": "0.001",
                },
                {
                    "symbol": "BTC-PERP",
                    "kind": "perp",
                    "base": "BTC",
                    "quote": "USD",
                    "tick_size": "0.5",
                    "lot_size": "0.001",
                    "max_leverage": "10",
                    "maintenance_margin": "0.05",
                    "funding_interval_seconds": 28800,
                },
                {
                    "symbol": "FED-CUT-DEC",
                    "kind": "binary",
                    "base": "FED-CUT-DEC",
                    "quote": "USD",
                    "tick_size": "0.01",
                    "lot_size": "1",
                    "fee_model": "quadratic",
                    "close_time": "2035-12-31T19:00:00Z",
                },
                {
                    "symbol": "ETH-USD",
                    "kind": "spot",
                    "venue": "quote",
                    "base": "ETH",
                    "quote": "USD",
                    "tick_size": "0.01",
                    "lot_size": "0.001",
                    "slippage": "0.0005",
                    "quote_max_age_ms": 5000,
                },
            ]
        }
    )

    symbol: Symbol
    instrument: Symbol | None = Field(
        default=None,
        description="The instrument the market lists (default: the symbol); a market listing it on"
        " another venue is named `<instrument>.<VENUE>` (e.g. `BTC-USD.OKX`).",
    )
    kind: Literal["spot", "perp", "binary"]
    venue: Literal["book", "quote"] = "book"
    base: Currency
    quote: Currency
    tick_size: DecimalStr
    lot_size: DecimalStr
    min_quantity: DecimalStr | None = None
    max_quantity: DecimalStr | None = None
    maker_fee: DecimalStr | None = None
    taker_fee: DecimalStr | None = None
    fee_model: Literal["proportional", "quadratic"] = "proportional"
    max_leverage: DecimalStr | None = None
    initial_margin: DecimalStr | None = None
    maintenance_margin: DecimalStr | None = None
    status: Literal["open", "halted", "closed"] = "open"
    slippage: DecimalStr | None = None
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    latency_jitter_ms: int = Field(default=0, ge=0, le=60_000)
    quote_max_age_ms: int | None = Field(default=None, gt=0, le=86_400_000)
    max_order_notional: DecimalStr | None = None
    max_position: DecimalStr | None = None
    price_band: DecimalStr | None = None
    price_protection: DecimalStr | None = Field(
        default="0.05",
        description="Market-order price protection, a fraction in (0, 1) beyond the best opposite price"
        ' at arrival ("0.05" = 5 %, the default); null switches it off.',
    )
    mark_band: DecimalStr = Field(
        default="0.05",
        description="Mark sanity band of a book market, a fraction in [0, 1): while its book has both"
        " sides, a mark outside [best bid x (1 - band), best ask x (1 + band)] is refused.",
    )
    funding_interval_seconds: int | None = Field(default=None, gt=0, le=31_536_000)
    funding_rate: DecimalStr | None = None
    close_time: Timestamp | None = None


Level = Annotated[list[str], Field(min_length=2, max_length=2, description="[price, quantity]")]


class BookOut(Response):
    symbol: str
    sequence: int
    bids: list[Level]
    asks: list[Level]


class TickerOut(Response):
    symbol: str
    bid: str | None = None
    ask: str | None = None
    last: str | None = None
    mark: str | None = None
    volume_24h: str
    sequence: int


class CandleOut(Response):
    t: Timestamp
    open: str
    high: str
    low: str
    close: str
    volume: str


class CandlesPage(Response):
    items: list[CandleOut]
    next_cursor: str | None = None


class PublicTradeOut(Response):
    id: str
    market: str
    price: str
    quantity: str
    side: str
    executed_at: Timestamp


class PublicTradesPage(Response):
    items: list[PublicTradeOut]
    next_cursor: str | None = None


class SettleRequest(Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"outcome": "yes"}]})

    outcome: Literal["yes", "no"]


class PriceRequest(Request):
    """A mark (book markets); on a quote-venue market it is also the quote: bid, ask and last, unless
    `bid`/`ask` are given."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"price": "64000.5"}, {"price": "0.62", "bid": "0.61", "ask": "0.63"}]
        }
    )

    price: DecimalStr
    bid: DecimalStr | None = None
    ask: DecimalStr | None = None


class FundingRequest(Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"rate": "0.0001"}]})

    rate: DecimalStr


class LeverageRequest(Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"market": "BTC-PERP", "leverage": "5"}]})

    market: Symbol
    leverage: DecimalStr


class LeverageOut(Response):
    account_id: str
    market: str
    leverage: str
    initial_margin: str


# ---- orders -----------------------------------------------------------------------------------------

OrderSideIn = Literal["buy", "sell", "long", "short", "yes", "no"]


class TakeProfitIn(Request):
    limit_price: DecimalStr = Field(description="The take-profit exit's limit price.")


class StopLossIn(Request):
    stop_price: DecimalStr = Field(description="The stop-loss exit's stop price.")
    limit_price: DecimalStr | None = Field(
        default=None,
        description="Makes the stop-loss a stop-limit at this price (a sell's at or below its stop).",
    )


class OrderCreate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "account_id": "acc_3f9c2a7e51d04b8e9a61",
                    "market": "BTC-USD",
                    "side": "buy",
                    "type": "limit",
                    "quantity": "0.01",
                    "price": "64000.5",
                    "client_order_id": "my-order-1",
                },
                {
                    "account_id": "acc_3f9c2a7e51d04b8e9a61",
                    "market": "BTC-PERP",
                    "side": "short",
                    "type": "market",
                    "quantity": "0.1",
                },
                {
                    "account_id": "acc_3f9c2a7e51d04b8e9a61",
                    "market": "BTC-PERP",
                    "side": "sell",
                    "type": "stop",
                    "quantity": "0.1",
                    "stop_price": "61000",
                    "trigger": "mark",
                },
                {
                    "account_id": "acc_3f9c2a7e51d04b8e9a61",
                    "market": "BTC-USD",
                    "side": "sell",
                    "type": "trailing_stop",
                    "quantity": "0.01",
                    "trail_percent": "1.5",
                },
                {
                    "account_id": "acc_3f9c2a7e51d04b8e9a61",
                    "market": "BTC-PERP",
                    "side": "long",
                    "type": "limit",
                    "quantity": "0.1",
                    "price": "63500",
                    "post_only": True,
                    "take_profit": "66000",
                    "stop_loss": "62500",
                },
                {
                    "account_id": "acc_3f9c2a7e51d04b8e9a61",
                    "market": "BTC-USD",
                    "side": "buy",
                    "type": "market",
                    "quantity": "0.01",
                    "order_class": "bracket",
                    "take_profit": {"limit_price": "67000"},
                    "stop_loss": {"stop_price": "62000", "limit_price": "61900"},
                },
                {
                    "account_id": "acc_3f9c2a7e51d04b8e9a61",
                    "market": "BTC-PERP",
                    "side": "sell",
                    "type": "limit",
                    "quantity": "0.1",
                    "order_class": "oco",
                    "take_profit": {"limit_price": "66000"},
                    "stop_loss": {"stop_price": "61000"},
                },
                {
                    "account_id": "acc_3f9c2a7e51d04b8e9a61",
                    "market": "FED-CUT-DEC",
                    "side": "yes",
                    "type": "limit",
                    "quantity": "10",
                    "price": "0.62",
                },
            ]
        }
    )

    account_id: Ident
    market: Symbol
    side: OrderSideIn
    type: Literal["market", "limit", "stop", "stop_limit", "trailing_stop"] = "limit"
    quantity: DecimalStr
    price: DecimalStr | None = None
    stop_price: DecimalStr | None = None
    time_in_force: Literal["gtc", "ioc", "fok", "day", "gtd"] = "gtc"
    expire_at: Timestamp | None = None
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    order_class: Literal["simple", "bracket", "oco", "oto"] | None = Field(
        default=None,
        description="`bracket`: an entry with both exits, placed when it fills and sized to its fills;"
        " `oto`: an entry with one exit; `oco`: an exit pair for an open position (the order is its"
        " take-profit). Default `simple`; plain `take_profit`/`stop_loss` strings on a simple order make"
        " it a bracket (both) or an oto (one).",
    )
    take_profit: DecimalStr | TakeProfitIn | None = Field(
        default=None, description="`{limit_price}` (or the price as a string): the take-profit exit."
    )
    stop_loss: DecimalStr | StopLossIn | None = Field(
        default=None,
        description="`{stop_price, limit_price?}` (or the stop price as a string): the stop-loss exit.",
    )
    trigger: Literal["last", "mark", "bid_ask"] | None = Field(
        default=None,
        description="The price a stop watches: the last trade, the mark, or the touch (a buy stop the"
        " ask, a sell stop the bid). Default: `last` on book venues, `bid_ask` on quote venues.",
    )
    trail_percent: DecimalStr | None = Field(
        default=None,
        description='A trailing stop\'s trail as a percentage of its watermark ("1.5" = 1.5 %; above 0,'
        " below 100, at most 4 decimals). Exactly one of trail_percent and trail_price.",
    )
    trail_price: DecimalStr | None = Field(
        default=None, description="A trailing stop's trail as a price distance (on the tick grid)."
    )
    activation_price: DecimalStr | None = Field(
        default=None,
        description="A trailing stop trails only once its trigger price reaches this (a sell's from below,"
        " a buy's from above); it must lie beyond the current trigger price.",
    )
    venue: Literal["smart"] | None = Field(
        default=None,
        description="`smart`: `market` names an instrument, and the order is split across the markets"
        " listing it by fee-adjusted executable price (limit gtc/ioc or market orders); the answer is the"
        " parent with its `children`.",
    )
    decision_price: DecimalStr | None = Field(
        default=None, description="A smart order's decision price, kept for execution analytics."
    )


class OrderAmend(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"price": "64100"},
                {"quantity": "0.02"},
                {"stop_price": "60500"},
                {"trail_percent": "2"},
            ]
        }
    )

    price: DecimalStr | None = None
    quantity: DecimalStr | None = None
    stop_price: DecimalStr | None = Field(
        default=None, description="Moves an untriggered stop (refused if its trigger has already passed it)."
    )
    trail_percent: DecimalStr | None = Field(
        default=None,
        description="Re-trails an untriggered trailing stop: its stop moves to the new trail from the same"
        " watermark (refused if that stop has already been reached).",
    )
    trail_price: DecimalStr | None = Field(default=None, description="As trail_percent, as a price distance.")


class FillOut(Response):
    id: str
    trade_id: str
    order_id: str
    account_id: str
    market: str
    side: str
    price: str
    quantity: str
    fee: str
    liquidity: Literal["maker", "taker"]
    realized_pnl: str
    executed_at: Timestamp
    origin: Literal["liquidation", "assessment_close"] | None = Field(
        default=None, description="Set when the engine made the fill to close the account's position."
    )


class TakeProfitOut(Response):
    limit_price: str


class StopLossOut(Response):
    stop_price: str
    limit_price: str | None = None


class OrderOut(Response):
    id: str
    client_order_id: str | None = None
    account_id: str
    market: str
    side: str
    type: str
    time_in_force: str
    quantity: str
    price: str | None = None
    stop_price: str | None = None
    status: Literal[
        "open", "partially_filled", "filled", "cancelled", "rejected", "expired", "pending_trigger"
    ]
    filled_quantity: str
    average_price: str | None = None
    fees: str
    created_at: Timestamp
    updated_at: Timestamp
    fills: list[FillOut]
    trigger: Literal["last", "mark", "bid_ask"] | None = None
    cancel_reason: str | None = Field(
        default=None, description="Why the order ended without filling completely (see the docs' list)."
    )
    trail_percent: str | None = None
    trail_price: str | None = None
    activation_price: str | None = None
    hwm: str | None = Field(
        default=None,
        description="A trailing stop's watermark: the highest trigger price since activation for a sell,"
        " the lowest for a buy (null while it waits for activation or a first price); `stop_price` is the"
        " stop it gives now.",
    )
    order_class: Literal["simple", "bracket", "oco", "oto"] = "simple"
    parent_order_id: str | None = Field(
        default=None, description="An exit's entry (bracket, oto) or an oco stop-loss's take-profit."
    )
    take_profit: TakeProfitOut | None = None
    stop_loss: StopLossOut | None = None
    legs: list[OrderOut] = Field(
        default_factory=list, description="The exits placed for this order so far (contingent orders)."
    )
    venue: Literal["smart"] | None = Field(
        default=None,
        description="`smart`: a parent order routed across the venues of its instrument (`market`); its"
        " `filled_quantity`, `average_price` and `fees` aggregate its `children`.",
    )
    children: list[OrderOut] | None = Field(
        default=None, description="A smart order's child orders, one per venue it was sent to."
    )
    decision_price: str | None = Field(
        default=None, description="The price the client decided at (implementation shortfall's benchmark)."
    )


class OrdersPage(Response):
    items: list[OrderOut]
    next_cursor: str | None = None


class CancelAllOut(Response):
    items: list[OrderOut]
    next_cursor: str | None = None


# ---- positions and trades ---------------------------------------------------------------------------


class PositionOut(Response):
    account_id: str
    market: str
    side: Literal["long", "short", "yes", "no"]
    quantity: str
    average_entry_price: str | None = None
    mark_price: str | None = None
    unrealized_pnl: str
    realized_pnl: str
    margin: str
    liquidation_price: str | None = None


class PositionsPage(Response):
    items: list[PositionOut]
    next_cursor: str | None = None


class ClosePosition(Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"account_id": "acc_3f9c2a7e51d04b8e9a61"}]})

    account_id: Ident


class FillsPage(Response):
    items: list[FillOut]
    next_cursor: str | None = None


# ---- operations -------------------------------------------------------------------------------------


class HealthOut(Response):
    status: str


class ReadyOut(Response):
    status: Literal["ready", "not_ready"]
    checks: dict[str, object]


class Problem(Response):
    type: str
    title: str
    status: int
    detail: str
    code: str
    correlation_id: str


# ---- the venue's books and clock (admin) -------------------------------------------------------------


class SystemAccountOut(Response):
    name: str
    currency: str
    balance: str


class SystemAccountsPage(Response):
    items: list[SystemAccountOut]
    next_cursor: str | None = None


class ConservationOut(Response):
    currency: str
    deposits: str
    withdrawals: str
    user_balances: str
    system_balances: str
    difference: str


class ConservationPage(Response):
    items: list[ConservationOut]
    next_cursor: str | None = None


class ClockRequest(Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"advance_seconds": "60"}, {"set_to": "2030-01-01T00:00:00Z"}]}
    )

    advance_seconds: Annotated[int | float | DecimalStr, Field(union_mode="left_to_right")] | None = None
    set_to: Timestamp | None = None


class ClockOut(Response):
    now: str


# ---- strategies ---------------------------------------------------------------------------------------


class StrategyParameterOut(Response):
    type: Literal["int", "float", "str", "bool"]
    default: int | float | str | bool
    min: float | None = None
    max: float | None = None
    choices: list[int | float | str | bool] | None = None
    description: str | None = None


class StrategyOut(Response):
    name: str
    description: str
    parameters: dict[str, StrategyParameterOut]


class StrategiesPage(Response):
    items: list[StrategyOut]
    next_cursor: str | None = None


# ---- live sessions ----------------------------------------------------------------------------------


class SessionStrategy(Request):
    name: Annotated[str, Field(min_length=1, max_length=64, examples=["sma_crossover"])]
    weight: Annotated[int | float | DecimalStr, Field(union_mode="left_to_right")] = "1"
    parameters: dict[str, int | float | str | bool] = Field(default_factory=dict)


class SessionCreate(Request):
    """Settings are checked by the session runtime (one place, stable `invalid_request` messages):
    `interval_seconds` (default 45) or `event_driven`, `order_type` (market|limit), `max_positions`,
    `max_position_size`, `min_confidence`, `stop_loss_percent`, `take_profit_percent`,
    `trailing_stop_percent`, `max_drawdown`, `weekly_target`, `order_quantity`, `risk_per_trade`,
    `allow_short`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "account_id": "acc_0123456789abcdef0123",
                    "markets": ["BTC-USD"],
                    "strategies": [
                        {"name": "sma_crossover", "weight": "1", "parameters": {"fast": 10, "slow": 50}}
                    ],
                    "settings": {
                        "interval_seconds": 45,
                        "max_position_size": "1000",
                        "min_confidence": "0.5",
                        "stop_loss_percent": "2",
                        "take_profit_percent": "4",
                    },
                }
            ]
        }
    )

    account_id: Ident
    markets: Annotated[list[Symbol], Field(min_length=1, max_length=32)]
    strategies: Annotated[list[SessionStrategy], Field(min_length=1, max_length=16)]
    settings: dict[str, int | float | str | bool | None] = Field(default_factory=dict)


class SessionOut(Response):
    id: str
    account_id: str
    status: Literal["running", "paused", "stopped", "failed"]
    status_reason: str | None = None
    markets: list[str]
    strategies: list[dict[str, object]]
    settings: dict[str, object]
    cycles: int
    created_at: str
    updated_at: str


class SessionsPage(Response):
    items: list[SessionOut]
    next_cursor: str | None = None


class SessionSignalOut(Response):
    strategy: str
    market: str
    action: Literal["buy", "sell", "hold"]
    confidence: str
    price: str | None = None
    reason: str
    cycle: int
    at: str


class SessionSignalsPage(Response):
    items: list[SessionSignalOut]
    next_cursor: str | None = None


class SessionDecisionOut(Response):
    seq: int
    cycle: int
    market: str
    action: Literal["buy", "sell", "hold"]
    confidence: str
    price: str | None = None
    quantity: str | None = None
    reason: str
    vetoed_by: str | None = None
    status: Literal["pending", "placed", "refused", "vetoed", "hold"]
    client_order_id: str | None = None
    order_id: str | None = None
    error: str | None = None
    at: str


class SessionDecisionsPage(Response):
    items: list[SessionDecisionOut]
    next_cursor: str | None = None


class SessionPerformanceOut(Response):
    metrics: dict[str, object]
    trades: list[dict[str, object]]
    equity: list[list[object]]
    drawdown: list[list[object]]


# ---- backtests ----------------------------------------------------------------------------------------


class BacktestStrategyIn(Request):
    name: str
    weight: float | str = 1.0
    parameters: dict[str, int | float | str | bool] = Field(default_factory=dict)


class BacktestCreate(Request):
    """The strategies (weights, parameters), the one market, its data (a file the server reads, or the
    market's candles between `start` and `end`), the session settings plus `initial_balance` and
    `interval`, the fill model's overrides and a seed."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "strategies": [{"name": "sma_crossover", "parameters": {"fast": 10, "slow": 30}}],
                    "markets": ["BTC-USD"],
                    "data": {"path": "btc-usd-1m.csv"},
                    "settings": {"initial_balance": "10000", "interval": "1m", "max_position_size": "1000"},
                    "fill_model": {"slippage": "0.0005", "fee": "0.001", "latency_ms": 1},
                    "seed": 1,
                }
            ]
        },
    )

    strategies: list[BacktestStrategyIn] = Field(min_length=1, max_length=20)
    markets: list[str] = Field(min_length=1, max_length=1)
    start: str | None = None
    end: str | None = None
    data: dict[str, str] | None = None
    settings: dict[str, int | float | str | bool | None] = Field(default_factory=dict)
    fill_model: dict[str, int | float | str | None] | None = None
    seed: int = Field(default=0, ge=0)


class BacktestOut(Response):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    status_reason: str | None = None
    progress: str
    created_at: str
    updated_at: str


class BacktestsPage(Response):
    items: list[BacktestOut]
    next_cursor: str | None = None


class BacktestReportOut(Response):
    metrics: dict[str, str | int | None]
    trades: list[dict[str, str | None]]
    equity: list[list[str]]
    drawdown: list[list[str | None]]


ShardName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["A"])]


class TransferRequest(Request):
    """`POST /admin/transfers`: move collateral between two shards of a cluster."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "transfer_id": "t-2031",
                    "account_id": "acc-1",
                    "amount": "250",
                    "from_shard": "A",
                    "to_shard": "B",
                }
            ]
        }
    )

    transfer_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    account_id: Annotated[str, Field(min_length=1, max_length=64)]
    amount: DecimalStr
    currency: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    from_shard: ShardName
    to_shard: ShardName
