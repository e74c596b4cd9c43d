"""Where a shard lives in NATS: its stream, subjects, lease key and snapshot object, from one prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class ShardNames:
    """`shard` and `prefix` are letters, digits, '-' and '_' (they become stream names and subject tokens)."""

    shard: str
    prefix: str = "tradehall"

    def __post_init__(self) -> None:
        for what, value in (("shard", self.shard), ("prefix", self.prefix)):
            if not _SAFE.match(value):
                raise ValueError(f"a {what} name is letters, digits, '-' or '_': {value!r}")

    @property
    def stream(self) -> str:
        """The shard's command log: one message per group-commit batch of journal frames."""
        return f"{self.prefix}-shard-{self.shard}"

    @property
    def log_subject(self) -> str:
        return f"{self.prefix}.shard.{self.shard}.log"

    @property
    def command_subject(self) -> str:
        """Request/reply: only the leader listens."""
        return f"{self.prefix}.shard.{self.shard}.cmd"

    @property
    def status_subject(self) -> str:
        """Scatter/gather: every replica of the shard answers with its status."""
        return f"{self.prefix}.shard.{self.shard}.status"

    @property
    def lease_bucket(self) -> str:
        """Shared by the prefix's shards; its max age is the lease's time to live."""
        return f"{self.prefix}-leases"

    @property
    def lease_key(self) -> str:
        return self.shard

    @property
    def snapshot_bucket(self) -> str:
        return f"{self.prefix}-snapshots"

    @property
    def snapshot_object(self) -> str:
        return f"{self.shard}.snapshot"
