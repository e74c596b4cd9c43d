"""Model signals: a strategy that asks an HTTP model service (an ML/RL model) what to do.

Each closed bar, the features it is configured with (`bars`: the last N bars; `imbalance`: the book
imbalance of the last quote; `position`: the account's position) are POSTed as JSON to `url`; the
answer `{action: buy|sell|hold, confidence: 0..1, reason?}` becomes the signal. The service is a
dependency that fails, so every failure is a `hold` with its reason, never an exception:

- each attempt has a `timeout_seconds`; a timeout, a connection error or a 5xx/429 is retried up to
  `retries` times with exponential backoff and full jitter (`backoff_seconds`, doubled per attempt);
- after `failure_threshold` failed bars in a row the circuit opens for `reset_seconds` (doubling while
  it keeps failing, `marketdata.breaker`): bars meanwhile hold at once without a request;
- an answer that is not the expected JSON (HTML, a list, an unknown action, a confidence outside
  [0, 1]) is garbage: a hold, and a failure for the breaker; a 4xx other than 429 is not retried.

The request happens in `prepare` (async, awaited by a live session before the bar reaches the
strategies), so the event loop never blocks; `on_bar` only reads the answer. Each answer (or failure)
is the signal's `metadata.model`, which the session stores with the signal. A backtest cannot call a
live service and stay deterministic: give it `replay`, a JSON-lines file of recorded answers
`{market, t, action, confidence, reason}` (`t` the bar's end, ns or RFC 3339; `record` writes that file
from a live session); a bar without a recorded answer holds.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

from tradehall.domain.errors import invalid_request
from tradehall.marketdata.breaker import Backoff, CircuitBreaker
from tradehall.marketdata.models import CircuitState
from tradehall.strategies.base import Strategy
from tradehall.strategies.indicators import book_imbalance
from tradehall.strategies.params import Param
from tradehall.strategies.types import Action, Bar, QuoteTick, Signal

log = structlog.get_logger(__name__)

FEATURES = ("bars", "imbalance", "position")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ModelAnswer:
    """What the model said for one bar, or why there is no answer (`error`: then the action is hold)."""

    action: Action
    confidence: float
    reason: str
    error: str | None = None
    attempts: int = 0
    latency_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "confidence": self.confidence,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "latency_ms": self.latency_ms,
        }


def hold(reason: str, error: str, attempts: int = 0) -> ModelAnswer:
    return ModelAnswer(Action.HOLD, 0.0, reason, error, attempts)


class GarbageError(ValueError):
    """The service answered, but not with `{action, confidence, reason?}`."""


def parse_answer(body: bytes) -> tuple[Action, float, str]:
    """The model's answer, checked; anything else is `GarbageError` naming what is wrong."""
    try:
        data = json.loads(body)
    except ValueError:
        raise GarbageError(f"not JSON: {body[:60]!r}") from None
    if not isinstance(data, dict):
        raise GarbageError(f"not an object: {type(data).__name__}")
    action = data.get("action")
    if action not in ("buy", "sell", "hold"):
        raise GarbageError(f"action {action!r} is not buy, sell or hold")
    confidence = data.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
        raise GarbageError(f"confidence {confidence!r} is not a number in [0, 1]")
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        raise GarbageError("reason is not a string")
    return Action(action), float(confidence), reason[:500]


class _RetryableError(Exception):
    """A failure worth another attempt: the service is overloaded or restarting (429, 5xx)."""


