"""The quote cache: latest quote per tradehall market and its age.

In process for the engine side (synchronous, on the hot path); Redis with a TTL when configured, so
other processes (API gateways) can answer "latest quote and its age" and refuse quote-venue orders
when it is stale. A Redis entry vanishes after its TTL: a missing quote is a stale quote.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from tradehall.marketdata.breaker import Clock
from tradehall.marketdata.models import Quote
from tradehall.marketdata.parsing import NS_PER_S
from tradehall.marketdata.recorder import event_from_dict, event_to_dict

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CachedQuote:
    market: str
    quote: Quote
    age_seconds: float
    stale: bool


class InProcessQuoteCache:
    def __init__(self, *, max_age_seconds: float = 10.0, clock: Clock = time.monotonic) -> None:
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._entries: dict[str, tuple[Quote, float]] = {}

    def put(self, market: str, quote: Quote) -> None:
        self._entries[market] = (quote, self._clock())

    def get(self, market: str) -> CachedQuote | None:
        entry = self._entries.get(market)
        if entry is None:
            return None
        quote, stored_at = entry
        age = max(0.0, self._clock() - stored_at)
        return CachedQuote(market, quote, age, age > self.max_age_seconds)

    def is_stale(self, market: str) -> bool:
        cached = self.get(market)
        return cached is None or cached.stale

    def markets(self) -> list[str]:
        return sorted(self._entries)


class RedisQuoteCache:
    """Latest quotes in Redis (`<prefix><market>` → JSON with the wall-clock store time), TTL'd.

    `put_nowait` keeps only the latest quote per market and a background `run()` task writes them in
    one pipeline per round, so a burst of quotes costs one round trip, not one per quote.
    """

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "tradehall:quote:",
        ttl_seconds: float = 30.0,
        max_age_seconds: float = 10.0,
        wall_clock_ns: Any = time.time_ns,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_ms = int(ttl_seconds * 1000)
        self.max_age_seconds = max_age_seconds
        self._now_ns = wall_clock_ns
        self._pending: dict[str, tuple[Quote, int]] = {}
        self._wake = asyncio.Event()

    def _encode(self, quote: Quote, stored_ns: int) -> bytes:
        return orjson.dumps({"stored_ns": stored_ns, "quote": event_to_dict(quote)})

    async def put(self, market: str, quote: Quote) -> None:
        await self.redis.set(self.prefix + market, self._encode(quote, self._now_ns()), px=self.ttl_ms)

    def put_nowait(self, market: str, quote: Quote) -> None:
        self._pending[market] = (quote, self._now_ns())
        self._wake.set()

    async def flush(self) -> int:
        pending, self._pending = self._pending, {}
        if not pending:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for market, (quote, stored_ns) in pending.items():
                pipe.set(self.prefix + market, self._encode(quote, stored_ns), px=self.ttl_ms)
            await pipe.execute()
        return len(pending)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # a Redis outage must not stop the feeds
                log.warning("quote_cache_redis_error", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)

    async def get(self, market: str) -> CachedQuote | None:
        raw = await self.redis.get(self.prefix + market)
        if raw is None:
            return None
        body = orjson.loads(raw)
        quote = event_from_dict(body["quote"])
        if not isinstance(quote, Quote):
            return None
        age = max(0.0, (self._now_ns() - int(body["stored_ns"])) / NS_PER_S)
        return CachedQuote(market, quote, age, age > self.max_age_seconds)
