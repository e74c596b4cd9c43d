"""Replays recorder files as a feed: every event in `receive_ts` order, merged across files,
as fast as possible (`speed=0`) or paced at `speed` times real time."""

from __future__ import annotations

import asyncio
import gzip
import heapq
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import orjson

from tradehall.marketdata.breaker import Clock
from tradehall.marketdata.feed import Feed, NsClock, Sink
from tradehall.marketdata.models import FeedEvent
from tradehall.marketdata.parsing import NS_PER_S, ErrorKind, FeedError
from tradehall.marketdata.recorder import event_from_dict

SOURCE = "replay"


def recorded_files(
    root: Path | str, *, days: Sequence[str] | None = None, sources: Sequence[str] | None = None
) -> list[Path]:
    """Recorder files under `root`, optionally limited to some days (`YYYY-MM-DD`) and sources."""
    found = []
    for path in sorted(Path(root).glob("*/*/*.jsonl.gz")):
        day, source = path.parent.parent.name, path.parent.name
        if days is not None and day not in days:
            continue
        if sources is not None and source not in sources:
            continue
        found.append(path)
    return found


def read_file(path: Path) -> Iterator[FeedEvent]:
    """Events of one recorder file. A file still being written (or cut by a crash) ends after its
    last flushed record rather than failing: the gzip stream then lacks only its end marker."""
    with gzip.open(path, "rb") as handle:
        try:
            for line in handle:
                if line.strip():
                    yield event_from_dict(orjson.loads(line))
        except EOFError:
            return


def merged(files: Iterable[Path]) -> Iterator[FeedEvent]:
    """All events of `files`, ordered by receive time (stable within a file)."""
    return heapq.merge(*(read_file(path) for path in files), key=lambda event: event.receive_ts)


class ReplayFeed(Feed):
    def __init__(
        self,
        files: Sequence[Path],
        sink: Sink,
        *,
        speed: float = 0.0,
        clock: Clock = time.monotonic,
        clock_ns: NsClock = time.time_ns,
        name: str = SOURCE,
    ) -> None:
        super().__init__(name, sink, clock=clock, clock_ns=clock_ns)
        self.files = list(files)
        self.speed = speed
        self.done = asyncio.Event()

    def replay_all(self) -> int:
        """Emit every event synchronously (backtests); returns the count."""
        count = 0
        for event in merged(self.files):
            self.note_message()
            self.emit(event)
            count += 1
        return count

    async def run(self) -> None:
        self.set_connected(True, "stream")
        first_ts: int | None = None
        started = self.clock()
        try:
            for event in merged(self.files):
                if self.speed > 0:
                    if first_ts is None:
                        first_ts = event.receive_ts
                    due = started + (event.receive_ts - first_ts) / NS_PER_S / self.speed
                    delay = due - self.clock()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif self.messages % 1000 == 0:
                    await asyncio.sleep(0)
                self.note_message()
                self.emit(event)
        except (OSError, EOFError, orjson.JSONDecodeError, KeyError, ValueError) as exc:
            self.note_error(FeedError(ErrorKind.PARSE, f"replay: {type(exc).__name__}: {exc}"))
        finally:
            self.set_connected(False, "stopped")
            self.done.set()
