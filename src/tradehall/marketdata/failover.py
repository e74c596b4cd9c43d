"""Crypto marks with failover: CoinGecko first, CoinMarketCap only when its key is configured.

Every poll tries the providers in priority order, skipping one whose breaker is open. The primary
is therefore retried (a half-open probe) as soon as its breaker allows, and the feed returns to it
the moment it answers; a broken provider is never stuck on, because its breaker opens after a few
failures and the next provider answers in the same poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from tradehall.marketdata import metrics
from tradehall.marketdata.breaker import CircuitBreaker, Clock
from tradehall.marketdata.feed import Feed, NsClock, Sink, sleep_or_stop
from tradehall.marketdata.models import FeedStatus, Quote
from tradehall.marketdata.parsing import ErrorKind, FeedError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CryptoAsset:
    """One priced asset as each provider names it: CoinGecko `bitcoin`/`usd`, CoinMarketCap `BTC`/`USD`."""

    coingecko_id: str
    symbol: str
    vs: str = "usd"
    coinmarketcap_id: int | None = None
    """Picks the coin among CoinMarketCap's same-symbol coins (v2); None: the best-ranked one."""


class PriceProvider(Protocol):
    name: str
    breaker: CircuitBreaker

    async def fetch(self, pairs: Sequence[tuple[str, str]]) -> list[Quote]: ...


class FailoverPriceFeed(Feed):
    def __init__(
        self,
        providers: Sequence[PriceProvider],
        assets: Sequence[CryptoAsset],
        sink: Sink,
        *,
        name: str = "crypto_prices",
        interval: float = 10.0,
        clock: Clock = time.monotonic,
        clock_ns: NsClock = time.time_ns,
    ) -> None:
        if not providers:
            raise ValueError("at least one price provider is needed")
        super().__init__(name, sink, breaker=providers[0].breaker, clock=clock, clock_ns=clock_ns)
        self.sources = frozenset(provider.name for provider in providers)
        self.providers = list(providers)
        self.assets = list(assets)
        self.interval = interval
        self.active: str | None = None
        self._stop = asyncio.Event()
        for provider in self.providers:
            metrics.set_circuit(provider.name, provider.breaker.state)

    def pairs_for(self, provider: PriceProvider) -> list[tuple[str, str]]:
        if provider.name == "coinmarketcap":
            return [(asset.symbol, asset.vs) for asset in self.assets]
        return [(asset.coingecko_id, asset.vs) for asset in self.assets]

    async def poll_once(self) -> list[Quote]:
        """One round: the first provider (in priority order) that is allowed and answers wins."""
        for provider in self.providers:
            if not provider.breaker.allow():
                continue
            try:
                try:
                    quotes = await provider.fetch(self.pairs_for(provider))
                except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                    detail = f"{provider.name}: {type(exc).__name__}: {exc}"
                    raise FeedError(ErrorKind.PARSE, detail) from None
            except FeedError as error:
                provider.breaker.record_failure(
                    error.retry_after, open_now=error.kind is ErrorKind.RATE_LIMITED
                )
                metrics.set_circuit(provider.name, provider.breaker.state)
                self.note_error(error)
                continue
            provider.breaker.record_success()
            metrics.set_circuit(provider.name, provider.breaker.state)
            if self.active != provider.name:
                log.info("price_source", feed=self.name, active=provider.name, previous=self.active)
                self.active = provider.name
            self.set_connected(True, "polling")
            self.note_message()
            for quote in quotes:
                self.emit(quote)
            return quotes
        self.set_connected(False, "polling")
        return []

    async def run(self) -> None:
        self._stop.clear()
        while not self._stop.is_set():
            await self.poll_once()
            await sleep_or_stop(self.interval, self._stop)

    async def stop(self) -> None:
        self._stop.set()
        await super().stop()

    def status(self) -> FeedStatus:
        base = super().status()
        detail = dict(base.detail)
        detail["active"] = self.active or ""
        for provider in self.providers:
            detail[f"circuit.{provider.name}"] = provider.breaker.state.value
        return FeedStatus(
            feed=base.feed,
            connected=base.connected,
            mode=base.mode,
            circuit=base.circuit,
            last_message_age_seconds=base.last_message_age_seconds,
            messages=base.messages,
            errors=base.errors,
            detail=detail,
        )
