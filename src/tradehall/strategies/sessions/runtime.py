"""One live session: durable records in, the `Trader` in the middle, stored decisions and orders out.

Over 400 lines: the flush (signals and decisions stored, then orders sent) and the recovery that must
mirror it (warm-up on the stored bars, pending decisions sent again) stay in one class, so a change to
one is seen beside the other.

The session's task reads the service's durable records in journal order from its inbox. A record's
`ts` may close a cycle (`CycleBars.advance`), whose bars go to the `Trader` (`on_bar`); its prices go
to `on_trade`/`on_quote`, its events of the session's account to `on_order`/`on_fill`. The `Trader`
is the very object a backtest drives (strategies, weighted vote, validators, risk manager), which is
what makes a session and a backtest on the same data send the same orders. Its orders land in this
session's sink; `_flush` stores the signals and decisions with the orders they make (status
`pending`) in one transaction and only then sends the orders. Every order carries a client order id
derived from the session (the `Trader`'s, or `<session>-<decision seq>` for a strategy's own order):
after a crash a decision still `pending` is sent again with the same id and parameters, and the
engine's idempotency answers the original order, so no order is ever placed twice.

While paused (by the user, or by the weekly target) the strategies keep seeing bars, so their
indicators stay current, but nothing they decide is acted on. A strategy that raises fails the
session (`status: failed`, `status_reason`), never the server or another session.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import msgspec
import orjson
import structlog

from tradehall.domain.commands import AnyCommand, CancelAll, CancelOrder, PlaceOrder
from tradehall.domain.enums import OrderStatus
from tradehall.domain.errors import TradehallError
from tradehall.domain.events import (
    AnyEvent,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)
from tradehall.domain.fixedpoint import amount_of, decimal_of
from tradehall.engine import Engine, views
from tradehall.journal.records import JournalRecord
from tradehall.store import Store, queries
from tradehall.store import sessions as repo
from tradehall.store.models import SessionBar, SessionDecision, SessionEquity, SessionSignal
from tradehall.store.types import ns_of_utc
from tradehall.strategies.base import Strategy
from tradehall.strategies.combiner import Combiner, Decision
from tradehall.strategies.risk import RiskLimitValidator, RiskManager, RiskSettings, TradingStatus
from tradehall.strategies.sessions import metrics
from tradehall.strategies.sessions.bars import BarData, ClosedCycle, CycleBars
from tradehall.strategies.sessions.model import (
    DecisionStatus,
    SessionInfo,
    SessionStatus,
    rfc3339,
    signal_dict,
)
from tradehall.strategies.sessions.orders import (
    EnginePortfolio,
    client_order_id,
    decimal_of_float,
    place_command,
)
from tradehall.strategies.trader import Member, Trader
from tradehall.strategies.types import Action, Bar, FillReport, OrderRequest, OrderUpdate, QuoteTick, Signal
from tradehall.strategies.validators import MaxPositionsValidator

log = structlog.get_logger(__name__)

NS = 1_000_000_000
CANDLE_INTERVALS = {60: "1m", 300: "5m", 900: "15m", 3600: "1h", 86_400: "1d"}
"""Cycles of these lengths are warmed up on the read models' candles of the same interval."""


@runtime_checkable
class Preparing(Protocol):
    """A strategy with async work to do before a bar reaches `on_bar` (the remote model's request)."""

    async def prepare(self, market: str, bar: Bar) -> None: ...


class SessionEndedError(Exception):
    """The session stopped by its own rule (max drawdown): its task ends."""


@dataclass(frozen=True, slots=True)
class SessionPorts:
    """What a session needs from the service, injected (the strategies layer imports no service)."""

    engine: Callable[[], Engine]
    store: Store
    submit: Callable[[AnyCommand], Awaitable[Sequence[AnyEvent]]]
    """Sequences a command; returns its events once durable (raises when the engine takes none)."""
    publish: Callable[[str, str, dict[str, Any]], None]
    """(user id, channel, data): a private WebSocket message (`sessions`, `signals`)."""
    journal_after: Callable[[int], Awaitable[Sequence[JournalRecord]]]
    """The durable records after a seq: a resumed session works through what it had not stored."""


