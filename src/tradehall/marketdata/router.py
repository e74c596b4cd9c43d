"""Routes normalised feed events to engine commands.

Configuration maps each tradehall market to feed instruments in priority order (`BTC-PERP` ←
binance `btcusdt`, then coingecko `bitcoin/usd`). A lower-priority source is used only while every
higher one has been silent for `fallback_after` seconds, so two sources never alternate. Commands
are throttled per market to `min_interval` seconds; inside a throttle window the latest quote wins
and is sent when the window ends (`flush`), so the engine always ends on the freshest price.
Settlement and void become `SettleMarket`/`VoidMarket`, sent at once (`auto`) or held until an
admin confirms (`confirm`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import structlog
from prometheus_client import Histogram

from tradehall.domain import commands
from tradehall.domain.enums import Outcome
from tradehall.marketdata import metrics
from tradehall.marketdata.breaker import Clock
from tradehall.marketdata.cache import InProcessQuoteCache, RedisQuoteCache
from tradehall.marketdata.candles import CandleAggregator
from tradehall.marketdata.feed import NsClock, sleep_or_stop
from tradehall.marketdata.models import FeedEvent, MarketState, MarketStatusUpdate, Quote, TradeTick
from tradehall.marketdata.parsing import NS_PER_S

log = structlog.get_logger(__name__)

Submit = Callable[[commands.AnyCommand], object]


class CommandKind(StrEnum):
    QUOTE = "quote"
    MARK = "mark"
    BOTH = "both"


class SettlementMode(StrEnum):
    AUTO = "auto"
    CONFIRM = "confirm"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class InstrumentRef:
    source: str
    instrument: str


@dataclass(frozen=True, slots=True)
class MarketRoute:
    market: str
    sources: tuple[InstrumentRef, ...]
    """Highest priority first."""
    commands: CommandKind = CommandKind.QUOTE
    min_interval: float = 0.0
    fallback_after: float = 5.0
    settlement: SettlementMode = SettlementMode.CONFIRM
    stale_after: float | None = None
    """Seconds without a quote after which the market is stale (None: the router's default)."""


@dataclass(frozen=True, slots=True)
class MarketHealth:
    market: str
    sources: frozenset[str]
    """The feeds' source names that price this market."""
    age_seconds: float | None
    """Since the last quote from any of its sources; None before the first."""
    stale_after: float
    stale: bool
    closed: bool = False
    """Its provider says trading is closed (or its resolution awaits an admin): no quotes are due."""

    def as_dict(self) -> dict[str, object]:
        return {
            "age_seconds": self.age_seconds,
            "stale_after": self.stale_after,
            "stale": self.stale,
            "closed": self.closed,
        }


@dataclass(slots=True)
class _MarketState:
    route: MarketRoute
    active_rank: int | None = None
    last_quote_at: float | None = None
    last_seen: dict[int, float] = field(default_factory=dict)
    last_sent_at: float | None = None
    pending: Quote | None = None
    pending_source: str = ""
    sent: int = 0
    dropped: int = 0
    finished: bool = False
    closed: bool = False
    """Closed by its provider (or its resolution held for an admin): silence is expected."""
    silent_since: float | None = None
    """Where silence counts from when no quote came since the market (re)opened."""


class Router:
    def __init__(
        self,
        routes: Sequence[MarketRoute],
        submit: Submit,
        *,
        cache: InProcessQuoteCache | None = None,
        redis_cache: RedisQuoteCache | None = None,
        candles: CandleAggregator | None = None,
        clock: Clock = time.monotonic,
        clock_ns: NsClock = time.time_ns,
        stale_after: float = 60.0,
    ) -> None:
        self.submit = submit
        self.stale_after = stale_after
        self.started_at = clock()
        self.cache = cache if cache is not None else InProcessQuoteCache(clock=clock)
        self.redis_cache = redis_cache
        self.candles = candles
        self.clock = clock
        self.clock_ns = clock_ns
        self._markets = {route.market: _MarketState(route) for route in routes}
        self._by_ref: dict[InstrumentRef, list[tuple[str, int]]] = {}
        for route in routes:
            for rank, ref in enumerate(route.sources):
                self._by_ref.setdefault(ref, []).append((route.market, rank))
        self.held: dict[str, commands.SettleMarket | commands.VoidMarket] = {}
        """Settlements waiting for an admin's confirmation, by market."""
        self._stop = asyncio.Event()
        self._latency: dict[str, Histogram] = {}

    def __call__(self, event: FeedEvent) -> None:
        self.on_event(event)

    def on_event(self, event: FeedEvent) -> None:
        """The feeds' sink."""
        targets = self._by_ref.get(InstrumentRef(event.source, event.instrument))
        if not targets:
            return
        if isinstance(event, Quote):
            for market, rank in targets:
                self._on_quote(self._markets[market], rank, event)
        elif isinstance(event, MarketStatusUpdate):
            for market, _ in targets:
                self._on_status(self._markets[market], event)
        elif isinstance(event, TradeTick) and self.candles is not None:
            for market, rank in targets:
                if self._markets[market].active_rank == rank:
                    self.candles.on_trade(
                        market, event.price, event.size, event.exchange_ts or event.receive_ts
                    )

    def _on_quote(self, state: _MarketState, rank: int, quote: Quote) -> None:
        now = self.clock()
        state.last_seen[rank] = now
        state.last_quote_at = now
        if state.finished:
            return
        if state.active_rank is not None and rank > state.active_rank:
            for better in range(rank):
                seen = state.last_seen.get(better)
                if seen is not None and now - seen < state.route.fallback_after:
                    state.dropped += 1
                    return
        if state.active_rank != rank:
            log.info("quote_source", market=state.route.market, source=quote.source, rank=rank)
            state.active_rank = rank
        self.cache.put(state.route.market, quote)
        if self.redis_cache is not None:
            self.redis_cache.put_nowait(state.route.market, quote)
        interval = state.route.min_interval
        if interval <= 0 or state.last_sent_at is None or now - state.last_sent_at >= interval:
            state.pending = None
            self._send(state, quote, now)
        else:
            state.pending = quote

    def flush(self) -> int:
        """Send the held latest quote of every market whose throttle window has ended."""
        now = self.clock()
        sent = 0
        for state in self._markets.values():
            quote = state.pending
            if quote is None or state.finished:
                continue
            if state.last_sent_at is None or now - state.last_sent_at >= state.route.min_interval:
                state.pending = None
                self._send(state, quote, now)
                sent += 1
        return sent

    def _send(self, state: _MarketState, quote: Quote, now: float) -> None:
        state.last_sent_at = now
        state.sent += 1
        ts = self.clock_ns()
        market = state.route.market
        kind = state.route.commands
        if kind is not CommandKind.MARK:
            self.submit(
                commands.Quote(
                    ts=ts,
                    market=market,
                    bid=quote.bid,
                    ask=quote.ask,
                    bid_size=quote.bid_size,
                    ask_size=quote.ask_size,
                    last=quote.last,
                    source=quote.source,
                    exchange_ts=quote.exchange_ts,
                )
            )
        mid = quote.mid
        if kind is not CommandKind.QUOTE and mid is not None:
            self.submit(commands.MarkPrice(ts=ts, market=market, price=mid))
        if self.candles is not None and mid is not None:
            self.candles.on_price(market, mid, quote.exchange_ts or quote.receive_ts)
        if quote.exchange_ts is not None:
            histogram = self._latency.get(quote.source)
            if histogram is None:
                histogram = self._latency[quote.source] = metrics.FEED_LATENCY.labels(feed=quote.source)
            histogram.observe(max(0, ts - quote.exchange_ts) / NS_PER_S)

    def _on_status(self, state: _MarketState, update: MarketStatusUpdate) -> None:
        if state.finished:
            return
        if update.state is MarketState.OPEN or update.state is MarketState.CLOSED:
            self._set_closed(state, update.state is MarketState.CLOSED)
            return
        if state.route.settlement is SettlementMode.IGNORE:
            return
        market = state.route.market
        command: commands.SettleMarket | commands.VoidMarket
        if update.state is MarketState.SETTLED_YES:
            command = commands.SettleMarket(ts=self.clock_ns(), market=market, outcome=Outcome.YES)
        elif update.state is MarketState.SETTLED_NO:
            command = commands.SettleMarket(ts=self.clock_ns(), market=market, outcome=Outcome.NO)
        else:
            command = commands.VoidMarket(ts=self.clock_ns(), market=market)
        log.info(
            "market_resolution",
            market=market,
            state=update.state.value,
            source=update.source,
            mode=state.route.settlement.value,
        )
        if state.route.settlement is SettlementMode.AUTO:
            state.finished = True
            self.submit(command)
        elif market not in self.held:
            self.held[market] = command
            self._set_closed(state, True)  # resolved by its provider: no more quotes are due

    def _set_closed(self, state: _MarketState, closed: bool) -> None:
        """A closed market is not stale; when it reopens, its silence counts from the reopening."""
        if state.closed and not closed:
            state.silent_since = self.clock()
            state.last_quote_at = None
        state.closed = closed

    def confirm(self, market: str) -> commands.SettleMarket | commands.VoidMarket | None:
        """An admin confirms a held settlement: it is submitted (stamped now) and quotes stop."""
        held = self.held.pop(market, None)
        if held is None:
            return None
        if isinstance(held, commands.SettleMarket):
            command: commands.SettleMarket | commands.VoidMarket = commands.SettleMarket(
                ts=self.clock_ns(), market=market, outcome=held.outcome
            )
        else:
            command = commands.VoidMarket(ts=self.clock_ns(), market=market)
        state = self._markets.get(market)
        if state is not None:
            state.finished = True
        self.submit(command)
        return command

    def reject(self, market: str) -> bool:
        """An admin rejects a held settlement; a later status update may hold a new one."""
        return self.held.pop(market, None) is not None

    def market_health(self) -> list[MarketHealth]:
        """Each unfinished market's quote age against its bound. A market never quoted counts from
        the router's start (or its reopening), so feeds get one bound to deliver before /ready calls
        it stale; a market its provider closed is never stale."""
        now = self.clock()
        report = []
        for market, state in sorted(self._markets.items()):
            if state.finished:
                continue
            bound = state.route.stale_after if state.route.stale_after is not None else self.stale_after
            age = None if state.last_quote_at is None else max(0.0, now - state.last_quote_at)
            since = self.started_at if state.silent_since is None else state.silent_since
            silent_for = now - since if age is None else age
            stale = not state.closed and silent_for > bound
            metrics.MARKET_STALE.labels(market=market).set(1 if stale else 0)
            sources = frozenset(ref.source for ref in state.route.sources)
            report.append(MarketHealth(market, sources, age, bound, stale, state.closed))
        return report

    def stats(self) -> dict[str, dict[str, object]]:
        return {
            market: {
                "active_source": None
                if state.active_rank is None
                else f"{state.route.sources[state.active_rank].source}:"
                f"{state.route.sources[state.active_rank].instrument}",
                "sent": state.sent,
                "dropped": state.dropped,
                "pending": state.pending is not None,
                "finished": state.finished,
            }
            for market, state in self._markets.items()
        }

    async def run(self, tick: float = 0.05) -> None:
        """Flush throttled quotes every `tick` seconds until `stop()`."""
        self._stop.clear()
        while not self._stop.is_set():
            self.flush()
            await sleep_or_stop(tick, self._stop)

    def stop(self) -> None:
        self._stop.set()
