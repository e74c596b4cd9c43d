"""What an operator reads of a shard: every replica's own status, and the lease and stream as stored."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.js.errors

from tradehall.service.cluster.lease import ShardLease
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.protocol import ReplicaStatus, StatusRequest, status_decoder


async def gather_status(
    nc: Any, names: ShardNames, *, timeout: float = 0.5, state_hash: bool = False
) -> list[ReplicaStatus]:
    """Every replica of the shard that answers within `timeout`, sorted by replica id."""
    inbox = nc.new_inbox()
    answers: list[ReplicaStatus] = []

    async def collect(message: Any) -> None:
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            answers.append(status_decoder.decode(message.data))

    subscription = await nc.subscribe(inbox, cb=collect)
    try:
        await nc.publish(
            names.status_subject, msgspec.json.encode(StatusRequest(state_hash=state_hash)), reply=inbox
        )
        await nc.flush()
        await asyncio.sleep(timeout)
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
    return sorted(answers, key=lambda status: status.replica_id)


@dataclass(frozen=True, slots=True)
class ShardOverview:
    """The shard as NATS stores it, whether or not any replica is up."""

    shard: str
    stream_last_seq: int
    stream_messages: int
    stream_bytes: int
    lease_holder: str
    """Empty when nobody holds the lease."""
    lease_revision: int
    lease_age_seconds: float
    lease_since_renewal_seconds: float
    lease_ttl_seconds: float
    stream_first_seq: int = 0
    """The oldest message the stream still holds (above 1 once the leader trimmed it behind a snapshot)."""


async def shard_overview(js: Any, names: ShardNames) -> ShardOverview:
    """The stream's size and end, and the lease's holder and age (0s and "" where absent)."""
    first = last = messages = size = 0
    with contextlib.suppress(nats.js.errors.NotFoundError):
        info = await js.stream_info(names.stream)
        last, messages, size = int(info.state.last_seq), int(info.state.messages), int(info.state.bytes)
        first = int(info.state.first_seq)
    holder, revision, age, since, ttl = "", 0, 0.0, 0.0, 0.0
    with contextlib.suppress(nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
        kv = await js.key_value(names.lease_bucket)
        view = await ShardLease(kv, names.lease_key, holder="", ttl=1.0).read()
        if view is not None:
            now = time.time_ns()
            holder, revision, ttl = view.holder, view.revision, view.ttl_seconds
            age = max(0.0, (now - view.acquired_ns) / 1e9)
            since = max(0.0, (now - view.renewed_ns) / 1e9)
    return ShardOverview(names.shard, last, messages, size, holder, revision, age, since, ttl, first)