@dataclass(slots=True)
class _Outbox:
    """What the `Trader` and the strategies produced since the last flush, in order."""

    signals: list[tuple[Signal, int]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    orders: dict[str, OrderRequest] = field(default_factory=dict)
    """Client order id -> request, in submission order."""
    strategy_orders: list[str] = field(default_factory=list)
    """Ids of orders a strategy placed itself (no decision claims them)."""
    cancels: list[tuple[str, str]] = field(default_factory=list)
    """("id", client order id) or ("market", symbol), in order."""

    def __bool__(self) -> bool:
        return bool(self.signals or self.decisions or self.orders or self.cancels)


class _SessionSink:
    """The `OrderSink` of a session: orders are collected and go out at the next flush (dropped while
    warming up or paused)."""

    def __init__(self, session: LiveSession) -> None:
        self._session = session

    def submit(self, request: OrderRequest) -> str:
        session = self._session
        if not session.acting:
            session.discarded.append((request.market, request.client_order_id or "discarded"))
            return request.client_order_id or "discarded"
        coid = request.client_order_id
        if coid is None:  # a strategy's own order: its own decision number
            session.next_decision += 1
            coid = client_order_id(session.id, session.next_decision)
            session.outbox.strategy_orders.append(coid)
        session.outbox.orders[coid] = request
        return coid

    def cancel(self, client_order_id: str) -> None:
        if self._session.acting:
            self._session.outbox.cancels.append(("id", client_order_id))

    def cancel_all(self, market: str) -> None:
        if self._session.acting:
            self._session.outbox.cancels.append(("market", market))


def _utc(ns: int) -> datetime:
    seconds, rest = divmod(ns, NS)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def _decimal(value: float | None) -> Decimal | None:
    return None if value is None else decimal_of_float(round(value, 12))


def build_trader(
    info: SessionInfo,
    strategies: Sequence[Strategy],
    portfolio: EnginePortfolio,
    sink: _SessionSink,
    *,
    on_signal: Callable[[Signal, int], None],
    on_decision: Callable[[Decision], None],
) -> Trader:
    settings = info.settings
    risk = RiskManager(RiskSettings.from_settings(settings.as_dict()))
    weights = {
        strategy.name: float(entry.weight)
        for strategy, entry in zip(strategies, info.strategies, strict=True)
    }
    combiner = Combiner(
        weights,
        float(settings.min_confidence),
        validators=[MaxPositionsValidator(settings.max_positions), RiskLimitValidator(risk)],
    )
    members = [
        Member(strategy, float(entry.weight))
        for strategy, entry in zip(strategies, info.strategies, strict=True)
    ]
    return Trader(
        members,
        combiner,
        risk,
        portfolio,
        sink,
        client_id_prefix=info.id,
        order_type=settings.order_type,
        on_signal=on_signal,
        on_decision=on_decision,
    )


class LiveSession:
    def __init__(
        self,
        info: SessionInfo,
        strategies: Sequence[Strategy],
        ports: SessionPorts,
        *,
        on_status: Callable[[LiveSession], Awaitable[None]],
    ) -> None:
        self.info = info
        self.id = info.id
        self.account_id = info.account_id
        self.ports = ports
        self._on_status = on_status
        self.status = info.status
        self.status_reason = info.status_reason
        self.next_decision = info.decisions
        self.outbox = _Outbox()
        self.discarded: list[tuple[str, str]] = []
        """(market, client order id) of orders dropped while not acting: the trader must not wait on them."""
        self._warming = False
        self.portfolio = EnginePortfolio(ports.engine, info.account_id)
        self.trader = build_trader(
            info,
            strategies,
            self.portfolio,
            _SessionSink(self),
            on_signal=self._on_signal,
            on_decision=self._on_decision,
        )
        settings = info.settings
        self.bars = CycleBars(
            info.markets,
            lambda symbol: views.spec(ports.engine(), symbol),
            anchor_ns=info.anchor_ns,
            interval_ns=settings.interval_seconds * NS,
            cycles_done=info.cycles,
            event_driven=settings.event_driven,
        )
        self.cycle = info.cycles
        self._preparing = [s for s in strategies if isinstance(s, Preparing)]
        self._inbox: deque[JournalRecord] = deque()
        self._time_only: set[int] = set()
        """Seqs of inbox records that only move time (`feed` keeps one of a run of them)."""
        self._wake = asyncio.Event()
        self._coids: dict[int, str] = {}
        """Order id -> client order id of the account's orders seen accepted (fills name only the id)."""
        self._trailing: dict[str, str] = {}
        """Entries whose fill places a trailing stop exit: client order id -> the entry's side."""
        self.last_cycle_seconds = 0.0
        self.processed_seq = 0
        """The journal seq of the last record this session has worked through (tests wait on it)."""
        self._seq = info.last_seq
        """The seq of the record being worked on."""
        self._progress = asyncio.Event()

    @property
    def acting(self) -> bool:
        """Whether what the strategies decide is acted on (not while warming up or paused)."""
        return not self._warming and self.status is SessionStatus.RUNNING

    # ---- the task --------------------------------------------------------------------------------

    def feed(self, records: Sequence[JournalRecord]) -> None:
        """Durable records, in seq order (the service's listener: never blocks, never raises).

        A record that touches neither the session's markets nor its account only moves time: a run of
        them is kept as its last one, so a busy engine does not fill the inbox of a session that does
        not trade what is busy."""
        inbox = self._inbox
        time_only = self._time_only
        for record in records:
            if not self._relevant(record):
                if inbox and inbox[-1].seq in time_only:
                    time_only.discard(inbox.pop().seq)
                time_only.add(record.seq)
            inbox.append(record)
        self._wake.set()

    def _relevant(self, record: JournalRecord) -> bool:
        markets = self.bars.markets
        account = self.account_id
        for event in record.events:
            if getattr(event, "market", None) in markets or getattr(event, "account_id", None) == account:
                return True
        return False

    async def run(self) -> None:
        """Recover, read the journal after what was stored, then work the inbox until the task is
        cancelled or the session ends (records already worked through are skipped by seq)."""
        await self._recover()
        self.processed_seq = self.info.last_seq
        for record in await self.ports.journal_after(self.info.last_seq):
            await self._work(record)
        inbox = self._inbox
        while True:
            if not inbox:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._work(inbox.popleft())

    async def _work(self, record: JournalRecord) -> None:
        self._time_only.discard(record.seq)
        if record.seq <= self.processed_seq:
            return
        self._seq = record.seq
        await self._on_record(record)
        self.processed_seq = record.seq
        self._progress.set()

    async def caught_up(self, seq: int, timeout: float = 10.0) -> None:
        """Returns once the session has worked through record `seq` (a deterministic hook, no sleep)."""
        async with asyncio.timeout(timeout):
            while self.processed_seq < seq:
                self._progress.clear()
                await self._progress.wait()

    async def _recover(self) -> None:
        """Indicators rebuilt from the stored bars (nothing they decide is acted on), the risk
        manager's peak and week from the stored equity, then decisions a crash left pending sent."""
        store = self.ports.store
        bars = await store.call(repo.session_bars, self.id)
        equity = await store.call(repo.equity_series, self.id)
        pending = await store.call(repo.pending_decisions, self.id)
        trader = self.trader
        history = await self._candle_history()
        self._warming = True
        try:
            trader.start()
            for market, bar in history:
                trader.warmup(market, bar)
            for row in bars:
                data = BarData(
                    row.market, row.start_ns, row.end_ns, row.open, row.high, row.low, row.close, row.volume
                )
                trader.warmup(row.market, data.bar())
            for point in equity:
                trader.risk.on_equity(point.at_ns, float(point.equity))
        finally:
            self._warming = False
            self.outbox = _Outbox()
            self._forget_discarded()
        await self._remember_orders()
        for decision in pending:
            await self._send(decision.seq, decision.order)
        if bars or pending:
            log.info("session_recovered", session=self.id, bars=len(bars), resent=len(pending))

    async def _candle_history(self) -> list[tuple[str, Bar]]:
        """The markets' candles before the session's start, as many as its strategies need (`warmup`),
        when its cycle is a candle interval: a new session's indicators start warm, and a restarted
        one sees the same history again before its own stored bars."""
        settings = self.info.settings
        interval = CANDLE_INTERVALS.get(settings.interval_seconds)
        need = max((member.strategy.warmup for member in self.trader.members), default=0)
        if interval is None or settings.event_driven or need <= 0:
            return []
        width = settings.interval_seconds * NS
        end = _utc(self.info.anchor_ns)
        history: list[tuple[str, Bar]] = []
        for market in self.info.markets:
            page = await self.ports.store.call(
                queries.list_candles, market, interval, end=end, limit=need, oldest_first=True
            )
            for candle in page.items:
                start = ns_of_utc(candle.start)
                bar = Bar(
                    start,
                    float(candle.open),
                    float(candle.high),
                    float(candle.low),
                    float(candle.close),
                    float(candle.volume),
                    start + width,
                )
                history.append((market, bar))
        history.sort(key=lambda item: (item[1].ts, item[0]))
        return history

    async def _remember_orders(self) -> None:
        """The session's orders as the store has them: which order id is which client order id (fills
        name only the id), and which entries still wait for their trailing stop exit."""
        rows = await self.ports.store.call(repo.decisions_with_orders, self.id)
        exits = {row.client_order_id for row in rows}
        for row in rows:
            coid = row.client_order_id
            if coid is None:
                continue
            if row.order_id is not None:
                self._coids[int(row.order_id)] = coid
            trails = self.info.settings.trailing_stop_percent is not None
            # the Trader's entries end in "-e" (its closes in "-x"); an entry without its "-t" exit yet
            if trails and row.order is not None and coid.endswith("-e") and f"{coid}-t" not in exits:
                command = msgspec.json.decode(row.order, type=PlaceOrder)
                self._trailing[coid] = command.side.value

    async def _on_record(self, record: JournalRecord) -> None:
        closed = self.bars.advance(record.ts)
        if closed is not None:
            await self._cycle(closed)
        trader = self.trader
        for tick in self.bars.add(record):
            if isinstance(tick, QuoteTick):
                trader.on_quote(tick)
            else:
                trader.on_trade(tick)
        self._account_events(record)
        if self.bars.event_driven:
            closed = self.bars.close_now(record.ts)
            if closed is not None:
                await self._cycle(closed)
        if self.discarded:
            self._forget_discarded()
        if self.outbox:
            await self._flush(self.cycle, record.ts)

    # ---- a cycle ---------------------------------------------------------------------------------

    async def _cycle(self, closed: ClosedCycle) -> None:
        started = time.perf_counter()
        self.cycle = closed.cycle
        acting = self.acting
        for market, data in closed.bars.items():
            bar = data.bar()
            if not acting:  # paused: the strategies keep their indicators current, nothing is decided
                self.trader.warmup(market, bar)
                continue
            for strategy in self._preparing:  # a model service is asked before the bar is decided on
                await strategy.prepare(market, bar)
            self.trader.on_bar(market, bar)
        if self.discarded:
            self._forget_discarded()
        bar_rows = [self._bar_row(closed.cycle, data) for data in closed.bars.values()]
        equity = self._equity()
        equity_row = None
        if equity is not None:
            equity_row = SessionEquity(
                session_id=self.id, cycle=closed.cycle, at_ns=closed.end_ns, equity=equity
            )
        # the record that closed the cycle is not part of it: a restart works through it again
        signals, decisions, orders = await self._flush(
            closed.cycle, closed.end_ns, bars=bar_rows, equity=equity_row, last_seq=self._seq - 1
        )
        if equity is not None:
            if not acting and closed.bars:  # a paused session still follows its equity (the next week)
                self.trader.risk.on_equity(closed.end_ns, float(equity))
            await self._watch_risk()
        self.last_cycle_seconds = time.perf_counter() - started
        metrics.SESSION_CYCLE_SECONDS.labels(session=self.id).observe(self.last_cycle_seconds)
        self.ports.publish(
            self.info.owner,
            "sessions",
            {
                "event": "cycle",
                "session_id": self.id,
                "account_id": self.account_id,
                "cycle": closed.cycle,
                "status": self.status.value,
                "bars": len(bar_rows),
                "signals": signals,
                "decisions": decisions,
                "orders": orders,
                "at": rfc3339(_utc(closed.end_ns)),
            },
        )

    def _on_signal(self, signal: Signal, ts: int) -> None:
        if self.acting:
            self.outbox.signals.append((signal, ts))

    def _on_decision(self, decision: Decision) -> None:
        if self.acting:
            self.outbox.decisions.append(decision)

    async def _flush(
        self,
        cycle: int,
        ts: int,
        *,
        bars: Sequence[SessionBar] = (),
        equity: SessionEquity | None = None,
        last_seq: int | None = None,
    ) -> tuple[int, int, int]:
        """Stores what the cycle (or record) produced, in one transaction, then sends its orders.
        Returns (signals, decisions, orders placed)."""
        outbox, self.outbox = self.outbox, _Outbox()
        at = _utc(ts)
        signal_rows = [self._signal_row(cycle, signal, signal_ts) for signal, signal_ts in outbox.signals]
        decision_rows = [self._decision_row(cycle, decision, outbox, at) for decision in outbox.decisions]
        decision_rows += [
            self._strategy_order_row(cycle, coid, outbox.orders[coid], at) for coid in outbox.strategy_orders
        ]
        await self.ports.store.call(
            repo.record_cycle,
            self.id,
            cycle,
            bars=bars,
            signals=signal_rows,
            decisions=decision_rows,
            equity=equity,
            next_decision=self.next_decision,
            last_seq=self._seq if last_seq is None else last_seq,
            updated_at=at,
        )
        for kind, target in outbox.cancels:
            await self._cancel(kind, target)
        placed = 0
        for decision_row in decision_rows:
            if decision_row.status == DecisionStatus.PENDING.value:
                placed += await self._send(decision_row.seq, decision_row.order)
        self._count(signal_rows, decision_rows)
        for signal_row in signal_rows:
            self.ports.publish(
                self.info.owner,
                "signals",
                {"session_id": self.id, "account_id": self.account_id, **signal_dict(signal_row)},
            )
        return len(signal_rows), len(decision_rows), placed

    def _command(self, coid: str, request: OrderRequest) -> PlaceOrder | None:
        spec = views.spec(self.ports.engine(), request.market)
        if spec is None:
            return None
        try:
            return place_command(self.account_id, spec, request, coid, correlation_id=f"session:{self.id}")
        except (ValueError, msgspec.ValidationError) as exc:  # e.g. an order type this engine lacks
            log.warning("session_order_unsupported", session=self.id, type=request.type, error=str(exc))
            return None

    def _forget_discarded(self) -> None:
        """The trader waits for an entry's end before the next one in its market; an entry dropped
        while not acting never ends, so it is forgotten (`Trader._pending`)."""
        pending = self.trader._pending
        for market, coid in self.discarded:
            waiting = pending.get(market)
            if waiting is not None:
                waiting.discard(coid)
        self.discarded.clear()

    def _decision_row(self, cycle: int, decision: Decision, outbox: _Outbox, at: datetime) -> SessionDecision:
        self.next_decision += 1
        coid = next((c for c in decision.order_ids if c in outbox.orders), None)
        request = None if coid is None else outbox.orders[coid]
        command = None if coid is None or request is None else self._command(coid, request)
        if command is not None:
            status = DecisionStatus.PENDING
            if request is not None and request.trail_percent is not None and not request.reduce_only:
                self._trailing[command.client_order_id or ""] = request.side
        elif decision.vetoed_by is not None:
            status = DecisionStatus.VETOED
        else:
            status = DecisionStatus.HOLD
        reason = decision.reason
        if decision.veto_reason:
            reason = (
                f"{reason}; vetoed: {decision.veto_reason}" if reason else f"vetoed: {decision.veto_reason}"
            )
        return SessionDecision(
            session_id=self.id,
            seq=self.next_decision,
            cycle=cycle,
            market=decision.market,
            action=decision.action.value,
            confidence=_decimal(decision.confidence) or Decimal(0),
            price=_decimal(decision.price),
            quantity=None if command is None else command.quantity,
            reason=reason[:2000],
            vetoed_by=decision.vetoed_by,
            status=status.value,
            client_order_id=coid if command is not None else None,
            order_id=None,
            error=None,
            order=None if command is None else msgspec.json.encode(command).decode(),
            at=at,
        )

    def _strategy_order_row(
        self, cycle: int, coid: str, request: OrderRequest, at: datetime
    ) -> SessionDecision:
        command = self._command(coid, request)
        seq = int(coid.rsplit("-", 1)[1])
        return SessionDecision(
            session_id=self.id,
            seq=seq,
            cycle=cycle,
            market=request.market,
            action=request.side if request.side in ("buy", "sell") else Action.BUY.value,
            confidence=Decimal(1),
            price=_decimal(request.price),
            quantity=None if command is None else command.quantity,
            reason="a strategy's own order" + (f" ({request.tag})" if request.tag else ""),
            vetoed_by=None,
            status=(DecisionStatus.PENDING if command is not None else DecisionStatus.REFUSED).value,
            client_order_id=coid,
            order_id=None,
            error=None if command is not None else f"not_found: market {request.market}",
            order=None if command is None else msgspec.json.encode(command).decode(),
            at=at,
        )

    # ---- orders ----------------------------------------------------------------------------------

    async def _send(self, seq: int, order_json: str | None) -> int:
        """Sends a stored decision's order (again, after a crash: the same id meets idempotency)."""
        if order_json is None:
            return 0
        command = msgspec.json.decode(order_json, type=PlaceOrder)
        status, order_id, error = DecisionStatus.PLACED, None, None
        events: Sequence[AnyEvent] = ()
        try:
            events = await self.ports.submit(command)
        except TradehallError as exc:
            status, error = DecisionStatus.REFUSED, f"{exc.code.value}: {exc.detail}"
        first = events[0] if events else None
        if isinstance(first, OrderRejected):
            status, error = DecisionStatus.REFUSED, f"{first.code.value}: {first.reason}"
        elif isinstance(first, OrderAccepted):
            order_id = str(first.order_id)
        elif status is DecisionStatus.PLACED and command.client_order_id is not None:
            # an idempotent repeat: the engine placed nothing, the original order stands
            found = views.order_id_for(self.ports.engine(), self.account_id, command.client_order_id)
            order_id = None if found is None else str(found)
        result = "placed" if status is DecisionStatus.PLACED else (error or "refused").split(":")[0]
        metrics.SESSION_ORDERS.labels(session=self.id, result=result).inc()
        await self.ports.store.call(
            repo.settle_decision, self.id, seq, status=status.value, order_id=order_id, error=error
        )
        return 1 if status is DecisionStatus.PLACED else 0

    async def _cancel(self, kind: str, target: str) -> None:
        engine = self.ports.engine()
        command: AnyCommand
        if kind == "market":
            command = CancelAll(account_id=self.account_id, market=target)
        else:
            order_id = views.order_id_for(engine, self.account_id, target)
            if order_id is None or views.order(engine, order_id) is None:
                return
            command = CancelOrder(order_id=order_id, account_id=self.account_id)
        with contextlib.suppress(TradehallError):
            await self.ports.submit(command)

    def _account_events(self, record: JournalRecord) -> None:
        """`on_order`/`on_fill` for the account's events; an entry's final fill places its trailing stop."""
        account = self.account_id
        trader = self.trader
        for event in record.events:
            if isinstance(event, OrderAccepted):
                if event.account_id != account:
                    continue
                if event.client_order_id is not None:
                    self._coids[event.order_id] = event.client_order_id
                trader.on_order(
                    OrderUpdate(
                        event.market, event.ts, event.status.value, event.order_id, event.client_order_id
                    )
                )
            elif isinstance(event, OrderFilled):
                if event.account_id != account:
                    continue
                self._on_fill(event)
            elif isinstance(event, OrderCancelled | OrderExpired | OrderTriggered | OrderRejected):
                if event.account_id != account:
                    continue
                trader.on_order(self._order_update(event))
                if isinstance(event, OrderCancelled) and event.filled_quantity > 0:
                    self._trail(event.order_id, event.market, event.filled_quantity)

    def _on_fill(self, event: OrderFilled) -> None:
        engine = self.ports.engine()
        spec = views.spec(engine, event.market)
        if spec is None:
            return
        places = views.currency_places(engine, spec.quote)
        coid = self._coids.get(event.order_id)
        self.trader.on_fill(
            FillReport(
                market=event.market,
                ts=event.ts,
                order_id=event.order_id,
                side=event.side.value,
                price=float(decimal_of(event.price, spec.tick_size)),
                quantity=float(decimal_of(event.quantity, spec.lot_size)),
                fee=float(amount_of(event.fee, places)),
                realized_pnl=float(amount_of(event.realized_pnl, places)),
                client_order_id=coid,
            )
        )
        if event.status is OrderStatus.FILLED:
            self.trader.on_order(OrderUpdate(event.market, event.ts, "filled", event.order_id, coid))
            self._trail(event.order_id, event.market, event.filled_quantity)

    def _order_update(
        self, event: OrderCancelled | OrderExpired | OrderTriggered | OrderRejected
    ) -> OrderUpdate:
        if isinstance(event, OrderRejected):
            return OrderUpdate(event.market, event.ts, "rejected", None, event.client_order_id, event.reason)
        coid = self._coids.get(event.order_id)
        if isinstance(event, OrderCancelled):
            return OrderUpdate(event.market, event.ts, "cancelled", event.order_id, coid, event.reason.value)
        if isinstance(event, OrderExpired):
            return OrderUpdate(event.market, event.ts, "expired", event.order_id, coid)
        return OrderUpdate(event.market, event.ts, "triggered", event.order_id, coid)

    def _trail(self, order_id: int, market: str, filled_lots: int) -> None:
        """Queues the trailing stop exit of an entry sent with `trailing_stop_percent`: reduce-only,
        sized to what the entry filled, its id derived from the entry's (sent at the next flush)."""
        coid = self._coids.get(order_id)
        if coid is None or coid not in self._trailing or not self.acting:
            return
        side = self._trailing.pop(coid)
        percent = self.info.settings.trailing_stop_percent
        spec = views.spec(self.ports.engine(), market)
        if percent is None or spec is None:
            return
        exit_side = "sell" if side == "buy" else "buy"
        request = OrderRequest(
            market=market,
            side=exit_side,
            quantity=float(decimal_of(filled_lots, spec.lot_size)),
            type="trailing_stop",
            reduce_only=True,
            trail_percent=float(percent),
            client_order_id=f"{coid}-t",
            tag="trailing_stop",
        )
        self.outbox.orders[request.client_order_id or ""] = request
        self.outbox.decisions.append(
            Decision(
                market, Action(exit_side), 1.0, None, 0, reason="trailing stop exit", order_ids=[f"{coid}-t"]
            )
        )

    # ---- equity, risk, status --------------------------------------------------------------------

    def _equity(self) -> Decimal | None:
        try:
            return self.portfolio.equity_decimal()
        except LookupError:
            return None

    async def _watch_risk(self) -> None:
        """Stops the session at `max_drawdown`; pauses it at the weekly target and resumes it when the
        risk manager starts a new week."""
        risk = self.trader.risk
        if risk.status is TradingStatus.STOPPED and self.status is not SessionStatus.STOPPED:
            await self.set_status(SessionStatus.STOPPED, risk.reason)
            raise SessionEndedError(risk.reason)
        if risk.status is TradingStatus.PAUSED and self.status is SessionStatus.RUNNING:
            await self.set_status(SessionStatus.PAUSED, risk.reason)
        elif (
            risk.status is TradingStatus.RUNNING
            and self.status is SessionStatus.PAUSED
            and (self.status_reason or "").startswith("weekly_target")
        ):
            await self.set_status(SessionStatus.RUNNING, None)

    async def set_status(self, status: SessionStatus, reason: str | None) -> None:
        self.status = status
        self.status_reason = reason
        metrics.SESSION_STATUS.labels(session=self.id).set(1 if status is SessionStatus.RUNNING else 0)
        if status in (SessionStatus.STOPPED, SessionStatus.FAILED):
            with contextlib.suppress(Exception):
                self.trader.stop()
        await self._on_status(self)

    # ---- rows and counters -----------------------------------------------------------------------

    def _signal_row(self, cycle: int, signal: Signal, ts: int) -> SessionSignal:
        return SessionSignal(
            session_id=self.id,
            cycle=cycle,
            strategy=signal.strategy[:64],
            market=signal.market,
            action=signal.action.value,
            confidence=_decimal(signal.confidence) or Decimal(0),
            price=_decimal(signal.price),
            reason=signal.reason[:2000],
            meta=orjson.dumps(signal.metadata, default=str).decode(),
            at=_utc(ts),
        )

    def _bar_row(self, cycle: int, data: BarData) -> SessionBar:
        return SessionBar(
            session_id=self.id,
            market=data.market,
            start_ns=data.start_ns,
            end_ns=data.end_ns,
            cycle=cycle,
            open=data.open,
            high=data.high,
            low=data.low,
            close=data.close,
            volume=data.volume,
        )

    def _count(self, signals: Sequence[SessionSignal], decisions: Sequence[SessionDecision]) -> None:
        for row in signals:
            metrics.SESSION_SIGNALS.labels(session=self.id, action=row.action).inc()
        for decision in decisions:
            if decision.vetoed_by is not None:
                metrics.SESSION_VETOES.labels(session=self.id, validator=decision.vetoed_by).inc()
