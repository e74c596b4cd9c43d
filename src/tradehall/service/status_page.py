"""The engine process's status page: a few words every process of `serve --workers N` reads at once.

Read-after-write across gateways and the revocation of credentials need to know where the engine
process stands before each request; asking it over the transport costs a round trip per request. The
engine process writes these words to a small memory-mapped file of the data directory before it
answers, and a gateway reads them in a few hundred nanoseconds.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

STATUS_FILE_NAME = "engine.status"
_STATUS_BYTES = 16


def status_path(data_dir: object) -> Path:
    """The engine's status words for the processes of one data directory (`EngineStatus`)."""
    return Path(str(data_dir)) / STATUS_FILE_NAME


class EngineStatus:
    """Two words the engine process keeps in a shared page (a 16-byte file of the data directory,
    memory-mapped by every process of `serve --workers N`): its durable seq and how many credential
    revocations it has relayed.

    A gateway reads them in a few hundred nanoseconds, where asking the engine process costs a round
    trip: a GET waits until its replica shows the durable seq it reads here (read-after-write across
    gateways), and any request whose revocation count changed forgets every cached API key before it
    authenticates (a key deleted through one gateway stops working in all of them at once). The engine
    writes both before it answers, so whatever a client was answered is already visible here. Each
    word is an aligned 64-bit integer written and read whole (single-copy atomic on x86-64 and
    AArch64); only the engine process writes, and both only grow while it runs.
    """

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _STATUS_BYTES:
                os.ftruncate(fd, _STATUS_BYTES)
            self._map = mmap.mmap(fd, _STATUS_BYTES)
        finally:
            os.close(fd)
        self._durable = ctypes.c_int64.from_buffer(self._map, 0)
        self._revocations = ctypes.c_int64.from_buffer(self._map, 8)

    @property
    def durable_seq(self) -> int:
        return self._durable.value

    @durable_seq.setter
    def durable_seq(self, seq: int) -> None:
        self._durable.value = seq

    @property
    def revocations(self) -> int:
        return self._revocations.value

    def count_revocation(self) -> int:
        """One more revocation relayed (the count survives the engine process's restarts)."""
        self._revocations.value += 1
        return self._revocations.value

    def close(self) -> None:
        del self._durable, self._revocations  # the buffer exports first, or the map cannot close
        self._map.close()
