"""The deterministic engine: `Engine.apply(command) -> list[Event]`.

No I/O, no clock, no randomness: time arrives inside commands. A refused command leaves the state
unchanged (every check happens before the first change) and yields a rejection event with its code.

This module only builds the components (docs/engine.md, "Components") and dispatches each command
type to one component's bound method; after a command it runs the supervisor on the accounts the
command touched and emits the summaries (balances, positions, books).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import msgspec

from tradehall.domain import commands as cmds
from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.events import AnyEvent, CommandRejected, OrderRejected, PositionChanged
from tradehall.engine.admin import Admin
from tradehall.engine.amend import Amend
from tradehall.engine.assessments import Assessments
from tradehall.engine.book import OrderBook
from tradehall.engine.book_venue import BookVenue
from tradehall.engine.clock import Clock
from tradehall.engine.closeouts import CloseOuts
from tradehall.engine.config import EngineConfig
from tradehall.engine.contingent import Contingent
from tradehall.engine.execution import Execution
from tradehall.engine.funding import Funding
from tradehall.engine.holds import Holds
from tradehall.engine.intake import Intake
from tradehall.engine.ledger import Ledger
from tradehall.engine.lifecycle import Lifecycle
from tradehall.engine.markets import Book, Market
from tradehall.engine.marks import MarketData
from tradehall.engine.orders import Order
from tradehall.engine.positions import Position
from tradehall.engine.postings import Postings
from tradehall.engine.quote_venue import QuoteVenue
from tradehall.engine.routing import Router
from tradehall.engine.settlement import Settlement
from tradehall.engine.snapshot import decode, load_state, snapshot_state
from tradehall.engine.state import EngineState
from tradehall.engine.stops import Stops
from tradehall.engine.supervisor import Supervisor
from tradehall.engine.transfers import Transfers
from tradehall.engine.valuation import liquidation_price, value_account

# Event classes bound once: compiled, a `Final` is read from a C static, an imported class from the
# module dict at every construction.
_POSITION_CHANGED: Final = PositionChanged

__all__ = ["Engine", "EngineConfig"]

_EMIT_OWN_BOOK_CHANGES: Final = frozenset({"PlaceOrder", "CancelOrder", "AmendOrder"})
"""Commands that touch one book and emit its change themselves; others sweep the books touched since
the last sweep (`EngineState.books_touched`), in symbol order, never every market."""


class Engine:
    def __init__(
        self, config: EngineConfig | None = None, book_factory: Callable[[], Book] = OrderBook
    ) -> None:
        state = self.state = EngineState(config or EngineConfig(), book_factory)
        self.ledger: Ledger = state.ledger
        self.accounts = state.accounts
        self.markets: dict[str, Market] = state.markets
        self.orders: dict[int, Order] = state.orders
        self.client_order_ids = state.client_order_ids
        self.client_order_fingerprints = state.client_order_fingerprints
        self.spot_market_for = state.spot_market_for
        # the components, each after the ones it uses
        self.holds = holds = Holds(state)
        self.postings = postings = Postings(state, holds)
        self.lifecycle = lifecycle = Lifecycle(state, holds)
        book = BookVenue(state, holds, postings, lifecycle)
        quote = QuoteVenue(state, holds, postings, lifecycle)
        self.execution = execution = Execution(state, holds, lifecycle, book, quote)
        self.contingent = contingent = Contingent(state, holds, lifecycle, execution)
        self.stops = stops = Stops(state, execution, contingent)
        closeouts = CloseOuts(state, lifecycle, postings, book, quote, stops)
        self.assessments = assessments = Assessments(state, lifecycle, closeouts)
        self.supervisor = supervisor = Supervisor(state, closeouts, assessments)
        market_data = MarketData(state, execution, quote, stops, supervisor)
        settlement = Settlement(state, lifecycle, stops)
        funding = Funding(state, postings)
        clock = Clock(state, holds, stops, settlement, supervisor, market_data, funding)
        intake = Intake(state, holds, lifecycle, execution, stops, book, quote, contingent)
        amend = Amend(state, holds, lifecycle, execution, stops, book, quote, contingent)
        admin = Admin(state, holds, assessments, settlement)
        transfers = Transfers(state)
        self.router = router = Router(state, intake)
        self._handlers: dict[type, Callable[[Any], None]] = {
            cmds.OpenAccount: admin.open_account,
            cmds.Deposit: admin.deposit,
            cmds.Withdraw: admin.withdraw,
            cmds.CreateMarket: admin.create_market,
            cmds.SetMarketStatus: admin.set_market_status,
            cmds.PlaceOrder: intake.place_order,
            cmds.RouteOrder: router.route_order,
            cmds.CancelOrder: intake.cancel_order,
            cmds.CancelAll: intake.cancel_all,
            cmds.AmendOrder: amend.amend_order,
            cmds.MarkPrice: market_data.mark_price,
            cmds.Quote: market_data.quote,
            cmds.AdvanceTime: clock.advance_time,
            cmds.SettleMarket: settlement.settle_market,
            cmds.VoidMarket: settlement.void_market,
            cmds.SetLeverage: admin.set_leverage,
            cmds.ApplyFunding: funding.apply_funding,
            cmds.Configure: admin.configure,
            cmds.TransferOut: transfers.transfer_out,
            cmds.TransferIn: transfers.transfer_in,
            cmds.CompleteTransfer: transfers.complete_transfer,
            cmds.RefundTransfer: transfers.refund_transfer,
        }
        self._dirty_positions = state.dirty_positions
        self._contingent_pending = state.contingent_pending
        self._trigger_stops = stops.trigger
        self._evaluate_touched = supervisor.evaluate_touched
        self._emit_book_changes = state.emit_book_changes
        self._books_touched = state.books_touched

    # --- the one entry point -------------------------------------------------------------

    def apply(self, command: cmds.Command) -> list[AnyEvent]:
        """Apply one command; return the events it produced (a refusal is one rejection event)."""
        state = self.state
        events: list[AnyEvent] = []
        state.events = events
        if command.ts > state.now:
            state.now = command.ts
        handler = self._handlers.get(type(command))
        if handler is None:
            events.append(
                CommandRejected(
                    command=type(command).__name__,
                    code=Code.INVALID_REQUEST,
                    reason="unknown command",
                    ts=state.now,
                )
            )
            return events
        try:
            handler(command)
        except TradehallError as error:
            if events:  # pragma: no cover - every check runs before the first change
                raise
            if isinstance(command, cmds.PlaceOrder | cmds.RouteOrder):
                events.append(
                    OrderRejected(
                        account_id=command.account_id,
                        market=command.market if isinstance(command, cmds.PlaceOrder) else command.instrument,
                        client_order_id=command.client_order_id,
                        code=error.code,
                        reason=error.detail,
                        ts=state.now,
                        reject_reason=error.reason,
                    )
                )
            else:
                events.append(
                    CommandRejected(
                        command=type(command).__name__, code=error.code, reason=error.detail, ts=state.now
                    )
                )
            return events
        self._finish(type(command).__name__, events)
        return events

    def _finish(self, reason: str, events: list[AnyEvent]) -> None:
        """Check the accounts the command touched, then emit its summaries: balances, positions, books."""
        pending = self._contingent_pending
        if pending:  # contingent orders a command filled or ended without looking at stops after
            markets = self.markets
            for symbol in sorted({order.market for order in pending}):
                self._trigger_stops(markets[symbol])
                self._emit_book_changes(markets[symbol])
        self._evaluate_touched()
        if pending:  # exits an account's end cancelled: their siblings went with them
            self.contingent.settle()
        dirty = self._dirty_positions
        if self.state.replaying:  # a replay reads no summaries: the state moves all the same
            self.ledger.discard()
            dirty.clear()
        else:
            self.ledger.flush(reason, events)
        if dirty:
            for key in sorted(dirty):
                position = dirty[key]
                events.append(
                    _POSITION_CHANGED(
                        account_id=position.account_id,
                        market=position.market,
                        quantity=position.quantity,
                        cost=position.cost,
                        realized_pnl=position.realized,
                        margin=position.margin,
                        cost_remainder=position.cost_rem,
                        cost_denominator=position.cost_den,
                    )
                )
            dirty.clear()
        touched = self._books_touched
        if touched and reason not in _EMIT_OWN_BOOK_CHANGES:
            markets = self.markets
            for symbol in sorted(touched):
                self._emit_book_changes(markets[symbol])
            touched.clear()

    @contextmanager
    def replaying(self) -> Iterator[None]:
        """Within it, `apply` leaves out the events a replay of the journal does not read (balance,
        position and book summaries, order ends): the same state, the same `state_hash`, less work."""
        self.state.replaying = True
        try:
            yield
        finally:
            self.state.replaying = False

    # --- the state's scalars, read by adapters -----------------------------------------------

    @property
    def config(self) -> EngineConfig:
        return self.state.config

    @property
    def now(self) -> int:
        return self.state.now

    @property
    def next_order_id(self) -> int:
        return self.state.next_order_id

    @property
    def next_trade_id(self) -> int:
        return self.state.next_trade_id

    # --- reads for adapters ----------------------------------------------------------------

    def order_id_for(self, account_id: str, client_order_id: str) -> int | None:
        return self.client_order_ids.get((account_id, client_order_id))

    def liquidation_price(self, account_id: str, market: str) -> int | None:
        """The first tick price at which the account's perp position in `market` is liquidated, the
        other marks fixed (`valuation.liquidation_price`), from the state now: so it follows every
        fill, funding payment and balance change."""
        account = self.accounts.get(account_id)
        position = None if account is None else account.positions.get(market)
        if account is None or position is None or position.quantity == 0:
            return None
        valuation = value_account(account, self.markets, self.state.spot_market_for)
        return liquidation_price(valuation, self.markets[market], position)

    def positions_of(self, account_id: str) -> list[Position]:
        return [
            m.positions[account_id]
            for m in sorted(self.markets.values(), key=lambda m: m.symbol)
            if account_id in m.positions and m.positions[account_id].quantity != 0
        ]

    # --- snapshot ------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state, canonically ordered: equal states give equal bytes."""
        return msgspec.msgpack.encode(snapshot_state(self.state))

    def state_hash(self) -> str:
        return hashlib.sha256(self.snapshot()).hexdigest()

    @classmethod
    def restore(cls, data: bytes, book_factory: Callable[[], Book] = OrderBook) -> Engine:
        config, raw = decode(data)
        engine = cls(config, book_factory)
        load_state(engine.state, raw)
        engine.assessments.schedule_resets(rebuild=True)
        return engine
