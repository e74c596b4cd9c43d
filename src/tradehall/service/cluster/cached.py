"""A result shared by every caller for a while, computed by one call at a time (single-flight).

A gateway's `/ready` is public: unshared, each request would cost one round of NATS calls per shard,
so one unauthenticated client polling it in a loop would slow every shard's NATS for everyone. With
`SharedResult` all requests within `ttl` seconds of the last answer get that answer, and requests
arriving while a round is under way wait for that round instead of starting their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SharedResult(Generic[T]):
    """`await get()`: `compute()`'s last result while it is younger than `ttl` seconds (measured from
    when that round ended, on `monotonic`), else a new round that every concurrent caller shares. A
    round that raises is not kept: its callers get the error, the next call tries again."""

    def __init__(
        self,
        compute: Callable[[], Awaitable[T]],
        ttl: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self.ttl = ttl
        self.monotonic = monotonic
        self._value: tuple[T] | None = None
        self._fresh_until = 0.0
        self._round: asyncio.Future[T] | None = None
        self.rounds = 0
        """Rounds started (tests and metrics read it)."""

    async def get(self) -> T:
        if self._value is not None and self.monotonic() < self._fresh_until:
            return self._value[0]
        if self._round is None:
            self.rounds += 1
            self._round = asyncio.ensure_future(self._run())
            self._round.add_done_callback(_retrieve)  # an error nobody waited for is not logged as lost
        # shielded: a caller that goes away (a closed connection) does not cancel the others' round
        return await asyncio.shield(self._round)

    async def _run(self) -> T:
        try:
            value = await self._compute()
            self._value = (value,)
            self._fresh_until = self.monotonic() + self.ttl
            return value
        finally:
            self._round = None


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