def _time_ns(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
    raise ValueError(f"t must be epoch nanoseconds or RFC 3339, not {value!r}")


def load_replay(path: Path) -> dict[tuple[str, int], ModelAnswer]:
    """Recorded answers by (market, bar end), from a JSON-lines file."""
    answers: dict[tuple[str, int], ModelAnswer] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            action, confidence, reason = parse_answer(json.dumps(item).encode())
            answers[(str(item["market"]), _time_ns(item["t"]))] = ModelAnswer(action, confidence, reason)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
    return answers


class RemoteModel(Strategy):
    """Asks an HTTP model service for each bar's signal (timeout, retries, circuit breaker, hold on
    failure), or replays recorded answers in a backtest."""

    name = "remote"
    parameters = {
        "url": Param(str, "", description="The model service's endpoint (POST, JSON)."),
        "features": Param(str, "bars,position", description="Comma-separated: bars, imbalance, position."),
        "bars": Param(int, 20, min=1, max=500, description="How many recent bars the `bars` feature sends."),
        "timeout_seconds": Param(float, 2.0, min=0.001, max=60.0),
        "retries": Param(int, 2, min=0, max=10),
        "backoff_seconds": Param(float, 0.2, min=0.0, max=30.0),
        "failure_threshold": Param(int, 3, min=1, max=100),
        "reset_seconds": Param(float, 30.0, min=0.0, max=3600.0),
        "replay": Param(str, "", description="A JSON-lines file of recorded answers (backtests)."),
        "record": Param(str, "", description="A JSON-lines file each live answer is appended to."),
    }

    def check_params(self) -> None:
        features = [f.strip() for f in str(self.params["features"]).split(",") if f.strip()]
        unknown = sorted(set(features) - set(FEATURES))
        if unknown:
            raise invalid_request(f"features {unknown} unknown; choose from {list(FEATURES)}")
        if not self.params["url"] and not self.params["replay"]:
            raise invalid_request("the remote strategy needs `url` (live) or `replay` (recorded answers)")

    def setup(self) -> None:
        self.features = tuple(f.strip() for f in str(self.params["features"]).split(",") if f.strip())
        self.history: dict[str, deque[Bar]] = {}
        self.quotes: dict[str, QuoteTick] = {}
        self.answers: dict[tuple[str, int], ModelAnswer] = {}
        replay = str(self.params["replay"])
        self.replay = load_replay(Path(replay)) if replay else None
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Sleep = asyncio.sleep
        self.rng = random.Random(0)
        self.breaker = CircuitBreaker(
            f"model:{self.params['url']}",
            failure_threshold=int(self.params["failure_threshold"]),
            reset_timeout=float(self.params["reset_seconds"]),
            max_reset_timeout=max(float(self.params["reset_seconds"]) * 16, 1.0),
            clock=lambda: self.clock(),
        )
        self.transport: httpx.AsyncBaseTransport | None = None
        """Tests may route requests elsewhere; None: the network."""

    # ---- data ------------------------------------------------------------------------------------

    def on_quote(self, quote: QuoteTick) -> Signal | None:
        self.quotes[quote.market] = quote
        return None

    def _remember(self, market: str, bar: Bar) -> None:
        bars = self.history.get(market)
        if bars is None:
            bars = self.history[market] = deque(maxlen=int(self.params["bars"]))
        if not bars or bars[-1].end != bar.end:
            bars.append(bar)

    def features_of(self, market: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"market": market}
        if "bars" in self.features:
            payload["bars"] = [
                [b.ts, b.open, b.high, b.low, b.close, b.volume] for b in self.history.get(market, ())
            ]
        if "imbalance" in self.features:
            quote = self.quotes.get(market)
            imbalance = None
            if quote is not None:
                if quote.bids or quote.asks:
                    imbalance = book_imbalance(quote.bids, quote.asks, 5)
                elif quote.bid_size is not None and quote.ask_size is not None:
                    imbalance = book_imbalance([(0.0, quote.bid_size)], [(0.0, quote.ask_size)], 1)
            payload["book_imbalance"] = imbalance
        if "position" in self.features:
            payload["position"] = self.ctx.portfolio.position(market) if self._ctx is not None else 0.0
        return payload

    # ---- asking the model ------------------------------------------------------------------------

    async def prepare(self, market: str, bar: Bar) -> None:
        """The model's answer for `bar` (awaited by a live session before `on_bar`)."""
        self._remember(market, bar)
        if self.replay is not None:
            return
        payload = self.features_of(market)
        payload["t"] = bar.end
        answer = await self.ask(payload)
        self.answers[(market, bar.end)] = answer
        record = str(self.params["record"])
        if record and answer.error is None:
            line = {"market": market, "t": bar.end, **answer.as_dict()}
            with Path(record).open("a") as out:
                out.write(json.dumps(line) + "\n")

    async def ask(self, payload: dict[str, Any]) -> ModelAnswer:
        breaker = self.breaker
        if not breaker.allow():
            wait = breaker.seconds_until_retry()
            return hold(f"model service circuit open (retry in {wait:.1f} s)", "circuit_open")
        backoff = Backoff(base=float(self.params["backoff_seconds"]), cap=30.0, rng=self.rng)
        retries = int(self.params["retries"])
        timeout = float(self.params["timeout_seconds"])
        attempts = 0
        error = "unavailable"
        detail = ""
        started = self.clock()
        async with httpx.AsyncClient(timeout=timeout, transport=self.transport) as client:
            while True:
                attempts += 1
                try:
                    action, confidence, reason = await self._attempt(client, payload)
                except GarbageError as exc:
                    error, detail = "garbage", f"model answered garbage: {exc}"
                    break  # the service is up but broken: retrying asks it the same question
                except _RetryableError as exc:
                    error, detail = "unavailable", str(exc)
                except httpx.TimeoutException:
                    error, detail = "timeout", f"model did not answer within {timeout} s"
                except httpx.HTTPError as exc:
                    error, detail = "unavailable", f"model service unreachable: {type(exc).__name__}"
                else:
                    breaker.record_success()
                    latency = round((self.clock() - started) * 1000, 3)
                    return ModelAnswer(action, confidence, reason, None, attempts, latency)
                if attempts > retries:
                    break
                await self.sleep(backoff.next_delay())
        breaker.record_failure()
        if breaker.state is CircuitState.OPEN:
            detail += "; circuit opened"
        log.info("model_signal_failed", error=error, detail=detail, attempts=attempts)
        return hold(detail, error, attempts)

    async def _attempt(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> tuple[Action, float, str]:
        response = await client.post(str(self.params["url"]), json=payload)
        if response.status_code == 429 or response.status_code >= 500:
            raise _RetryableError(f"model service answered {response.status_code}")
        if response.status_code >= 400:
            raise GarbageError(f"HTTP {response.status_code}")
        return parse_answer(response.content)

    # ---- the signal ------------------------------------------------------------------------------

    def on_bar(self, market: str, bar: Bar) -> Signal | None:
        self._remember(market, bar)
        if self.replay is not None:
            recorded = self.replay.get((market, bar.end))
            answer = recorded or hold("no recorded answer for this bar", "no_answer")
        else:
            asked = self.answers.pop((market, bar.end), None)
            answer = asked or hold(
                "no model answer for this bar (outside a live session, give `replay`)", "no_answer"
            )
        return self.signal(
            market, answer.action, answer.confidence, bar.close, answer.reason, model=answer.as_dict()
        )
