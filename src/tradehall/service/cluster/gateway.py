"""A gateway process joined to a cluster: NATS clients of every shard's leader, a read replica of every
shard, the transfer coordinator, from the settings (`TRADEHALL_CLUSTER_SHARDS`, `TRADEHALL_NATS_URL`).

Each read replica restores the shard's newest snapshot and stream (`log.restore_state`), then follows the
stream with an ordered consumer, applying every batch to its own engine (never writing): the same
deterministic state as the shard's replicas. After a command, the gateway waits until the replica of its
shard has applied the command's record before it answers, so a read that follows sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from tradehall.engine import Engine
from tradehall.journal.records import JournalRecord
from tradehall.journal.recovery import EngineFactory
from tradehall.service.cluster.client import ShardClient
from tradehall.service.cluster.connection import connect as connect_nats
from tradehall.service.cluster.log import LogEntry, ShardLog, ShardState, restore_state
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.ops import followed_check
from tradehall.service.cluster.projection import wait_shards_projected
from tradehall.service.cluster.routing import ClusterGateway, ShardRouter, ShardSubmitter
from tradehall.service.cluster.shards import ShardMap, shard_configure, shard_map_of
from tradehall.service.cluster.snapshots import ShardSnapshots
from tradehall.service.cluster.status import shard_overview
from tradehall.service.cluster.transfers import KvTransferStore, TransferCoordinator
from tradehall.service.runner import RunnerError
from tradehall.service.settings import Settings
from tradehall.store import Store

log = structlog.get_logger(__name__)

READ_WAIT_SECONDS = 5.0
"""How long an answer waits for the shard's replica to apply its record before it reads it as it is."""
CHECK_SECONDS = 2.0
"""How long `/ready` waits for NATS to tell a shard's lease and stream end."""
RESYNC_BASE_SECONDS = 0.1
RESYNC_CAP_SECONDS = 5.0
"""A read replica that failed to restore tries again after a delay doubling from the base to the cap."""
RECOVER_EVERY_SECONDS = 30.0
"""How often unfinished transfers are driven on (and at start)."""


