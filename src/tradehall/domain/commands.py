"""Commands: the only input of the engine. Each carries its time and correlation id.

Commands and events are msgspec Structs (frozen, untracked by the garbage collector, tagged) rather
than dataclasses: they are created millions of times on the hot path and journaled as a tagged
union, and `gc=False` keeps the collector from scanning them (they hold no reference cycles).
Quantities, prices and amounts are Decimals here because the engine is the one place that checks
them against the market's tick and lot; everything after the engine is integers.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradehall.domain.enums import (
    AccountKind,
    CostBasis,
    MarketStatus,
    OrderClass,
    OrderSide,
    OrderType,
    Outcome,
    StopTrigger,
    TimeInForce,
)
from tradehall.domain.market import MarketSpec
from tradehall.domain.tiers import TierSpec


class Command(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag=True, tag_field="command"):
    """`ts` is nanoseconds since the epoch, stamped by the sequencer; the engine reads no clock."""

    ts: int = 0
    correlation_id: str = ""


class OpenAccount(Command, frozen=True, kw_only=True, gc=False, tag=True):
    account_id: str
    owner: str
    kind: AccountKind = AccountKind.CASH
    currency: str = "USD"
    cost_basis: CostBasis = CostBasis.AVERAGE
    tier: str | None = None


class Deposit(Command, frozen=True, kw_only=True, gc=False, tag=True):
    account_id: str
    amount: Decimal
    currency: str | None = None
    cost_price: Decimal | None = None
    """What the deposited units of a spot base cost, in the account's currency: they join the
    account's position in the spot market that prices them with that basis (else they have none)."""


class Withdraw(Command, frozen=True, kw_only=True, gc=False, tag=True):
    account_id: str
    amount: Decimal
    currency: str | None = None


class TransferOut(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """Step 1 of moving collateral to another shard: the source shard debits the account's available
    balance into its `system:transfers` account (money in transit). Idempotent by `transfer_id`: a
    repeat changes nothing and answers the first result (docs/cluster.md, "Accounts across shards")."""

    transfer_id: str
    account_id: str
    amount: Decimal
    to_shard: str
    currency: str | None = None


class TransferIn(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """Step 2, in the destination shard: credits the account from its `system:transfers` account, or
    records a refusal (unknown account...) that every repeat answers again: so a refund in the source
    can never meet a later credit here. Idempotent by `transfer_id`."""

    transfer_id: str
    account_id: str
    amount: Decimal
    currency: str
    from_shard: str


class CompleteTransfer(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """Step 3 in the source shard once the destination credited: the record ends `completed`."""

    transfer_id: str


class RefundTransfer(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """Step 3 in the source shard once the destination durably refused: the money in transit goes
    back to the account and the record ends `refunded` with `reason`."""

    transfer_id: str
    reason: str = ""


class CreateMarket(Command, frozen=True, kw_only=True, gc=False, tag=True):
    spec: MarketSpec


class SetMarketStatus(Command, frozen=True, kw_only=True, gc=False, tag=True):
    market: str
    status: MarketStatus


class PlaceOrder(Command, frozen=True, kw_only=True, gc=False, tag=True):
    account_id: str
    market: str
    side: OrderSide
    quantity: Decimal
    type: OrderType = OrderType.LIMIT
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_at: int | None = None
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: str | None = None
    take_profit: Decimal | None = None  # the take-profit exit's limit price (bracket, oto, oco)
    stop_loss: Decimal | None = None  # the stop-loss exit's stop price
    trigger: StopTrigger | None = None  # stops only; None: the venue's default (book last, quote bid_ask)
    # trailing stops only: exactly one trail ("1.5" = 1.5 %, or a price distance), an optional activation
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None
    activation_price: Decimal | None = None
    order_class: OrderClass | None = None  # None: simple, or bracket/oto when exits are given
    stop_loss_limit: Decimal | None = None  # makes the stop-loss exit a stop-limit at this price


class RouteOrder(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """A smart order (`venue: "smart"`): split across the markets listing `instrument` by
    fee-adjusted executable price (`engine/routing.py`); a limit's rest stays on the best venue,
    an IOC's or a market order's is cancelled. Journaled, so a replay routes the same way."""

    account_id: str
    instrument: str
    side: OrderSide
    quantity: Decimal
    type: OrderType = OrderType.LIMIT
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    client_order_id: str | None = None
    decision_price: Decimal | None = None


class CancelOrder(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """`account_id`, when given, must own the order (the gateway passes the caller's account)."""

    order_id: int
    account_id: str | None = None


class CancelAll(Command, frozen=True, kw_only=True, gc=False, tag=True):
    account_id: str
    market: str | None = None


class AmendOrder(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """`quantity` is the new total, filled part included; `stop_price` moves an untriggered stop,
    `trail_percent`/`trail_price` re-trail an untriggered trailing stop (one of them)."""

    order_id: int
    account_id: str | None = None
    price: Decimal | None = None
    quantity: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None


class MarkPrice(Command, frozen=True, kw_only=True, gc=False, tag=True):
    market: str
    price: Decimal


class Quote(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """An external top of book (and optional depth) for quote-venue markets and marks.

    `bids`/`asks` are (price, size) levels best first; when given they replace `bid`/`ask` sizes.
    A size of None means the source does not say: the level is taken as deep enough.
    """

    market: str
    bid: Decimal | None = None
    ask: Decimal | None = None
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None
    last: Decimal | None = None
    bids: tuple[tuple[Decimal, Decimal], ...] = ()
    asks: tuple[tuple[Decimal, Decimal], ...] = ()
    source: str = ""
    exchange_ts: int | None = None


class SetLeverage(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """An account's leverage on a perp market, up to the market's (and its tier's) maximum."""

    account_id: str
    market: str
    leverage: Decimal


class Configure(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """Engine settings from configuration, journaled so that replay applies them at the same point.

    None leaves a setting as it is. Tiers apply to accounts opened afterwards; an open assessment
    keeps the tier it was opened with.
    """

    tiers: dict[str, TierSpec] | None = None
    quote_max_age_ms: int | None = None
    max_open_orders: int | None = None
    id_base: int | None = None
    """A cluster shard's id range (docs/cluster.md): order and trade ids continue above it, so the
    ids of different shards never meet (the gateway routes a cancel by the shard its id names)."""


class ApplyFunding(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """One funding payment at `rate` x position notional at the mark (longs pay shorts when positive)."""

    market: str
    rate: Decimal


class AdvanceTime(Command, frozen=True, kw_only=True, gc=False, tag=True):
    """Moves the engine's clock to `ts`: expires DAY/GTD orders, closes markets at their close time."""


class SettleMarket(Command, frozen=True, kw_only=True, gc=False, tag=True):
    market: str
    outcome: Outcome


class VoidMarket(Command, frozen=True, kw_only=True, gc=False, tag=True):
    market: str


AnyCommand = (
    OpenAccount
    | Deposit
    | Withdraw
    | CreateMarket
    | SetMarketStatus
    | PlaceOrder
    | RouteOrder
    | CancelOrder
    | CancelAll
    | AmendOrder
    | MarkPrice
    | Quote
    | AdvanceTime
    | SettleMarket
    | VoidMarket
    | SetLeverage
    | ApplyFunding
    | Configure
    | TransferOut
    | TransferIn
    | CompleteTransfer
    | RefundTransfer
)
"""The tagged union the journal encodes and decodes."""
