"""Where the publisher remembers how far it got: the last journal seq fully on the bus.

The position is saved after the broker confirmed the batch, so a crash can only make the publisher
publish a few records again (consumers dedupe by id), never skip one. The market specs travel with
the position because the serializer needs the spec of every market created before it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import msgspec

from tradehall.domain.market import MarketSpec


class PublisherPosition(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    markets: list[MarketSpec] = []


class PositionStore(Protocol):
    def load(self) -> PublisherPosition | None: ...

    def save(self, position: PublisherPosition) -> None: ...


class MemoryPositionStore:
    def __init__(self) -> None:
        self.position: PublisherPosition | None = None
        self.saves = 0

    def load(self) -> PublisherPosition | None:
        return self.position

    def save(self, position: PublisherPosition) -> None:
        self.position = position
        self.saves += 1


class FilePositionStore:
    """A small JSON file replaced atomically (write, fsync, rename), e.g. `<data_dir>/bus/position.json`."""

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self._fsync = fsync
        self._encoder = msgspec.json.Encoder(decimal_format="string")

    def load(self) -> PublisherPosition | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return msgspec.json.decode(data, type=PublisherPosition)

    def save(self, position: PublisherPosition) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "wb") as file:
            file.write(self._encoder.encode(position))
            if self._fsync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, self.path)
