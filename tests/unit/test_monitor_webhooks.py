"""Alert webhooks against a fake receiver on 127.0.0.1: retries with backoff, timeouts, a full queue."""

from __future__ import annotations

import asyncio

import orjson

from tests.fakes.http_server import FakeHttpServer, Response
from tradehall.api.monitor import Alert, WebhookSender

ALERT = Alert("a1", "feed_disconnected", "critical", "firing", 301.0, 4_000_000_000.0)


class Sleeps:
    """The sender's backoff waits, recorded instead of slept."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def test_a_receiver_that_fails_then_succeeds_gets_the_alert_after_backoff() -> None:
    receiver = await FakeHttpServer().start()
    receiver.route("/hook", lambda request: Response.json({"ok": True}))
    receiver.inject("/hook", Response.json({"error": "busy"}, 503), Response(drop=True))
    sleeps = Sleeps()
    sender = WebhookSender([receiver.url + "/hook"], retries=3, backoff_seconds=1.0, sleep=sleeps)
    try:
        await sender.on_alert(ALERT)
        await sender.drained()
        assert (sender.delivered, sender.failed, sender.attempts) == (1, 0, 3)
        assert sleeps.delays == [1.0, 2.0]
        hits = receiver.hits("/hook")
        assert [hit.method for hit in hits] == ["POST"] * 3
        assert orjson.loads(hits[-1].body) == {
            "type": "alert",
            "id": "a1",
            "rule": "feed_disconnected",
            "severity": "critical",
            "status": "firing",
            "value": 301.0,
            "started_at": "2096-10-02T07:06:40Z",
            "resolved_at": None,
        }
    finally:
        await sender.close()
        await receiver.stop()


async def test_a_receiver_that_never_answers_times_out_each_try_and_is_given_up() -> None:
    receiver = await FakeHttpServer().start()
    never = asyncio.Event()
    receiver.route("/hang", lambda request: Response(hold=never))
    receiver.route("/ok", lambda request: Response.json({}))
    sleeps = Sleeps()
    sender = WebhookSender(
        [receiver.url + "/hang", receiver.url + "/ok"],
        timeout_seconds=0.2,
        retries=2,
        backoff_seconds=0.5,
        sleep=sleeps,
    )
    try:
        await sender.on_alert(ALERT)
        await asyncio.wait_for(sender.drained(), 10)
        assert (sender.delivered, sender.failed, sender.attempts) == (1, 1, 4)  # /ok once, /hang 3 times
        assert sleeps.delays == [0.5, 1.0]
        assert len(receiver.hits("/hang")) == 3
    finally:
        never.set()
        await sender.close()
        await receiver.stop()


async def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    sender = WebhookSender(["http://127.0.0.1:9/hook"], queue_size=2)
    sender.start = lambda: None  # type: ignore[method-assign]  # nothing drains: the queue fills
    try:
        offered = [sender.offer({"rule": f"r{i}"}) for i in range(5)]
        assert offered == [True, True, False, False, False]
        assert (sender.dropped, sender.queue.qsize()) == (3, 2)
    finally:
        await sender.close()


async def test_no_urls_no_queue() -> None:
    sender = WebhookSender([])
    try:
        assert sender.offer({"rule": "r"}) is False
        assert sender.queue.qsize() == 0
    finally:
        await sender.close()
