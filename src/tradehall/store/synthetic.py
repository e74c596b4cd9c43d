"""Synthetic journal records for the store's tests and benchmark (no engine needed).

`SyntheticMarket` plays a tiny, consistent exchange for one perp market: makers rest limit orders,
takers cross the oldest one in full, and every trade emits what the engine would (OrderAccepted,
two OrderFilled, TradeExecuted, BalanceChanged for fees, PositionChanged for both sides). It keeps
the expected end state (positions, balances, order statuses) so tests can compare the read models
to it exactly. Not a matching engine: no partial fills, no books of several levels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tradehall.domain.commands import CreateMarket, Deposit, MarkPrice, OpenAccount, PlaceOrder
from tradehall.domain.enums import (
    AccountKind,
    CostBasis,
    Liquidity,
    MarketKind,
    OrderSide,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from tradehall.domain.events import (
    AccountOpened,
    AnyEvent,
    BalanceChanged,
    MarketCreated,
    MarkPriceUpdated,
    OrderAccepted,
    OrderFilled,
    PositionChanged,
    TradeExecuted,
)
from tradehall.domain.fixedpoint import amount_of, decimal_of
from tradehall.domain.market import MarketSpec
from tradehall.journal.records import JournalRecord
from tradehall.store.models import Balance, Fill, Order, Position, ProjectionState

SPEC = MarketSpec(
    symbol="BTC-PERP",
    kind=MarketKind.PERP,
    base="BTC",
    quote="USD",
    tick_size=Decimal("0.5"),
    lot_size=Decimal("0.001"),
    taker_fee=Decimal("0.001"),
    max_leverage=Decimal("10"),
    initial_margin=Decimal("0.1"),
    maintenance_margin=Decimal("0.05"),
)
USD_DECIMALS = 2
DEPOSIT_MINOR = 100_000_000  # 1,000,000.00 USD


@dataclass(slots=True)
class _Resting:
    order_id: int
    account_id: str
    side: Side
    price: int
    quantity: int


@dataclass(slots=True)
class SyntheticMarket:
    accounts: int = 10
    seed: int = 7
    start_ns: int = 1_790_000_000_000_000_000
    step_ns: int = 1_000_000
    seq: int = 0
    ts: int = 0
    next_order_id: int = 1
    next_trade_id: int = 1
    resting: list[_Resting] = field(default_factory=list)
    cash: dict[str, int] = field(default_factory=dict)
    positions: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    statuses: dict[int, OrderStatus] = field(default_factory=dict)
    fills: int = 0
    trades: int = 0
    _last_realized: dict[str, int] = field(default_factory=dict)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.ts = self.start_ns

    @property
    def account_ids(self) -> list[str]:
        return [f"acct-{i}" for i in range(self.accounts)]

    def _record(self, command: object, events: list[AnyEvent]) -> JournalRecord:
        self.seq += 1
        self.ts += self.step_ns
        return JournalRecord(seq=self.seq, ts=self.ts, command=command, events=tuple(events))  # type: ignore[arg-type]

    def setup(self) -> list[JournalRecord]:
        """The market, the accounts and their deposits."""
        records = [self._record(CreateMarket(spec=SPEC, ts=self.ts), [MarketCreated(spec=SPEC, ts=self.ts)])]
        for account_id in self.account_ids:
            records.append(
                self._record(
                    OpenAccount(account_id=account_id, owner=f"owner-{account_id}"),
                    [
                        AccountOpened(
                            account_id=account_id,
                            owner=f"owner-{account_id}",
                            kind=AccountKind.CASH,
                            currency="USD",
                            cost_basis=CostBasis.AVERAGE,
                            tier=None,
                            ts=self.ts + self.step_ns,
                        )
                    ],
                )
            )
            self.cash[account_id] = DEPOSIT_MINOR
            records.append(
                self._record(
                    Deposit(account_id=account_id, amount=Decimal("1000000")),
                    [
                        BalanceChanged(
                            account_id=account_id,
                            currency="USD",
                            total=DEPOSIT_MINOR,
                            held=0,
                            delta=DEPOSIT_MINOR,
                            reason="deposit",
                        )
                    ],
                )
            )
        return records

    def mark(self, price_ticks: int) -> JournalRecord:
        price = decimal_of(price_ticks, SPEC.tick_size)
        return self._record(
            MarkPrice(market=SPEC.symbol, price=price),
            [MarkPriceUpdated(market=SPEC.symbol, price=price_ticks, ts=self.ts + self.step_ns)],
        )

    def step(self) -> JournalRecord:
        """One order: it rests (when the book is thin) or crosses the oldest resting order in full."""
        rnd = self._random
        account_id = rnd.choice(self.account_ids)
        ts = self.ts + self.step_ns
        order_id = self.next_order_id
        self.next_order_id += 1
        makers = [r for r in self.resting if r.account_id != account_id]
        if len(self.resting) < 4 or not makers or rnd.random() < 0.3:
            side = rnd.choice((Side.BUY, Side.SELL))
            price = 128_000 + rnd.randint(-20, 20)
            quantity = rnd.randint(1, 50)
            self.resting.append(_Resting(order_id, account_id, side, price, quantity))
            self.statuses[order_id] = OrderStatus.OPEN
            accepted = self._accepted(order_id, account_id, side, OrderType.LIMIT, quantity, price, ts)
            return self._record(self._place(account_id, side, quantity, price), [accepted])
        maker = makers[0]
        self.resting.remove(maker)
        side = Side.SELL if maker.side == Side.BUY else Side.BUY
        quantity = maker.quantity
        price = maker.price
        trade_id = self.next_trade_id
        self.next_trade_id += 1
        fee = -(-(price * quantity * 5) // 10_000)  # 0.1 % of price x qty x 0.5 x 0.001 USD, in cents
        events: list[AnyEvent] = [
            self._accepted(order_id, account_id, side, OrderType.MARKET, quantity, None, ts),
        ]
        for liquidity, oid, acct, fill_side, fill_fee in (
            (Liquidity.MAKER, maker.order_id, maker.account_id, maker.side, 0),
            (Liquidity.TAKER, order_id, account_id, side, fee),
        ):
            realized = self._apply_position(acct, fill_side, price, quantity)
            events.append(
                OrderFilled(
                    order_id=oid,
                    account_id=acct,
                    market=SPEC.symbol,
                    trade_id=trade_id,
                    side=fill_side,
                    price=price,
                    quantity=quantity,
                    fee=fill_fee,
                    liquidity=liquidity,
                    realized_pnl=realized,
                    filled_quantity=quantity,
                    status=OrderStatus.FILLED,
                    ts=ts,
                )
            )
            self.statuses[oid] = OrderStatus.FILLED
            self.fills += 1
        events.append(
            TradeExecuted(
                trade_id=trade_id,
                market=SPEC.symbol,
                price=price,
                quantity=quantity,
                taker_side=side,
                maker_order_id=maker.order_id,
                taker_order_id=order_id,
                maker_account_id=maker.account_id,
                taker_account_id=account_id,
                ts=ts,
            )
        )
        for acct, charged in ((maker.account_id, 0), (account_id, fee)):
            qty, cost, realized_total = self.positions[acct]
            events.append(
                PositionChanged(
                    account_id=acct,
                    market=SPEC.symbol,
                    quantity=qty,
                    cost=cost,
                    realized_pnl=realized_total,
                    margin=0,
                )
            )
            delta = self._last_realized.pop(acct, 0) - charged
            self.cash[acct] += delta
            events.append(
                BalanceChanged(
                    account_id=acct, currency="USD", total=self.cash[acct], held=0, delta=delta, reason="fill"
                )
            )
        self.trades += 1
        return self._record(self._place(account_id, side, quantity, None), events)

    def _apply_position(self, account_id: str, side: Side, price: int, quantity: int) -> int:
        """Average-cost perp position; returns the realised P&L of this fill in cents."""
        qty, cost, realized_total = self.positions.get(account_id, (0, 0, 0))
        signed = quantity if side == Side.BUY else -quantity
        realized = 0
        if qty == 0 or (qty > 0) == (signed > 0):
            qty, cost = qty + signed, cost + signed * price
        else:
            closing = min(abs(signed), abs(qty))
            direction = 1 if qty > 0 else -1
            entry = abs(cost) * closing // abs(qty)
            # tick-lots -> cents: 0.5 USD x 0.001 = 0.0005 USD = 0.05 cents per tick-lot.
            realized = direction * (price * closing - entry) // 20
            cost -= direction * entry
            qty -= direction * closing
            remainder = abs(signed) - closing
            if remainder:
                qty = remainder if signed > 0 else -remainder
                cost = qty * price
        self.positions[account_id] = (qty, cost, realized_total + realized)
        self._last_realized[account_id] = self._last_realized.get(account_id, 0) + realized
        return realized

    def _accepted(
        self,
        order_id: int,
        account_id: str,
        side: Side,
        order_type: OrderType,
        quantity: int,
        price: int | None,
        ts: int,
    ) -> OrderAccepted:
        return OrderAccepted(
            order_id=order_id,
            account_id=account_id,
            market=SPEC.symbol,
            side=side,
            requested_side=OrderSide.BUY if side == Side.BUY else OrderSide.SELL,
            type=order_type,
            time_in_force=TimeInForce.GTC if order_type == OrderType.LIMIT else TimeInForce.IOC,
            quantity=quantity,
            price=price,
            stop_price=None,
            expire_at=None,
            post_only=False,
            reduce_only=False,
            client_order_id=f"c{order_id}",
            status=OrderStatus.OPEN,
            ts=ts,
        )

    def _place(self, account_id: str, side: Side, quantity: int, price: int | None) -> PlaceOrder:
        return PlaceOrder(
            account_id=account_id,
            market=SPEC.symbol,
            side=OrderSide.BUY if side == Side.BUY else OrderSide.SELL,
            quantity=decimal_of(quantity, SPEC.lot_size),
            type=OrderType.LIMIT if price is not None else OrderType.MARKET,
            price=None if price is None else decimal_of(price, SPEC.tick_size),
        )

    def steps(self, count: int) -> list[JournalRecord]:
        return [self.step() for _ in range(count)]


def differences(engine: Engine, market: SyntheticMarket, projector: str = "read_models") -> list[str]:
    """Where the read models disagree with the synthetic market's own state (empty when they agree)."""
    found: list[str] = []
    with Session(engine) as session:
        fills = session.scalar(select(func.count()).select_from(Fill))
        if fills != market.fills:
            found.append(f"fills: {fills} rows, expected {market.fills}")
        statuses = {row[0]: row[1] for row in session.execute(select(Order.id, Order.status))}
        expected_statuses = {str(order_id): status.value for order_id, status in market.statuses.items()}
        if statuses != expected_statuses:
            wrong = {
                k
                for k in statuses.keys() | expected_statuses.keys()
                if statuses.get(k) != expected_statuses.get(k)
            }
            found.append(f"orders: {len(wrong)} differ, e.g. {sorted(wrong)[:5]}")
        balances = {row.account_id: row.total for row in session.scalars(select(Balance))}
        for account, cash in market.cash.items():
            if balances.get(account) != amount_of(cash, USD_DECIMALS):
                found.append(f"balance of {account}: {balances.get(account)}, expected {amount_of(cash, 2)}")
        positions = {row.account_id: row for row in session.scalars(select(Position))}
        for account, (quantity, cost, realized) in market.positions.items():
            row = positions.get(account)
            expected = (
                decimal_of(quantity, SPEC.lot_size),
                decimal_of(cost, SPEC.tick_size * SPEC.lot_size),
                amount_of(realized, USD_DECIMALS),
            )
            if row is None or (row.quantity, row.cost, row.realized_pnl) != expected:
                got = None if row is None else (row.quantity, row.cost, row.realized_pnl)
                found.append(f"position of {account}: {got}, expected {expected}")
        state = session.get(ProjectionState, projector)
        if state is None or state.last_seq != market.seq:
            found.append(f"last_seq: {None if state is None else state.last_seq}, expected {market.seq}")
    return found