class JetStreamReads:
    """One read replica per shard, each following its shard's stream.

    A replica that cannot apply what the stream delivers (records missing: the stream was purged past
    it while it lagged, the leader's `keep_messages`) restores the newest snapshot and follows again,
    keeping its listeners (they miss the records in between: logged `cluster_read_replica_resync`)."""

    def __init__(self) -> None:
        self._states: dict[str, ShardState[Engine]] = {}
        self._subscriptions: dict[str, Any] = {}
        self._names: dict[str, ShardNames] = {}
        self._factories: dict[str, EngineFactory[Engine]] = {}
        self._resyncing: dict[str, asyncio.Task[None]] = {}
        self._js: Any = None
        self.resyncs = 0
        """Times a replica restored the snapshot after it could not apply the stream (tests read it)."""

    async def follow(self, js: Any, names: ShardNames, factory: EngineFactory[Engine]) -> None:
        self._js = js
        self._names[names.shard] = names
        self._factories[names.shard] = factory
        await self._follow(names.shard)

    async def _follow(self, shard: str) -> None:
        names = self._names[shard]
        shard_log = ShardLog(self._js, names)
        state = await restore_state(shard_log, ShardSnapshots(self._js, names), self._factories[shard])
        previous = self._states.get(shard)
        if previous is not None:
            state.listeners = previous.listeners
        self._states[shard] = state

        def on_entry(entry: LogEntry, state: ShardState[Engine] = state) -> None:
            self._on_entry(shard, state, entry)

        self._subscriptions[shard] = await shard_log.subscribe(state.stream_seq + 1, on_entry)

    def _on_entry(self, shard: str, state: ShardState[Engine], entry: LogEntry) -> None:
        if state is not self._states.get(shard):
            return  # a delivery to a replica already replaced
        try:
            state.apply(entry)
        except Exception as error:  # a gap (purged past us) or an engine failure: start again
            if shard not in self._resyncing:
                applied = state.applied_seq
                log.error("cluster_read_replica_resync", shard=shard, applied=applied, error=repr(error))
                self._resyncing[shard] = asyncio.create_task(self._resync(shard), name=f"resync-{shard}")

    async def _resync(self, shard: str) -> None:
        delay = RESYNC_BASE_SECONDS
        try:
            while True:
                subscription = self._subscriptions.pop(shard, None)
                if subscription is not None:
                    with contextlib.suppress(Exception):
                        await subscription.unsubscribe()
                try:
                    await self._follow(shard)
                except Exception as error:  # NATS away: again, later
                    log.warning("cluster_read_replica_restore_failed", shard=shard, error=repr(error))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RESYNC_CAP_SECONDS)
                    continue
                self.resyncs += 1
                return
        finally:
            self._resyncing.pop(shard, None)

    def engine_of(self, shard: str) -> Engine:
        return self._states[shard].engine

    def applied_seq(self, shard: str) -> int:
        return self._states[shard].applied_seq

    async def wait_applied(self, shard: str, seq: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READ_WAIT_SECONDS
        while (state := self._states[shard]).applied_seq < seq:
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("cluster_read_behind", shard=shard, applied=state.applied_seq, seq=seq)
                return
            await state.wait_stream_seq(state.stream_seq + 1, remaining)

    def add_listener(self, shard: str, listener: Callable[[Sequence[JournalRecord]], None]) -> None:
        self._states[shard].listeners.append(listener)

    async def shard_check(self, shard: str) -> dict[str, Any]:
        """The shard's `/ready` entry: its lease and stream end as NATS stores them (within
        `CHECK_SECONDS`), against how far this gateway's replica of it has applied."""
        state = self._states[shard]
        try:
            overview = await asyncio.wait_for(shard_overview(self._js, self._names[shard]), CHECK_SECONDS)
        except Exception as error:  # NATS unreachable: no leader can be seen
            return {"ok": False, "leader_seen": False, "applied_seq": state.applied_seq, "error": repr(error)}
        check = followed_check(
            applied_seq=state.applied_seq,
            stream_seq=state.stream_seq,
            stream_last_seq=overview.stream_last_seq,
            lease_holder=overview.lease_holder,
            lease_since_renewal_seconds=overview.lease_since_renewal_seconds,
            lease_ttl_seconds=overview.lease_ttl_seconds,
            diverged_seq=state.diverged_seq,
        )
        if shard in self._resyncing:  # restoring the snapshot after it fell behind the purged stream
            check.update(ok=False, resyncing=True)
        return check

    async def close(self) -> None:
        for task in list(self._resyncing.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for subscription in self._subscriptions.values():
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        self._subscriptions.clear()


class ClusterConnection:
    """What `connect` opened; `close()` ends it (the recovery task, the replicas, the connection)."""

    def __init__(self, gateway: ClusterGateway, nc: Any, reads: JetStreamReads) -> None:
        self.gateway = gateway
        self._nc = nc
        self._reads = reads
        self._task: asyncio.Task[None] | None = None

    def start_recovery(self, every: float = RECOVER_EVERY_SECONDS) -> None:
        async def loop() -> None:
            transfers = self.gateway.transfers
            assert transfers is not None
            while True:
                try:
                    await self._ensure_id_bases()
                    await transfers.recover()
                except Exception as error:  # NATS down for a while: the next round tries again
                    log.warning("cluster_recovery_failed", error=repr(error))
                await asyncio.sleep(every)

        self._task = asyncio.create_task(loop(), name="cluster-transfers")

    async def _ensure_id_bases(self) -> None:
        """Every shard's engine in its id range (a journaled no-op once it is)."""
        router = self.gateway.router
        for shard in router.shard_map.names:
            reads = self._reads
            if reads.engine_of(shard).config.id_base == router.shard_map.id_base(shard):
                continue
            try:
                await router.submit_to(shard, shard_configure(router.shard_map, shard))
            except RunnerError as error:  # no leader yet: the next round tries again
                log.warning("cluster_id_base_not_set", shard=shard, error=str(error))

    async def wait_projected(self, store: Store, timeout: float) -> None:
        """A history read's barrier: the shards' projections show what this gateway's replicas applied."""
        reads = self._reads
        targets = {shard: reads.applied_seq(shard) for shard in self.gateway.router.shard_map.names}
        await wait_shards_projected(store, targets, timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._reads.close()
        await self._nc.close()


async def open_transfers(settings: Settings, shard_map: ShardMap) -> tuple[TransferCoordinator, Any]:
    """A transfer coordinator without read replicas (`tradehall cluster transfer`) and its NATS
    connection (the caller closes it)."""
    nc = await connect_nats(settings.nats_url, "tradehall-transfers")
    try:
        clients: dict[str, ShardSubmitter] = {
            shard: ShardClient(nc, ShardNames(shard, settings.cluster_prefix)) for shard in shard_map.names
        }
        router = ShardRouter(
            shard_map,
            clients,
            request_timeout=settings.cluster_request_timeout_seconds,
            retry_seconds=settings.cluster_retry_seconds,
        )
        store = await KvTransferStore.open(nc.jetstream(), settings.cluster_prefix)
    except BaseException:
        await nc.close()
        raise
    return TransferCoordinator(router.submit_to, store, shard_map.names), nc


def cluster_shard_map(settings: Settings) -> ShardMap | None:
    return shard_map_of(settings.cluster_shards, settings.cluster_shards_file, settings.cluster_home_shard)


async def connect(
    settings: Settings, shard_map: ShardMap, factory: EngineFactory[Engine]
) -> ClusterConnection:
    """Connects to NATS (`nats_url`, a comma-separated list of servers), follows every shard and builds
    the gateway's cluster side; every shard's stream must exist (its replicas started once)."""
    nc = await connect_nats(settings.nats_url, "tradehall-gateway")
    js = nc.jetstream()
    prefix = settings.cluster_prefix
    clients: dict[str, ShardSubmitter] = {}
    reads = JetStreamReads()
    try:
        for shard in shard_map.names:
            names = ShardNames(shard, prefix)
            clients[shard] = ShardClient(nc, names, timeout=settings.cluster_request_timeout_seconds)
            await reads.follow(js, names, factory)
        router = ShardRouter(
            shard_map,
            clients,
            request_timeout=settings.cluster_request_timeout_seconds,
            retry_seconds=settings.cluster_retry_seconds,
        )
        store = await KvTransferStore.open(js, prefix)
    except BaseException:
        await reads.close()
        await nc.close()
        raise
    transfers = TransferCoordinator(router.submit_to, store, shard_map.names)
    connection = ClusterConnection(ClusterGateway(router, reads, transfers), nc, reads)
    log.info("cluster_connected", shards=shard_map.names, home=shard_map.home, servers=settings.nats_url)
    return connection
