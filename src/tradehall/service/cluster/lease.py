"""Leadership of a shard: a lease in a JetStream key-value bucket, taken and renewed by compare-and-set.

The key (the shard) holds who leads and when it last renewed. Every write is conditional on the
revision the writer last saw (`create` when absent, `update(..., last=revision)` otherwise), so of two
replicas racing for a lapsed lease exactly one wins, and a leader that lost it learns so on its next
renewal.

Expiry is judged without comparing clocks across machines:
- a *candidate* takes the lease when the key is absent (the bucket's max age, which is the lease's time
  to live, removed it) or when it has seen the same revision for a whole TTL by its own monotonic clock;
- the *holder* counts its lease valid until `sent + TTL x VALID_FRACTION`, where `sent` is when it sent
  its last successful write: that write was stored after `sent`, so no candidate can have watched it
  for a TTL before then. The holder stops acknowledging when the deadline passes without a renewal.
Fencing in the log (`log.py`) makes a late writer harmless anyway; the lease only keeps one writer
trying at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.js.api import KeyValueConfig, StorageType

log = structlog.get_logger(__name__)

VALID_FRACTION = 0.9
"""The holder counts its lease good for this share of the TTL after a renewal was sent (clock drift)."""

Monotonic = Callable[[], float]
WallNs = Callable[[], int]


class LeaseValue(msgspec.Struct, frozen=True, kw_only=True):
    """The key's value (JSON, so `nats kv get` shows it)."""

    holder: str
    acquired_ns: int
    """Wall clock of the holder when it took the lease (for status only)."""
    renewed_ns: int
    """Wall clock of the holder at its latest renewal (for status only)."""
    ttl_seconds: float


@dataclass(frozen=True, slots=True)
class LeaseView:
    """The lease as anyone reads it."""

    holder: str
    revision: int
    acquired_ns: int
    renewed_ns: int
    ttl_seconds: float


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(LeaseValue)

_UNREACHABLE = (OSError, TimeoutError, nats.errors.Error)


async def open_lease_bucket(js: Any, bucket: str, ttl: float, *, replicas: int = 1) -> tuple[Any, float]:
    """The bucket (created with max age `ttl` when new) and the TTL it actually has.

    All shards of a prefix share the bucket, so its max age is the lease TTL for all of them: a replica
    configured with another TTL adopts the bucket's (and says so)."""
    try:
        kv = await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        config = KeyValueConfig(
            bucket=bucket, history=1, ttl=ttl, storage=StorageType.FILE, replicas=replicas
        )
        try:
            kv = await js.create_key_value(config)
        except nats.js.errors.BadRequestError:  # another replica created it meanwhile
            kv = await js.key_value(bucket)
    status = await kv.status()
    actual = float(status.ttl or ttl)
    if abs(actual - ttl) > 1e-6:
        log.warning("lease_ttl_from_bucket", bucket=bucket, configured=ttl, bucket_ttl=actual)
    return kv, actual


