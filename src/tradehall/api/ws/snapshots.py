"""Public snapshots, built once per version of the data and shared by every subscriber.

A book snapshot of a deep book costs milliseconds on the loop that also runs the engine; a thousand
subscribers (or one client repeating a channel) at the same book sequence must cost one build, not a
thousand. The cache keeps, per (channel, depth), the serialized message of the newest version seen
(the book's sequence, or the journal's durable seq for tickers and candles): an older version is
never asked for again, so one entry per public channel is all the memory it takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import Counter

SNAPSHOTS = Counter(
    "tradehall_ws_snapshots_total",
    "WebSocket snapshots handed to subscribers, built (serialized anew) or shared (from the cache).",
    ["result"],
)
_BUILT = SNAPSHOTS.labels(result="built")
_SHARED = SNAPSHOTS.labels(result="shared")


def data_message(channel: str, kind: str, sequence: int, data: Any, *, event: str | None = None) -> str:
    """`event` names the engine event behind an `orders` update: `data` stays the REST object."""
    message: dict[str, Any] = {"channel": channel, "type": kind, "sequence": sequence}
    if event is not None:
        message["event"] = event
    message["data"] = data
    return orjson.dumps(message).decode()


class SnapshotCache:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, int], tuple[int, str]] = {}
        self.builds = 0
        """Snapshots serialized (tests assert on it: work per message is bounded)."""
        self.shared = 0

    def get(self, channel: str, depth: int, version: int, build: Callable[[], Any]) -> str:
        """The snapshot message of `channel` at `version`; `build()` gives its data when not cached."""
        key = (channel, depth)
        cached = self._entries.get(key)
        if cached is not None and cached[0] == version:
            self.shared += 1
            _SHARED.inc()
            return cached[1]
        text = data_message(channel, "snapshot", version, build())
        self._entries[key] = (version, text)
        self.builds += 1
        _BUILT.inc()
        return text
