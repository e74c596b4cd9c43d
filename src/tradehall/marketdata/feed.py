"""What every feed shares: its sink, counters, metrics, state for /ready, and the HTTP helper."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import Any, TypedDict, TypeVar

import httpx
import structlog

from tradehall.marketdata import metrics
from tradehall.marketdata.breaker import Backoff, CircuitBreaker, Clock
from tradehall.marketdata.models import CircuitState, FeedEvent, FeedStatus
from tradehall.marketdata.parsing import ErrorKind, FeedError, check_http

log = structlog.get_logger(__name__)

Sink = Callable[[FeedEvent], None]
T = TypeVar("T")
NsClock = Callable[[], int]


class ExchangeOptions(TypedDict, total=False):
    """What every exchange feed takes besides its venue's own settings, handed on to `Feed`: the
    reconnect backoff, the stream's and the REST side's circuit breakers, the clocks."""

    backoff: Backoff | None
    breaker: CircuitBreaker | None
    rest_breaker: CircuitBreaker | None
    clock: Clock
    clock_ns: NsClock


class Feed:
    """Base of the feeds. Subclasses implement `run()`; `start()`/`stop()` manage its task."""

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
        rest_breaker: CircuitBreaker | None = None,
        clock: Clock = time.monotonic,
        clock_ns: NsClock = time.time_ns,
    ) -> None:
        self.name = name
        self.sink = sink
        self.clock = clock
        self.clock_ns = clock_ns
        self.breaker = breaker or CircuitBreaker(name, clock=clock, on_change=metrics.set_circuit)
        self.backoff = backoff or Backoff()
        """Reconnect delays: an exchange feed's (the computed feeds never reconnect)."""
        self.rest_breaker = rest_breaker or CircuitBreaker(f"{name}_rest", clock=clock)
        """An exchange's REST side (snapshots, polling while the stream is down)."""
        self.connected = False
        self.mode = "stopped"
        self.messages = 0
        self.errors = 0
        self.errors_by_kind: dict[str, int] = {}
        self.ignored_by_type: dict[str, int] = {}
        self.sources: frozenset[str] = frozenset({name})
        """The `source` names of the events this feed emits (what routes name before the colon)."""
        self.stale_markets: tuple[str, ...] = ()
        """Routed markets of this feed with no quote within their bound (set by the registry)."""
        self._last_message_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._messages_metric = metrics.FEED_MESSAGES.labels(feed=name)
        metrics.set_circuit(name, CircuitState.CLOSED)
        metrics.FEED_UP.labels(feed=name).set(0)

    def note_message(self) -> None:
        """A message that carried data: only these make a feed look alive."""
        self.messages += 1
        self._last_message_at = self.clock()
        self._messages_metric.inc()

    def note_ignored(self, kind: str) -> None:
        """A message that carried no data (an ack, a type this feed does not use): counted by type,
        never as a sign of health."""
        self.ignored_by_type[kind] = self.ignored_by_type.get(kind, 0) + 1
        metrics.FEED_IGNORED.labels(feed=self.name, type=kind).inc()

    def note_error(self, error: FeedError) -> None:
        self.errors += 1
        self.errors_by_kind[error.kind.value] = self.errors_by_kind.get(error.kind.value, 0) + 1
        metrics.FEED_ERRORS.labels(feed=self.name, kind=error.kind.value).inc()
        log.warning("feed_error", feed=self.name, kind=error.kind.value, detail=error.detail)

    def set_connected(self, connected: bool, mode: str) -> None:
        self.connected = connected
        self.mode = mode
        self._publish_up()

    def set_stale_markets(self, markets: tuple[str, ...]) -> None:
        self.stale_markets = markets
        self._publish_up()

    def _publish_up(self) -> None:
        """`tradehall_feed_up` is 1 only while connected with every routed market fresh."""
        up = self.connected and not self.stale_markets
        metrics.FEED_UP.labels(feed=self.name).set(1 if up else 0)

    def emit(self, event: FeedEvent) -> None:
        self.sink(event)

    async def guarded_fetch(
        self, breaker: CircuitBreaker, what: str, fetch: Callable[[], Awaitable[T]]
    ) -> T | None:
        """One REST attempt under `breaker`: a rate limit opens it at once, a parse error or any feed
        error counts as a failure and is noted; None when the attempt failed."""
        try:
            result = await fetch()
        except FeedError as error:
            breaker.record_failure(error.retry_after, open_now=error.kind is ErrorKind.RATE_LIMITED)
            self.note_error(error)
            return None
        except (KeyError, IndexError, TypeError) as exc:
            breaker.record_failure()
            self.note_error(FeedError(ErrorKind.PARSE, f"{what}: {exc}"))
            return None
        breaker.record_success()
        self.note_message()
        return result

    async def consume_stream(
        self,
        ws: AsyncIterable[str | bytes],
        handle: Callable[[bytes], Awaitable[None] | None],
        *,
        stop: asyncio.Event,
        stale_after: float,
        backoff: Backoff,
        leave: asyncio.Event | None = None,
    ) -> None:
        """Read a stream until it ends, goes silent for `stale_after` or `stop` is set.

        The first message (not the handshake: a server may accept and hang up at once) counts as the
        breaker's success; a stream that ends before one is a failed attempt, which also ends a half-open
        probe. One timeout pushed forward per message is cheaper than `wait_for` (a task per message).
        `leave` ends the stream early without an error (the server announced its shutdown).
        """
        loop = asyncio.get_running_loop()
        confirmed = False
        try:
            async with asyncio.timeout(stale_after) as deadline:
                async for raw in ws:
                    if not confirmed:
                        confirmed = True
                        self.breaker.record_success()
                        backoff.reset()
                    pending = handle(raw if isinstance(raw, bytes) else raw.encode())
                    if pending is not None:
                        await pending
                    if stop.is_set() or (leave is not None and leave.is_set()):
                        return
                    deadline.reschedule(loop.time() + stale_after)
        except TimeoutError:
            self.note_error(FeedError(ErrorKind.STALE, f"no message for {stale_after}s"))
        if not confirmed:
            self.breaker.record_failure()
            self.note_error(FeedError(ErrorKind.CONNECTION, "stream ended before its first message"))

    def status(self) -> FeedStatus:
        age = None if self._last_message_at is None else max(0.0, self.clock() - self._last_message_at)
        return FeedStatus(
            feed=self.name,
            connected=self.connected,
            mode=self.mode,
            circuit=self.breaker.state,
            last_message_age_seconds=age,
            messages=self.messages,
            errors=self.errors,
            detail={kind: str(count) for kind, count in sorted(self.errors_by_kind.items())},
            ignored=dict(sorted(self.ignored_by_type.items())),
        )

    async def run(self) -> None:
        raise NotImplementedError

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run_logged(), name=f"feed:{self.name}")
        return self._task

    async def _run_logged(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("feed_crashed", feed=self.name)
            raise

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        self.set_connected(False, "stopped")


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """GET and decode JSON; every failure becomes a `FeedError` of its kind."""
    try:
        response = await client.get(url, params=params, headers=headers)
    except httpx.TimeoutException as exc:
        raise FeedError(ErrorKind.TIMEOUT, f"{url}: {type(exc).__name__}") from None
    except httpx.HTTPError as exc:
        raise FeedError(ErrorKind.CONNECTION, f"{url}: {type(exc).__name__}: {exc}") from None
    return check_http(response.status_code, response.headers, response.content)


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel a helper task and wait until it has really finished (no request outlives its feed)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def poll_until(
    clock: Clock,
    deadline: float,
    poll: Callable[[], Awaitable[object]],
    interval: float,
    stop: asyncio.Event,
) -> None:
    """REST fallback while a stream is down: poll now, then every `interval`, until `deadline`
    (when the stream is tried again). Runs in the feed's own task, so it never overlaps the stream."""
    while not stop.is_set():
        await poll()
        remaining = deadline - clock()
        if remaining <= 0:
            return
        await sleep_or_stop(min(interval, remaining), stop)
        if clock() >= deadline:
            return


async def sleep_or_stop(seconds: float, stop: asyncio.Event | None = None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
