"""The bus message: one engine event with the metadata a consumer needs to order and dedupe it.

`id` is `"{seq}:{index}"` (journal sequence, position of the event in its record): unique per event
and stable across re-publishing, so every backend and consumer can drop duplicates by it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

SCHEMA_VERSION = 1
"""Bumped when a payload changes incompatibly; consumers should refuse versions they do not know."""


class Envelope(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    id: str
    seq: int
    index: int
    type: str
    schema_version: int
    correlation_id: str
    ts: int
    time: str
    topic: str
    key: str
    payload: dict[str, Any]

    @property
    def position(self) -> tuple[int, int]:
        """The total order of messages from one engine: (journal seq, event index)."""
        return (self.seq, self.index)


_encoder = msgspec.json.Encoder(decimal_format="string")
_decoder = msgspec.json.Decoder(Envelope)


def encode_envelope(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode_envelope(data: bytes | bytearray | memoryview) -> Envelope:
    return _decoder.decode(data)


def message_id(seq: int, index: int) -> str:
    return f"{seq}:{index}"


def iso_time(ts_ns: int) -> str:
    """RFC 3339 UTC with nanoseconds: the engine's time is nanoseconds and a consumer may need all of them."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
