"""The live sessions of one service: created, paused, resumed and stopped here, each run as a supervised
asyncio task.

Supervision: a session's task that raises is marked `failed` with the error as `status_reason`, and
nothing else is touched (other sessions, the server). A task ended by the service stopping (or by an
engine that no longer accepts commands) keeps its status, so the next start resumes it. At start every
`running` or `paused` session is rebuilt from the store (`LiveSession._recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog

from tradehall.domain.errors import Code, TradehallError, invalid_request, not_found
from tradehall.domain.fixedpoint import amount_of
from tradehall.engine import Engine, views
from tradehall.journal.records import JournalRecord
from tradehall.store import sessions as repo
from tradehall.strategies.base import Strategy
from tradehall.strategies.risk import RiskSettings
from tradehall.strategies.sessions import metrics
from tradehall.strategies.sessions.model import FINAL_STATUSES, SessionInfo, SessionStatus, new_session_row
from tradehall.strategies.sessions.runtime import LiveSession, SessionEndedError, SessionPorts
from tradehall.strategies.sessions.settings import parse_markets, parse_settings, parse_strategies

log = structlog.get_logger(__name__)

StrategyLookup = Callable[[str], type[Strategy]]
"""The strategy class registered under a name (`not_found` when there is none)."""


def _now() -> datetime:
    return datetime.now(UTC)


class SessionManager:
    def __init__(
        self,
        ports: SessionPorts,
        lookup: StrategyLookup,
        *,
        now_ns: Callable[[], int],
        durable_seq: Callable[[], int],
        accepting: Callable[[], bool],
        max_per_owner: int = 20,
    ) -> None:
        self.ports = ports
        self.lookup = lookup
        self.now_ns = now_ns
        """The sequencer's clock: a new session's cycles are anchored at its time."""
        self.durable_seq = durable_seq
        """The journal's last durable seq: a new session reads nothing before it."""
        self._accepting = accepting
        self.max_per_owner = max_per_owner
        self.disabled: str | None = None
        """Why this process runs no session (a gateway process), or None."""
        """Running or paused sessions one user may have at once (each is a task of the server)."""
        self.sessions: dict[str, LiveSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resumes every running and paused session from the store."""
        rows = await self.ports.store.call(repo.active_sessions)
        for row in rows:
            info = SessionInfo.from_row(row)
            try:
                strategies = self._build(info)
            except TradehallError as exc:
                await self._persist_status(info.id, SessionStatus.FAILED, f"cannot resume: {exc.detail}")
                continue
            self._launch(info, strategies)
        if rows:
            log.info("sessions_resumed", count=len(self.sessions))

    async def stop(self) -> None:
        """Ends the tasks (statuses stay: a restart resumes the sessions)."""
        self._stopping = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self.sessions.clear()

    def on_records(self, records: Sequence[JournalRecord]) -> None:
        """The service's durable-records listener: every live session gets them, in order."""
        for session in self.sessions.values():
            session.feed(records)

    # ---- commands --------------------------------------------------------------------------------

    def _build(self, info: SessionInfo) -> list[Strategy]:
        strategies = []
        names = [entry.name for entry in info.strategies]
        if len(set(names)) != len(names):
            raise invalid_request("a strategy may appear once per session (its weight is per name)")
        for index, entry in enumerate(info.strategies):
            try:
                cls = self.lookup(entry.name)
            except TradehallError:
                raise invalid_request(f"strategies[{index}].name: no strategy named {entry.name!r}") from None
            try:
                strategies.append(cls(entry.parameters))
            except TradehallError as exc:
                raise invalid_request(f"strategies[{index}] ({entry.name}): {exc.detail}") from None
        return strategies

    async def create(
        self, owner: str, account_id: str, markets: object, strategies: object, settings: object
    ) -> SessionInfo:
        """Validates everything first (400 `invalid_request`, 404 for an unknown market), then stores
        the session and starts it."""
        if self.disabled is not None:
            raise TradehallError(Code.CONFLICT, self.disabled)
        if settings is not None and not isinstance(settings, dict):
            raise invalid_request("settings must be an object")
        parsed_settings = parse_settings(settings)
        RiskSettings.from_settings(parsed_settings.as_dict())  # the risk manager's own checks
        parsed_markets = parse_markets(markets)
        entries = parse_strategies(strategies)
        engine = self.ports.engine()
        for market in parsed_markets:
            if not views.has_market(engine, market):
                raise not_found(f"market {market} not found")
        account = views.account(engine, account_id)
        if account is None:
            raise not_found(f"account {account_id} not found")
        active = sum(1 for live in self.sessions.values() if live.info.owner == owner)
        if active >= self.max_per_owner:
            raise TradehallError(
                Code.CONFLICT,
                f"at most {self.max_per_owner} running or paused sessions per user; stop one first",
            )
        session_id = "ses_" + uuid.uuid4().hex[:12]
        at = _now()
        row = new_session_row(
            session_id,
            owner,
            account_id,
            parsed_markets,
            entries,
            parsed_settings,
            anchor_ns=_aligned(self.now_ns(), parsed_settings.interval_seconds * 1_000_000_000),
            last_seq=self.durable_seq(),
            start_equity=_equity(engine, account_id),
            at=at,
        )
        info = SessionInfo.from_row(row)
        built = self._build(info)
        await self.ports.store.call(repo.insert_session, row)
        self._launch(info, built)
        self._publish_status(info)
        log.info("session_created", session=session_id, account=account_id, markets=parsed_markets)
        return info

    async def get(self, session_id: str) -> SessionInfo:
        row = await self.ports.store.call(repo.get_session, session_id)
        if row is None:
            raise not_found(f"session {session_id} not found")
        return SessionInfo.from_row(row)

    async def pause(self, session_id: str) -> SessionInfo:
        return await self._transition(session_id, SessionStatus.PAUSED, "paused by the user")

    async def resume(self, session_id: str) -> SessionInfo:
        return await self._transition(session_id, SessionStatus.RUNNING, None)

    async def stop_session(self, session_id: str) -> SessionInfo:
        info = await self._transition(session_id, SessionStatus.STOPPED, "stopped by the user")
        task = self._tasks.pop(session_id, None)
        self.sessions.pop(session_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return info

    async def _transition(self, session_id: str, target: SessionStatus, reason: str | None) -> SessionInfo:
        if self.disabled is not None:
            raise TradehallError(Code.CONFLICT, self.disabled)
        info = await self.get(session_id)
        if info.status in FINAL_STATUSES:
            raise TradehallError(Code.CONFLICT, f"session {session_id} is {info.status.value}")
        if info.status is target:
            return info
        live = self.sessions.get(session_id)
        if live is not None:
            await live.set_status(target, reason)  # persists and publishes through `_on_status`
        else:
            await self._persist_status(session_id, target, reason)
        return await self.get(session_id)

    # ---- supervision -----------------------------------------------------------------------------

    def _launch(self, info: SessionInfo, strategies: list[Strategy]) -> None:
        session = LiveSession(info, strategies, self.ports, on_status=self._on_status)
        self.sessions[info.id] = session
        metrics.SESSION_STATUS.labels(session=info.id).set(1 if info.status is SessionStatus.RUNNING else 0)
        task = asyncio.create_task(self._supervise(session), name=f"session:{info.id}")
        self._tasks[info.id] = task

    async def _supervise(self, session: LiveSession) -> None:
        try:
            await session.run()
        except asyncio.CancelledError:
            raise
        except SessionEndedError:
            pass
        except Exception as exc:
            if self._stopping or not self._accepting():
                log.warning("session_interrupted", session=session.id, error=repr(exc))
                return
            log.error("session_failed", session=session.id, error=repr(exc), exc_info=exc)
            reason = f"{type(exc).__name__}: {exc}"[:1000]
            with contextlib.suppress(Exception):
                await session.set_status(SessionStatus.FAILED, reason)
        finally:
            if self.sessions.get(session.id) is session and session.status in FINAL_STATUSES:
                del self.sessions[session.id]
                self._tasks.pop(session.id, None)

    async def _on_status(self, session: LiveSession) -> None:
        await self._persist_status(session.id, session.status, session.status_reason)

    async def _persist_status(self, session_id: str, status: SessionStatus, reason: str | None) -> None:
        row = await self.ports.store.call(
            repo.update_session, session_id, status=status.value, status_reason=reason, updated_at=_now()
        )
        metrics.SESSION_STATUS.labels(session=session_id).set(1 if status is SessionStatus.RUNNING else 0)
        if row is not None:
            self._publish_status(SessionInfo.from_row(row))

    def _publish_status(self, info: SessionInfo) -> None:
        data: dict[str, Any] = {"event": "status", **info.as_dict()}
        self.ports.publish(info.owner, "sessions", data)


def _aligned(ns: int, width: int) -> int:
    """The start of the interval window holding `ns`, windows aligned to the epoch as a backtest's bars
    are (`strategies.bars.BarBuilder`): a session and a backtest on the same data see the same bars."""
    return ns - ns % width


def _equity(engine: Engine, account_id: str) -> Decimal | None:
    account = views.account(engine, account_id)
    if account is None:
        return None
    return amount_of(account.valuation.equity, views.currency_places(engine, account.currency))
