"""Startup and shutdown of one tradehall process: settings -> store, engine runner, projector, admin user.

The projector reads the runner's durable records through a listener (never blocking the engine);
on start it first catches up from the journal after its own stored seq (`service.projection`).
`read_barrier()` lets a read of the read models wait until they show everything durable when the
read began, which is what makes read-after-write hold for history queries without slowing the write
path. With `serve --workers N` the projector runs in a process of its own: the engine process and
the gateways then read how far it is from the store (`projection_state`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tradehall.domain.commands import AdvanceTime, AnyCommand
from tradehall.domain.events import AnyEvent
from tradehall.engine import Engine, EngineConfig
from tradehall.journal.records import JournalRecord
from tradehall.journal.recovery import EngineFactory
from tradehall.journal.segments import read_records
from tradehall.service.clock import Clock, ManualClock
from tradehall.service.engine_config import configure_command
from tradehall.service.integrations import Integrations
from tradehall.service.projection import Projection
from tradehall.service.runner import CommandResult, EngineRunner, RunnerConfig
from tradehall.service.settings import Settings
from tradehall.store import Projector, ProjectorConfig, Store, upgrade
from tradehall.store import repositories as repo
from tradehall.strategies.registry import StrategyRegistry, default_registry
from tradehall.strategies.sessions import SessionManager, SessionPorts

log = structlog.get_logger(__name__)

RecordListener = Callable[[Sequence[JournalRecord]], None]
PasswordHasher = Callable[[str], str]


def engine_factory(config: EngineConfig | None = None) -> EngineFactory[Engine]:
    engine_config = config or EngineConfig()
    return EngineFactory(create=lambda: Engine(engine_config), restore=Engine.restore)


class Service:
    """Owns the runtime pieces; `await start()` before serving, `await stop()` after."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        runner: EngineRunner[Engine] | None = None,
        project: bool = True,
        feeds: bool = True,
    ) -> None:
        """`runner`: a gateway process's `FollowerRunner` (`tradehall serve --workers N`). Such a
        service is a follower: the engine process ticks the clock, runs the sessions and integrations
        and creates the admin user; this one serves requests over the replica. `project=False` (the
        engine process of `serve --workers N`): the projector process writes the read models, this
        one only reads how far it is. `feeds=False`: the market-data feeds run in their own process."""
        self.settings = settings
        self.follower = runner is not None
        self.projects = project and not self.follower
        self.manual_clock: ManualClock | None = None
        """The clock `POST /admin/clock` moves, when the process runs with TRADEHALL_CLOCK=manual."""
        if clock is None and settings.clock == "manual":
            clock = self.manual_clock = ManualClock(time.time_ns())
        elif isinstance(clock, ManualClock):
            self.manual_clock = clock
        self._clock = clock
        self.runner: EngineRunner[Engine] = runner or EngineRunner(
            engine_factory(), RunnerConfig.from_settings(settings), clock=clock, retain_from=self._retain_from
        )
        self._store: Store | None = None
        self._projector: Projector | None = None
        self._projection: Projection | None = None
        self._projected_seq = 0
        """How far the read models are, when another process projects (read from the store)."""
        self.read_barriers: list[Callable[[float], Awaitable[None]]] = []
        """More barriers a history read waits for (a cluster gateway: the shards' projections)."""
        self._position_task: asyncio.Task[None] | None = None
        self._listeners: list[RecordListener] = []
        self._remove_listener: Callable[[], None] | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self.integrations = Integrations(settings, self.runner, feeds=feeds)
        """The bus publisher and the market-data feeds, when configured."""
        self.strategies: StrategyRegistry = default_registry(settings.strategies_dir)
        """Every strategy a session or backtest may name (built-ins, entry points, the directory)."""
        self._sessions: SessionManager | None = None
        self.session_publishers: list[Callable[[str, str, dict[str, Any]], None]] = []
        """Who hears a session's private messages (user id, channel, data): the WebSocket hub."""
        self.started_at = 0.0
        self.running = False

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the service has not started")
        return self._store

    @property
    def projector(self) -> Projector:
        if self._projector is None:
            raise RuntimeError("the service has not started")
        return self._projector

    @property
    def engine(self) -> Engine:
        return self.runner.engine

    @property
    def sessions(self) -> SessionManager:
        """The live trading sessions (`tradehall.strategies.sessions`)."""
        if self._sessions is None:
            raise RuntimeError("the service has not started")
        return self._sessions

    async def start(self, *, password_hasher: PasswordHasher | None = None) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.sqlalchemy_url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if not self.follower:
            await asyncio.to_thread(upgrade, url)  # the engine process's; it runs before the gateways
        self._store = Store.from_url(url)
        self._projector = Projector(self._store.engine, ProjectorConfig())
        if self.projects:  # fed from the runner's listener, from `start()` on
            self._projection = Projection(self._projector, settings.journal_dir)
        await self.runner.start()
        if self.follower:
            self.started_at = time.monotonic()
            self.running = True
            log.info("follower_service_started", seq=self.runner.durable_seq)
            return
        if self.manual_clock is not None:
            # a recovered journal may already be ahead of the wall clock: time never goes back
            self.manual_clock.set(max(self.manual_clock.peek_ns(), self.runner.engine.state.now))
            log.warning("manual_clock", detail="the sequencer's time moves only by POST /admin/clock")
        self._remove_listener = self.runner.add_listener(self._on_records)
        configure = configure_command(settings, self.runner.engine.config)
        if configure is not None:
            await self.runner.submit(configure)
        durable = self.runner.durable_seq
        if self._projection is not None:
            projected = await self._projection.start(durable)
        else:  # the projector process writes; the journal's retention follows its stored seq
            projected = self._projected_seq = await self._projector.last_seq()
            self._position_task = asyncio.create_task(self._follow_position(), name="projector-position")
        if settings.clock_tick_seconds > 0:
            tick = self._tick_clock(settings.clock_tick_seconds)
            self._clock_task = asyncio.create_task(tick, name="clock")
        await self.integrations.start(self._store)
        await self._start_sessions(self._store)
        if password_hasher is not None:
            await self.ensure_admin(password_hasher)
        self.started_at = time.monotonic()
        self.running = True
        log.info("service_started", data_dir=str(settings.data_dir), seq=durable, projected=projected)

    async def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        if self._sessions is not None:
            await self._sessions.stop()  # first: a session's task must not meet a stopping runner
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
        await self.integrations.stop()
        await self.runner.stop()
        if self._remove_listener is not None:
            self._remove_listener()
        if self._projection is not None:  # let the projector finish what is already durable
            await self._projection.stop(self.runner.durable_seq)
        if self._position_task is not None:
            self._position_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._position_task
        if self._projector is not None:
            self._projector.close()
        if self._store is not None:
            self._store.close()
        log.info("service_stopped")

    async def _start_sessions(self, store: Store) -> None:
        """The session manager, listening to durable records before it resumes the stored sessions."""

        async def submit(command: AnyCommand) -> Sequence[AnyEvent]:
            return (await self.runner.submit(command)).events

        def publish(user_id: str, channel: str, data: dict[str, Any]) -> None:
            for publisher in list(self.session_publishers):
                try:
                    publisher(user_id, channel, data)
                except Exception as exc:  # a broken subscriber must not stop a session
                    log.error("session_publisher_failed", error=repr(exc))

        journal_dir = self.settings.journal_dir

        async def journal_after(seq: int) -> list[JournalRecord]:
            """The durable records after `seq` (what a resumed session has not worked through)."""
            last = self.runner.durable_seq
            if seq >= last:
                return []
            return await asyncio.to_thread(lambda: list(read_records(journal_dir, seq + 1, last)))

        manual = self.manual_clock
        ports = SessionPorts(
            engine=lambda: self.runner.engine,
            store=store,
            submit=submit,
            publish=publish,
            journal_after=journal_after,
        )
        manager = SessionManager(
            ports,
            self.strategies.get,
            now_ns=manual.peek_ns if manual is not None else self.runner.clock.now_ns,
            durable_seq=lambda: self.runner.durable_seq,
            accepting=lambda: self.runner.accepting,
            max_per_owner=self.settings.max_sessions_per_user,
        )
        self._sessions = manager
        if self.settings.ws_source == "bus" and self.settings.engine_url is not None:
            # a gateway of an engine elsewhere: its own engine is idle, sessions run beside the engine
            manager.disabled = "this process is a gateway: sessions run in the engine's process"
            return
        self.add_listener(manager.on_records)
        await manager.start()

    async def ensure_admin(self, password_hasher: PasswordHasher) -> None:
        """Creates TRADEHALL_ADMIN_USER with its password at start when no user of that name exists."""
        name = self.settings.admin_user
        if not name:
            return
        existing = await self.store.call(repo.find_user_by_username, name)
        if existing is not None:
            return
        hashed = await asyncio.to_thread(password_hasher, self.settings.admin_password)
        await self.store.call(repo.create_user, name, hashed, "admin")
        log.info("admin_user_created", username=name)

    async def _tick_clock(self, interval: float) -> None:
        """Time reaches the engine only inside commands: DAY/GTD expiry, daily assessment resets,
        funding, market close times and latency-deferred paper fills all wait for an AdvanceTime."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.runner.submit(AdvanceTime())
            except Exception as exc:  # the runner stopping ends the ticks; nothing else should
                if not self.runner_alive():
                    return
                log.warning("clock_tick_failed", error=repr(exc))

    # ---- commands ----------------------------------------------------------------------------

    async def submit(self, command: AnyCommand) -> CommandResult:
        return await self.runner.submit(command)

    def add_listener(self, listener: RecordListener) -> Callable[[], None]:
        """Durable records, in seq order, delivered on the loop (for the WebSocket fan-out, metrics)."""
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def _on_records(self, records: Sequence[JournalRecord]) -> None:
        if self._projection is not None:
            self._projection.feed(records)
        for listener in list(self._listeners):
            try:
                listener(records)
            except Exception as exc:  # a broken subscriber must not stop the others
                log.error("record_listener_failed", error=repr(exc))

    # ---- projection ----------------------------------------------------------------------------

    def _retain_from(self) -> int:
        # the journal must keep what the projector and the bus publisher still have to read
        publisher = self.integrations.retain_from()
        projector = self.projected_seq + 1
        return projector if publisher is None else min(projector, publisher)

    async def _follow_position(self, interval: float = 1.0) -> None:
        """The engine process of `serve --workers N`: how far the projector process is, so the
        journal keeps what it has yet to read (a stale figure only keeps more)."""
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # the store away: keep the last figure
                await self.refresh_projected()

    @property
    def projected_seq(self) -> int:
        return self._projection.projected_seq if self._projection is not None else self._projected_seq

    async def refresh_projected(self) -> None:
        """When another process projects: how far it is, read from the store (for `/ready`)."""
        if self._projection is None and self._projector is not None:
            self._projected_seq = await self._projector.last_seq()

    @property
    def projection_lag(self) -> int:
        return max(0, self.runner.durable_seq - self.projected_seq)

    @property
    def projection_failed(self) -> BaseException | None:
        return self._projection.error if self._projection is not None else None

    async def wait_projected(self, seq: int, timeout: float = 5.0) -> None:
        """Waits until the read models show record `seq`; TimeoutError after `timeout` seconds."""
        if self._projection is not None:
            await self._projection.wait_projected(seq, timeout)
            return
        if self._projected_seq >= seq:  # already read from the store: it only grows (no query per GET)
            return
        deadline = time.monotonic() + timeout  # another process projects: read how far from the store
        while (projected := await self.projector.last_seq()) < seq:
            self._projected_seq = projected
            if time.monotonic() >= deadline:
                raise TimeoutError(f"read models are behind seq {seq}")
            await asyncio.sleep(0.002)
        self._projected_seq = projected

    async def read_barrier(self, timeout: float = 5.0) -> None:
        """Read-after-write for the read models: wait until they show all that is durable now.

        Best effort: after `timeout` the read goes ahead on what is projected (and says so in the log)
        rather than failing; a projector that has stopped is an error.
        """
        target = self.runner.durable_seq
        try:
            await self.wait_projected(target, timeout)
        except TimeoutError:
            log.warning("read_barrier_timeout", target_seq=target, projected_seq=self.projected_seq)
        for barrier in self.read_barriers:
            await barrier(timeout)

    async def store_reachable(self) -> bool:
        def ping(session: object) -> bool:
            from sqlalchemy.orm import Session

            assert isinstance(session, Session)
            session.execute(text("SELECT 1"))
            return True

        try:
            return await asyncio.wait_for(self.store.call(ping), 2.0)
        except Exception:
            return False

    def journal_writable(self) -> bool:
        try:
            journal_dir = self.settings.journal_dir
            return journal_dir.is_dir() and not self.runner.is_stopped() and self.runner_alive()
        except Exception:
            return False

    def runner_alive(self) -> bool:
        try:
            self.runner.engine  # noqa: B018 - raises when not started
        except Exception:
            return False
        # `accepting` turns false on a fatal journal or engine failure, before `is_stopped`
        return not self.runner.is_stopped() and self.runner.accepting


async def run_with_service(settings: Settings, body: Callable[[Service], Awaitable[None]]) -> None:
    service = Service(settings)
    await service.start()
    try:
        await body(service)
    finally:
        await service.stop()
