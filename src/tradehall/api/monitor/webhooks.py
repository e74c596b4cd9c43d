"""Alert webhooks: each alert change is POSTed as JSON to every configured URL, off the request path.

`offer()` never waits: alerts go into a bounded queue (full: the alert is dropped for the webhooks and
counted) that one task drains. Each delivery has a timeout and is retried with exponential backoff;
a receiver that is down or hangs costs only that task's time, never the engine's or the API's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import structlog
from prometheus_client import Counter

from tradehall.api.monitor.monitor import Alert

log = structlog.get_logger(__name__)

WEBHOOK_DELIVERIES = Counter(
    "tradehall_alert_webhook_deliveries",
    "Alert webhook deliveries by result (delivered, failed after every retry).",
    ["result"],
)
WEBHOOK_DROPPED = Counter(
    "tradehall_alert_webhook_dropped", "Alert changes not sent to the webhooks because their queue was full."
)


class WebhookSender:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout_seconds: float = 5.0,
        retries: int = 3,
        backoff_seconds: float = 1.0,
        queue_size: int = 1000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.urls = tuple(urls)
        self.timeout = timeout_seconds
        self.retries = retries
        self.backoff = backoff_seconds
        self.sleep = sleep
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self.client = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        self.attempts = 0
        self._task: asyncio.Task[None] | None = None

    async def on_alert(self, alert: Alert) -> None:
        """The monitor's listener: queue the alert, never wait."""
        self.offer({"type": "alert", **alert.to_json()})

    def offer(self, payload: dict[str, Any]) -> bool:
        if not self.urls:
            return False
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.dropped += 1
            WEBHOOK_DROPPED.inc()
            log.warning("alert_webhook_dropped", rule=payload.get("rule"))
            return False
        self.start()
        return True

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="alert-webhooks")

    async def _drain(self) -> None:
        while True:
            payload = await self.queue.get()
            try:
                await asyncio.gather(*(self.deliver(url, payload) for url in self.urls))
            finally:
                self.queue.task_done()

    async def deliver(self, url: str, payload: dict[str, Any]) -> bool:
        """POST `payload` to `url`: a 2xx answer within the timeout, else retried; False after the last."""
        for attempt in range(self.retries + 1):
            if attempt:
                await self.sleep(self.backoff * 2 ** (attempt - 1))
            self.attempts += 1
            try:
                response = await asyncio.wait_for(self.client.post(url, json=payload), self.timeout)
                if 200 <= response.status_code < 300:
                    self.delivered += 1
                    WEBHOOK_DELIVERIES.labels(result="delivered").inc()
                    return True
                problem = f"HTTP {response.status_code}"
            except (httpx.HTTPError, TimeoutError, OSError) as error:
                problem = repr(error)
            log.info("alert_webhook_attempt_failed", url=url, attempt=attempt + 1, problem=problem)
        self.failed += 1
        WEBHOOK_DELIVERIES.labels(result="failed").inc()
        log.warning("alert_webhook_failed", url=url, rule=payload.get("rule"))
        return False

    async def drained(self) -> None:
        """Wait until every queued alert has been delivered or given up (tests, shutdown)."""
        await self.queue.join()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.client.aclose()
