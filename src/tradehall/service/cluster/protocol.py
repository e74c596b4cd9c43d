"""What travels on a shard's command and status subjects (msgspec: msgpack for commands, JSON for status)."""

from __future__ import annotations

import msgspec

from tradehall.domain.commands import AnyCommand
from tradehall.domain.events import AnyEvent


class ShardRequest(msgspec.Struct, frozen=True, array_like=True, gc=False):
    command: AnyCommand


class ShardReply(msgspec.Struct, frozen=True, array_like=True, gc=False):
    seq: int = 0
    ts: int = 0
    events: tuple[AnyEvent, ...] = ()
    error: str = ""
    """Non-empty: the command was refused before the engine decided (or the leader is stepping down)."""
    code: str = ""
    """With `error`: a `domain.errors.Code` when the refusal has one (e.g. `invalid_request`)."""


class ReplicaStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One replica's answer on the status subject."""

    replica_id: str
    shard: str
    role: str
    """"leader", "standby", "starting", "stepping_down" or "stopping"."""
    applied_seq: int
    """The last record (engine command) seq this replica applied."""
    stream_seq: int
    """The last stream message it consumed or wrote."""
    stream_last_seq: int
    """The stream's last message as this replica last learned it (a leader: its own last append)."""
    lag: int
    """Stream messages behind `stream_last_seq`."""
    lease_holder: str
    lease_revision: int
    lease_age_seconds: float
    """Since the holder took the lease (its wall clock); 0 without a holder."""
    lease_ttl_seconds: float
    takeovers: int
    """How many times this replica became the leader."""
    pid: int
    diverged_seq: int = 0
    """Non-zero: the first record whose journaled events this replica's engine did not reproduce; it
    keeps following but never leads (another engine version? a bug?)."""
    state_hash: str = ""
    """Only when asked (`{"state_hash": true}`): the engine's state hash, the same on every replica."""


class StatusRequest(msgspec.Struct, frozen=True, kw_only=True):
    state_hash: bool = False


command_encoder = msgspec.msgpack.Encoder()
request_decoder = msgspec.msgpack.Decoder(ShardRequest)
reply_decoder = msgspec.msgpack.Decoder(ShardReply)
status_encoder = msgspec.json.Encoder()
status_decoder = msgspec.json.Decoder(ReplicaStatus)
status_request_decoder = msgspec.json.Decoder(StatusRequest)
