"""`tradehall cluster status`'s data: every shard's stream and lease as NATS stores them, and what each
of its replicas says of itself (role, applied and stream seq, lag), in one read-only pass.

Shards are found from the streams named `<prefix>-shard-<shard>` unless named; a shard whose replicas
are all down still shows its stream end and its (expiring) lease.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

import nats

from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.protocol import ReplicaStatus
from tradehall.service.cluster.status import ShardOverview, gather_status, shard_overview


@dataclass(frozen=True, slots=True)
class ShardReport:
    overview: ShardOverview
    replicas: list[ReplicaStatus]

    @property
    def leader(self) -> str:
        """The replica that says it leads and holds the lease ("" when none does)."""
        leaders = [
            replica.replica_id for replica in self.replicas
            if replica.role == "leader" and replica.lease_holder == replica.replica_id
        ]
        return leaders[0] if len(leaders) == 1 else ""

    @property
    def standbys(self) -> list[str]:
        return [replica.replica_id for replica in self.replicas if replica.role == "standby"]

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.overview),
            "leader": self.leader,
            "standbys": self.standbys,
            "replicas": [
                {name: getattr(replica, name) for name in replica.__struct_fields__ if name != "state_hash"}
                for replica in self.replicas
            ],
        }


async def _quiet(error: Exception) -> None:
    """nats-py logs every failed connection attempt with a traceback; the caller reports the failure."""


def shard_of_stream(stream: str, prefix: str) -> str | None:
    head = f"{prefix}-shard-"
    return stream[len(head):] if stream.startswith(head) and len(stream) > len(head) else None


async def list_shards(js: Any, prefix: str) -> list[str]:
    """The shards that have a command stream under `prefix`, sorted."""
    shards: list[str] = []
    offset = 0
    while True:
        page = await js.streams_info(offset)  # the server pages the list
        for info in page:
            shard = shard_of_stream(info.config.name or "", prefix)
            if shard is not None:
                shards.append(shard)
        if not page:
            return sorted(shards)
        offset += len(page)


async def cluster_report(
    servers: list[str], prefix: str = "tradehall", shards: list[str] | None = None, *, timeout: float = 0.5
) -> list[ShardReport]:
    """One report per shard (all of `prefix`'s when `shards` is None); replicas answer within `timeout`."""
    chosen = [ShardNames(shard, prefix) for shard in shards or ["any"]]  # bad names fail before connecting
    nc = await nats.connect(
        servers, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0.1,
        error_cb=_quiet,
    )
    try:
        js = nc.jetstream(timeout=5)
        names = chosen if shards else [ShardNames(shard, prefix) for shard in await list_shards(js, prefix)]
        overviews = await asyncio.gather(*(shard_overview(js, each) for each in names))
        replicas = await asyncio.gather(*(gather_status(nc, each, timeout=timeout) for each in names))
        return [ShardReport(overview, found) for overview, found in zip(overviews, replicas, strict=True)]
    finally:
        await nc.close()