class ShardLease:
    """One replica's handle on one shard's lease. Every method is a single step: loops live outside."""

    def __init__(
        self,
        kv: Any,
        key: str,
        holder: str,
        ttl: float,
        *,
        monotonic: Monotonic = time.monotonic,
        wall_ns: WallNs = time.time_ns,
    ) -> None:
        if ttl <= 0:
            raise ValueError("a lease needs a positive time to live")
        self._kv = kv
        self.key = key
        self.holder = holder
        self.ttl = ttl
        self._monotonic = monotonic
        self._wall_ns = wall_ns
        self.revision: int | None = None
        """Our revision while we hold the lease."""
        self._valid_until = 0.0
        self._acquired_ns = 0
        self._observed: tuple[int, float] | None = None
        """(revision, when first seen) of someone else's lease: it lapses a TTL after that."""
        self.last_view: LeaseView | None = None
        """The lease as last read or written by this handle (status)."""

    @property
    def held(self) -> bool:
        """True while the lease is ours and its deadline has not passed (the leader may acknowledge)."""
        return self.revision is not None and self._monotonic() < self._valid_until

    @property
    def acquired_ns(self) -> int:
        """Our wall clock when we took the lease we hold."""
        return self._acquired_ns

    @property
    def valid_until(self) -> float:
        """The monotonic deadline of a held lease."""
        return self._valid_until

    def _value(self) -> bytes:
        now = self._wall_ns()
        value = LeaseValue(
            holder=self.holder, acquired_ns=self._acquired_ns or now, renewed_ns=now, ttl_seconds=self.ttl
        )
        return _encoder.encode(value)

    async def read(self) -> LeaseView | None:
        """The current lease, or None when nobody holds one (absent, deleted or expired)."""
        try:
            entry = await self._kv.get(self.key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            self.last_view = None
            return None
        if not entry.value:
            return None
        value = _decoder.decode(entry.value)
        self.last_view = LeaseView(
            holder=value.holder,
            revision=int(entry.revision),
            acquired_ns=value.acquired_ns,
            renewed_ns=value.renewed_ns,
            ttl_seconds=value.ttl_seconds,
        )
        return self.last_view

    async def try_acquire(self) -> bool:
        """A candidate's step: take the lease if it is free or has lapsed; True when it is now ours."""
        if self.held:
            return True
        sent = self._monotonic()
        try:
            current = await self.read()
        except _UNREACHABLE as exc:
            log.warning("lease_read_failed", key=self.key, error=repr(exc))
            return False
        self._acquired_ns = self._wall_ns()
        try:
            if current is None:
                revision = await self._kv.create(self.key, self._value())
            else:
                if self._observed is None or self._observed[0] != current.revision:
                    self._observed = (current.revision, sent)
                    if current.holder != self.holder:
                        return False  # a live lease for all we know: watch it for a TTL
                elif current.holder != self.holder and sent - self._observed[1] < self.ttl:
                    return False
                # lapsed (unchanged for a TTL), or ours from before a restart of this replica
                revision = await self._kv.update(self.key, self._value(), last=current.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False  # another candidate won the race
        except _UNREACHABLE as exc:
            log.warning("lease_write_failed", key=self.key, error=repr(exc))
            return False
        self._held_revision(int(revision), sent)
        self._observed = None
        log.info("lease_acquired", key=self.key, holder=self.holder, revision=self.revision)
        return True

    async def renew(self) -> bool:
        """The holder's step: extend the lease; False once it is no longer ours (lost or lapsed)."""
        if self.revision is None:
            return False
        sent = self._monotonic()
        try:
            revision = await self._kv.update(self.key, self._value(), last=self.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            log.warning("lease_lost", key=self.key, holder=self.holder, revision=self.revision)
            self.revision = None
            return False
        except _UNREACHABLE as exc:  # keep trying until the deadline
            log.warning("lease_renew_failed", key=self.key, error=repr(exc))
            return self.held
        self._held_revision(int(revision), sent)
        return True

    def _held_revision(self, revision: int, sent: float) -> None:
        self.revision = revision
        self._valid_until = sent + self.ttl * VALID_FRACTION
        now = self._wall_ns()
        self.last_view = LeaseView(self.holder, revision, self._acquired_ns or now, now, self.ttl)

    def forget(self) -> None:
        """Drops our claim locally (a step-down without a round trip)."""
        self.revision = None

    async def release(self) -> None:
        """Gives the lease up (a graceful stop): deleted only if still ours, so a standby takes it at once."""
        revision, self.revision = self.revision, None
        if revision is None:
            return
        try:
            await self._kv.delete(self.key, last=revision)
        except (nats.js.errors.KeyWrongLastSequenceError, *_UNREACHABLE) as exc:
            log.warning("lease_release_failed", key=self.key, error=repr(exc))
