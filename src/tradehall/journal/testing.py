"""A tiny deterministic engine for exercising the runtime without the real matching engine.

It keeps just enough state (balances, open orders, client order ids) for recovery to be checked
by `state_hash`, answers every command with real event types, and is cheap, so the durability
benchmark measures the runner and the journal rather than matching.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal

import msgspec

from tradehall.domain.commands import AnyCommand, CancelOrder, Deposit, PlaceOrder
from tradehall.domain.enums import CancelReason, OrderSide, OrderStatus, OrderType, Side
from tradehall.domain.errors import Code
from tradehall.domain.events import (
    AnyEvent,
    BalanceChanged,
    CommandRejected,
    OrderAccepted,
    OrderCancelled,
)
from tradehall.domain.fixedpoint import minor_of
from tradehall.journal.records import JournalRecord


class _ToyState(msgspec.Struct, kw_only=True):
    applied: int = 0
    next_order_id: int = 1
    balances: dict[str, int] = msgspec.field(default_factory=dict)
    open_orders: dict[int, str] = msgspec.field(default_factory=dict)
    client_orders: dict[str, int] = msgspec.field(default_factory=dict)


class ToyEngine:
    def __init__(self, state: _ToyState | None = None) -> None:
        self._state = state if state is not None else _ToyState()

    @classmethod
    def restore(cls, data: bytes) -> ToyEngine:
        return cls(msgspec.msgpack.decode(data, type=_ToyState))

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(self._state)

    def state_hash(self) -> str:
        return hashlib.sha256(self.snapshot()).hexdigest()

    @property
    def applied(self) -> int:
        return self._state.applied

    def apply(self, command: AnyCommand) -> Sequence[AnyEvent]:
        state = self._state
        state.applied += 1
        if isinstance(command, Deposit):
            delta = minor_of(command.amount, 2)
            total = state.balances.get(command.account_id, 0) + delta
            state.balances[command.account_id] = total
            currency = command.currency or "USD"
            return [BalanceChanged(account_id=command.account_id, currency=currency, total=total, held=0,
                                   delta=delta, reason="deposit")]
        if isinstance(command, PlaceOrder):
            return [self._place(command)]
        if isinstance(command, CancelOrder):
            account = state.open_orders.pop(command.order_id, None)
            if account is None:
                return [CommandRejected(command="cancel_order", code=Code.NOT_FOUND,
                                        reason=f"order {command.order_id} is not open", ts=command.ts)]
            return [OrderCancelled(order_id=command.order_id, account_id=account, market="TOY",
                                   filled_quantity=0, reason=CancelReason.USER, ts=command.ts)]
        return [CommandRejected(command=type(command).__name__, code=Code.INVALID_REQUEST,
                                reason="not supported by the toy engine", ts=command.ts)]

    def _place(self, command: PlaceOrder) -> OrderAccepted:
        state = self._state
        known = command.client_order_id is not None and command.client_order_id in state.client_orders
        if known and command.client_order_id is not None:
            order_id = state.client_orders[command.client_order_id]
        else:
            order_id = state.next_order_id
            state.next_order_id += 1
            state.open_orders[order_id] = command.account_id
            if command.client_order_id is not None:
                state.client_orders[command.client_order_id] = order_id
        return OrderAccepted(
            order_id=order_id, account_id=command.account_id, market=command.market, side=Side.BUY,
            requested_side=command.side, type=OrderType.LIMIT, time_in_force=command.time_in_force,
            quantity=minor_of(command.quantity, 4, "quantity"), price=None, stop_price=None, expire_at=None,
            post_only=False, reduce_only=False, client_order_id=command.client_order_id,
            status=OrderStatus.OPEN, ts=command.ts,
        )


def sample_command(n: int, ts: int = 0) -> Deposit | PlaceOrder | CancelOrder:
    """The n-th command of a fixed deposit / place / cancel rotation (a cancel targets the last order)."""
    if n % 3 == 0:
        return Deposit(account_id="a1", amount=Decimal("10.5"), ts=ts)
    if n % 3 == 1:
        return PlaceOrder(
            account_id="a1", market="BTC-USD", side=OrderSide.BUY, quantity=Decimal("2"),
            price=Decimal("100.25"), client_order_id=f"c{n}", ts=ts,
        )
    return CancelOrder(order_id=(n + 1) // 3, ts=ts)


def sample_records(count: int, start: int = 1) -> list[JournalRecord]:
    """Records seq `start`.. as a runner would journal them (events from a ToyEngine fed from seq 1)."""
    engine = ToyEngine()
    records = []
    for seq in range(1, start + count):
        ts = 1_700_000_000_000_000_000 + seq
        command = sample_command(seq, ts)
        events = tuple(engine.apply(command))
        if seq >= start:
            records.append(JournalRecord(seq=seq, ts=ts, command=command, events=events))
    return records
