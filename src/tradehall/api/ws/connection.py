"""One WebSocket connection: who it is, what it subscribed, and its bounded outbound queue.

The queue is bounded twice, in messages and in bytes (characters of JSON text: bytes for the ASCII
that the API sends), because one book snapshot can be a thousand times the size of a trade update. A
connection that goes past either bound is a slow consumer: its pending messages are dropped at once
(memory returns now, not when the peer finally reads) and the writer closes it with 1013.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import WebSocket

from tradehall.api.auth import Principal

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SLOW_CONSUMER = 1013
UNLIMITED_BYTES = 1 << 62

PRIVATE_CHANNELS = ("orders", "fills", "positions", "account", "sessions", "signals")
ADMIN_CHANNELS = ("alerts",)
"""Channels only an admin may subscribe to: `alerts` carries the monitor's alerts firing and resolving."""
PUBLIC_KINDS = ("book", "trades", "ticker", "candles")
BOOK_DEPTH = 1000
"""Levels per side in a book snapshot."""

RequestId = str | int
"""The `id` a client may put on any request; its reply carries it back."""


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        max_queue: int,
        *,
        max_bytes: int = UNLIMITED_BYTES,
        ip: str = "",
        on_fail: Callable[[Connection], None] | None = None,
    ) -> None:
        self.websocket = websocket
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(max_queue)
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.ip = ip
        self.principal: Principal | None = None
        self.expires_at: float | None = None
        """Epoch seconds when the principal's token expires (None: an API key, or no principal)."""
        self.channels: set[str] = set()
        self.book_sequence: dict[str, int] = {}
        self.book_snapshots: set[str] = set()
        self.closing = False
        self.close_code = CLOSE_NORMAL
        self.close_reason = ""
        self.id = uuid.uuid4().hex[:16]
        self.messages = 0
        self._on_fail = on_fail

    def push(self, text: str) -> None:
        if self.closing:
            return
        size = len(text)
        if self.queue.full() or self.queued_bytes + size > self.max_bytes:
            self.fail(CLOSE_SLOW_CONSUMER, "slow consumer")
            return
        self.queue.put_nowait(text)
        self.queued_bytes += size

    def send_json(self, payload: dict[str, Any]) -> None:
        self.push(orjson.dumps(payload).decode())

    def reply(self, payload: dict[str, Any], ref: RequestId | None) -> None:
        """A reply to a request: it echoes the request's `id` when there was one."""
        if ref is not None:
            payload["id"] = ref
        self.send_json(payload)

    def taken(self, text: str) -> None:
        """The writer took `text` off the queue."""
        self.queued_bytes -= len(text)

    def finish(self, code: int, reason: str = "") -> None:
        """Close after what is already queued (an error the client should read first)."""
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        self.close_reason = reason
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self._drop_pending()

    def fail(self, code: int, reason: str = "") -> None:
        """Close now, dropping what is queued: the peer does not read, keeping it helps no one."""
        already = self.closing and self.close_code == code
        self.closing = True
        self.close_code = code
        self.close_reason = reason
        self._drop_pending()
        if not already and self._on_fail is not None:
            self._on_fail(self)

    def _drop_pending(self) -> None:
        while True:
            try:
                self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        self.queued_bytes = 0
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
