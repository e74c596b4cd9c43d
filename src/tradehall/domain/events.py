"""Events: the only output of the engine. Every state change is one.

Prices are integer ticks, quantities integer lots and money integer minor units of the currency;
an adapter turns them into Decimals with the market's spec (`MarketCreated` carries it) through
`tradehall.domain.fixedpoint`. Times are nanoseconds since the epoch.

Over 400 lines on purpose: the event vocabulary is one tagged union that the journal, bus and
projector decode as a whole; most of the length is the field lists.
"""

from __future__ import annotations

import msgspec

from tradehall.domain.enums import (
    AccountKind,
    AccountStatus,
    CancelReason,
    CostBasis,
    FillOrigin,
    Liquidity,
    MarketStatus,
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    Outcome,
    Side,
    StopTrigger,
    TimeInForce,
    TradingState,
    TransferStatus,
)
from tradehall.domain.errors import Code
from tradehall.domain.market import MarketSpec


class Event(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag=True, tag_field="event"):
    pass


class AccountOpened(Event, frozen=True, kw_only=True, gc=False, tag=True):
    account_id: str
    owner: str
    kind: AccountKind
    currency: str
    cost_basis: CostBasis
    tier: str | None
    ts: int


class AccountStatusChanged(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """`reason` is the rule that ended an assessment (`max_total_loss`, `max_daily_loss`,
    `profit_target`); `value` (equity) and `limit` (the floor or target) are minor units of the
    account's currency: the account's `status_reason`."""

    account_id: str
    status: AccountStatus
    trading_state: TradingState
    reason: str
    ts: int
    value: int | None = None
    limit: int | None = None


class MarketCreated(Event, frozen=True, kw_only=True, gc=False, tag=True):
    spec: MarketSpec
    ts: int


class MarketStatusChanged(Event, frozen=True, kw_only=True, gc=False, tag=True):
    market: str
    status: MarketStatus
    ts: int


class OrderAccepted(Event, frozen=True, kw_only=True, gc=False, tag=True):
    order_id: int
    account_id: str
    market: str
    side: Side
    requested_side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    quantity: int
    price: int | None
    stop_price: int | None
    expire_at: int | None
    post_only: bool
    reduce_only: bool
    client_order_id: str | None
    status: OrderStatus
    ts: int
    trigger: StopTrigger | None = None  # a stop's trigger source; None for other orders
    # a trailing stop's terms; `hwm` (and `stop_price`) None while it waits for activation or a price
    trail_ppm: int | None = None  # trail_percent in parts per million of the price
    trail_price: int | None = None
    activation_price: int | None = None
    hwm: int | None = None
    order_class: OrderClass = OrderClass.SIMPLE
    parent_order_id: int | None = None  # an exit of a bracket/oto/oco: the order it belongs to
    take_profit: int | None = None  # an entry's (or an oco's) exit prices, in ticks
    stop_loss: int | None = None
    stop_loss_limit: int | None = None


class RoutedChild(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One child of a smart order: its order (None when the venue refused it, with `code`), the market,
    the lots and limit (ticks, None for a market child) it was sent with, and the lots the route
    planned to take there now (the rest of a resting child's quantity waits on the book)."""

    order_id: int | None
    market: str
    quantity: int
    price: int | None
    planned: int
    code: Code | None = None


class OrderRouted(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """A smart order (the parent, `order_id`, in the order id space) and the children the router sent.

    `quantity`/`price` are decimal strings (venues differ in tick and lot); `unrouted` is what no venue
    took nor keeps (cancelled with `reason`)."""

    order_id: int
    account_id: str
    instrument: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    quantity: str
    price: str | None
    client_order_id: str | None
    decision_price: str | None
    children: tuple[RoutedChild, ...]
    unrouted: str
    reason: CancelReason | None
    ts: int


class OrderRejected(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """A refused order: it never becomes an order, but the refusal is journaled like everything else."""

    account_id: str
    market: str
    client_order_id: str | None
    code: Code
    reason: str
    ts: int
    reject_reason: CancelReason | None = None  # when one of the end reasons names the refusal


class CommandRejected(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """A refused command other than an order placement (cancel, amend, deposit, admin commands)."""

    command: str
    code: Code
    reason: str
    ts: int


class OrderTriggered(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """`stop_price` and `hwm` are a trailing stop's at the moment it fired (None for other stops)."""

    order_id: int
    account_id: str
    market: str
    ts: int
    stop_price: int | None = None
    hwm: int | None = None


class OrderFilled(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """One side of one match; `realized_pnl` is gross (fees are only in `fee`)."""

    order_id: int
    account_id: str
    market: str
    trade_id: int
    side: Side
    price: int
    quantity: int
    fee: int
    liquidity: Liquidity
    realized_pnl: int
    filled_quantity: int
    status: OrderStatus
    ts: int
    origin: FillOrigin | None = None  # set on the closed account's side of an engine close-out
    cash: int | None = None
    """Spot: the quote minor units this side paid (buy, rounded up) or received (sell, rounded down);
    None for other kinds and in journals from before it was recorded (then: the floor of the notional)."""


class TradeExecuted(Event, frozen=True, kw_only=True, gc=False, tag=True):
    trade_id: int
    market: str
    price: int
    quantity: int
    taker_side: Side
    maker_order_id: int
    taker_order_id: int
    maker_account_id: str
    taker_account_id: str
    ts: int


class OrderCancelled(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """`stop_price` and `hwm`: an untriggered trailing stop's last (the engine moves them without events)."""

    order_id: int
    account_id: str
    market: str
    filled_quantity: int
    reason: CancelReason
    ts: int
    stop_price: int | None = None
    hwm: int | None = None


class OrderExpired(Event, frozen=True, kw_only=True, gc=False, tag=True):
    order_id: int
    account_id: str
    market: str
    filled_quantity: int
    ts: int


class OrderAmended(Event, frozen=True, kw_only=True, gc=False, tag=True):
    order_id: int
    account_id: str
    market: str
    price: int | None
    quantity: int
    priority_lost: bool
    ts: int
    stop_price: int | None = None  # an untriggered stop's (possibly moved) stop price
    trail_ppm: int | None = None  # a re-trailed trailing stop's new trail (one of the two)
    trail_price: int | None = None


class BalanceChanged(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """`total` and `held` after the change; `available = total - held`."""

    account_id: str
    currency: str
    total: int
    held: int
    delta: int
    reason: str


class PositionChanged(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """`quantity` is signed lots (negative = short or NO); the entry value is exactly `cost +
    cost_remainder / cost_denominator` signed tick-lots (`cost` its floor; the fraction is non-zero
    only for average cost after a partial reduce). `realized_pnl` is the position's current life's."""

    account_id: str
    market: str
    quantity: int
    cost: int
    realized_pnl: int
    margin: int
    cost_remainder: int = 0
    cost_denominator: int = 1


class BookChanged(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """The L2 levels one command changed, with their new total (0 = the level is gone).

    `sequence` increases by exactly one per BookChanged of a market: the WebSocket book's counter.
    `best_bid`/`best_ask` are the top of the book after the change (None: that side is empty, and in
    journals written before they existed), so a reader knows the mid without keeping the book.
    """

    market: str
    sequence: int
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]
    best_bid: int | None = None
    best_ask: int | None = None


class MarkPriceUpdated(Event, frozen=True, kw_only=True, gc=False, tag=True):
    market: str
    price: int
    ts: int


class MarketSettled(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """`payouts` are (account id, minor units paid); every position of the market is closed."""

    market: str
    outcome: Outcome
    payouts: tuple[tuple[str, int], ...]
    ts: int


class MarketVoided(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """The market's event is void (status `cancelled`): every YES and every NO contract paid 0.50.

    `refunds` are (account id, minor units paid from the market's collateral: half the payout per
    contract held, rounded down), one per account that held a position, sorted by account id: each is
    that account's `void_refund`. What the rounding leaves in the collateral went to `system:fees`;
    every position of the market is closed and its open orders were cancelled first.
    """

    market: str
    refunds: tuple[tuple[str, int], ...]
    ts: int


class QuoteUpdated(Event, frozen=True, kw_only=True, gc=False, tag=True):
    market: str
    bid: int | None
    ask: int | None
    last: int | None
    source: str
    ts: int


class PositionLiquidated(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """A perp position closed by the engine at the mark because equity fell below maintenance."""

    account_id: str
    market: str
    quantity: int
    price: int
    equity: int
    maintenance: int
    insurance_paid: int
    ts: int


class PositionTakenOver(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """The part of a close-out (liquidation, assessment end) the book could not absorb within its
    protection band, taken over by `system:insurance` at the mark.

    A transfer between the account and the fund, not a trade: no TradeExecuted, no OrderFilled, no
    candle, no ticker, no last price. `quantity` is the signed lots the account held (the fund now
    holds them), `pnl` the account's realised P&L of them in quote minor units, `reason`
    `liquidation` or `assessment_ended`.
    """

    account_id: str
    market: str
    quantity: int
    price: int
    pnl: int
    reason: str
    ts: int


class FundingPaid(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """`payments` are (account id, minor units paid; negative = received): a payer's exact amount
    rounded up, a receiver's down. `rate_e8` is the rate in 1e-8; journals written before 8-decimal
    rates carry `rate_ppm` instead (read `rate_units`)."""

    market: str
    mark: int
    payments: tuple[tuple[str, int], ...]
    ts: int
    rate_e8: int = 0
    rate_ppm: int | None = None

    @property
    def rate_units(self) -> int:
        """The rate in 1e-8, whichever field the record carries."""
        return self.rate_e8 if self.rate_ppm is None else self.rate_ppm * 100


class LeverageChanged(Event, frozen=True, kw_only=True, gc=False, tag=True):
    account_id: str
    market: str
    initial_margin_ppm: int
    ts: int


class AssessmentFailed(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """`rule`: max_daily_loss, max_total_loss (the tier's names); `equity` and `floor` in minor
    units at the breach."""

    account_id: str
    rule: str
    equity: int
    floor: int
    ts: int


class AssessmentPassed(Event, frozen=True, kw_only=True, gc=False, tag=True):
    account_id: str
    equity: int
    target: int
    trading_days: int
    ts: int


class AssessmentUpdated(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """Peak equity, floors and progress of an assessment after a change (for read models and /accounts)."""

    account_id: str
    equity: int
    peak_equity: int
    day_start_balance: int
    daily_floor: int
    total_floor: int
    trading_days: int
    ts: int


class EngineConfigured(Event, frozen=True, kw_only=True, gc=False, tag=True):
    tiers: tuple[str, ...]
    quote_max_age_ms: int
    max_open_orders: int
    ts: int
    id_base: int = 0


class TransferUpdated(Event, frozen=True, kw_only=True, gc=False, tag=True):
    """A cross-shard transfer's record in this shard after a transfer command. `side` is `out` (this
    shard is the source, `peer_shard` the destination) or `in`; `amount` is in minor units; `reason`
    says why a transfer was refused or refunded. `repeated`: the command repeated one already applied
    and changed nothing (the record is the first result, answered again)."""

    transfer_id: str
    account_id: str
    currency: str
    amount: int
    side: str
    peer_shard: str
    status: TransferStatus
    reason: str
    repeated: bool
    ts: int


AnyEvent = (
    AccountOpened
    | AccountStatusChanged
    | MarketCreated
    | MarketStatusChanged
    | OrderAccepted
    | OrderRejected
    | OrderRouted
    | CommandRejected
    | OrderTriggered
    | OrderFilled
    | TradeExecuted
    | OrderCancelled
    | OrderExpired
    | OrderAmended
    | BalanceChanged
    | PositionChanged
    | BookChanged
    | MarkPriceUpdated
    | MarketSettled
    | MarketVoided
    | QuoteUpdated
    | PositionLiquidated
    | PositionTakenOver
    | FundingPaid
    | LeverageChanged
    | AssessmentFailed
    | AssessmentPassed
    | AssessmentUpdated
    | EngineConfigured
    | TransferUpdated
)
