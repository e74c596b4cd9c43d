"""Commands from gateway processes to the engine process over ZeroMQ, framed with msgspec.

The engine process binds one ROUTER socket (`EngineEndpoint`); each gateway connects one DEALER
(`EngineClient`). A request carries a client-chosen id and one command; the reply carries the same id
and the engine's durable result (seq, ts, events) or an error. The endpoint drains every request
waiting on its socket in one loop turn and hands them to the runner with one `submit_many`, so the
engine sees a batch per turn, not a wake-up per command; it replies only once the batch's journal
records are durable, so a gateway never answers a mutating call before the engine has made it durable.

Why ZeroMQ (pyzmq) and not NATS request/reply: no broker to run between two processes on one machine
(an `ipc://` socket in the data directory), and no extra hop; see BENCHMARKS.md for the figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

import msgspec
import structlog
import zmq

from tradehall.domain.commands import AnyCommand
from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.events import AnyEvent
from tradehall.service.runner import CommandResult, RunnerError
from tradehall.service.status_page import EngineStatus

log = structlog.get_logger(__name__)

SubmitMany = Callable[[Sequence[AnyCommand]], Awaitable[list[CommandResult]]]
Revoked = Callable[[str, str | None], None]


class CommandRequest(msgspec.Struct, frozen=True, array_like=True, gc=False):
    id: int
    command: AnyCommand | None
    """None with `revoked`: a revocation to relay; None alone: asks for the engine's durable seq."""
    revoked: tuple[str, str | None] | None = None
    """With no command: an API credential revoked in one gateway (user id, key id or None for all of
    the user's), for every gateway to forget (`EngineClient.revoke`)."""


class CommandReply(msgspec.Struct, frozen=True, array_like=True, gc=False):
    id: int
    seq: int = 0
    ts: int = 0
    events: tuple[AnyEvent, ...] = ()
    error: str = ""
    """Non-empty when the engine took no durable decision (it is stopping or stopped)."""
    revocations: int = 0
    """How many revocations the engine process has relayed (`EngineStatus.revocations`)."""


_encoder = msgspec.msgpack.Encoder()
_requests_decoder = msgspec.msgpack.Decoder(list[CommandRequest])
_replies_decoder = msgspec.msgpack.Decoder(list[CommandReply])
"""A frame carries a list: every request a gateway made in one loop turn, every reply the engine has
for one gateway from one batch. One ZeroMQ message (and one wake-up of each side) per turn, not per
command."""

def engine_address(data_dir: object) -> str:
    """The engine's endpoint for the processes of one data directory (a Unix socket in it)."""
    return f"ipc://{data_dir}/engine.sock"


class LoopReader:
    """Reads a ZeroMQ socket from the asyncio loop without `zmq.asyncio` (whose every `recv` or
    `poll` builds futures and a poller: measured, more than the route itself).

    The socket's file descriptor is edge-triggered: it signals that the socket's events may have
    changed, not that a message waits. So each wake-up drains the socket until `zmq.Again`, and
    `after_send` checks again after every send on the socket (a send may consume the signal of a
    message that arrived meanwhile)."""

    def __init__(self, socket: zmq.Socket[bytes], on_frames: Callable[[list[bytes]], None]) -> None:
        self.socket = socket
        self._on_frames = on_frames
        self._fd = cast(int, socket.getsockopt(zmq.FD))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = False
        self.limit = 0
        """At most this many messages per wake-up (0: all); the rest are taken on the next turn."""

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self.drain)
        self._loop.call_soon(self.drain)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None

    def after_send(self) -> None:
        if self._loop is None or self._pending:
            return
        if cast(int, self.socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            self._pending = True
            self._loop.call_soon(self.drain)

    def drain(self) -> None:
        self._pending = False
        socket = self.socket
        limit = self.limit
        taken = 0
        while not limit or taken < limit:
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:  # closed under us: nothing more to read
                log.info("zmq_reader_stopped", error=str(exc))
                return
            taken += 1
            self._on_frames(frames)
        if self._loop is not None and not self._pending:  # the limit: the rest on the next turn
            self._pending = True
            self._loop.call_soon(self.drain)


class EngineEndpoint:
    """The engine process's side: requests in, durable results out, one batch per loop turn."""

    def __init__(
        self,
        address: str,
        submit_many: SubmitMany,
        durable_seq: Callable[[], int],
        *,
        on_revoked: Revoked | None = None,
        status: EngineStatus | None = None,
        max_batch: int = 1024,
    ) -> None:
        """`on_revoked` relays a revocation to every gateway (the record publisher's notice);
        `status` is written before any answer (the runner's listener keeps its durable seq)."""
        self.address = address
        self._on_revoked = on_revoked
        self._status = status
        self.revocations = status.revocations if status is not None else 0
        self._submit_many = submit_many
        self._durable_seq = durable_seq
        self._max_batch = max_batch
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        # a reply to a gateway whose queue is full raises (zmq.Again) instead of vanishing silently
        self._socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._reader = LoopReader(self._socket, self._take)
        self._reader.limit = max_batch
        self._turn: list[tuple[bytes, bytes]] = []
        self._batches: set[asyncio.Task[None]] = set()
        self.batches_taken = 0
        """How many batches went to the runner (a test reads it to see requests grouped)."""

    async def start(self) -> None:
        self._socket.bind(self.address)
        self._reader.start()

    async def stop(self) -> None:
        self._reader.stop()
        for batch in list(self._batches):
            with contextlib.suppress(Exception):
                await batch
        self._socket.close(0)
        self._context.term()

    def _take(self, frames: list[bytes]) -> None:
        """One request frame; the frames of one loop turn become one batch (`_start_batch`)."""
        if not self._turn:
            asyncio.get_running_loop().call_soon(self._start_batch)
        self._turn.append((frames[0], frames[-1]))

    def _start_batch(self) -> None:
        frames, self._turn = self._turn, []
        task = asyncio.get_running_loop().create_task(self._run_batch(frames))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _run_batch(self, frames: list[tuple[bytes, bytes]]) -> None:
        senders: list[bytes] = []
        decoded: list[CommandRequest] = []
        at_once: dict[bytes, list[CommandReply]] = {}
        for sender, payload in frames:
            try:
                requests = _requests_decoder.decode(payload)
            except msgspec.DecodeError as exc:
                log.warning("engine_endpoint_bad_request", error=str(exc))
                continue
            for request in requests:
                if request.command is None:  # a seq query or a revocation: answered at once
                    if request.revoked is not None:
                        self._count_revocation(request.revoked)
                    reply = CommandReply(id=request.id, seq=self._durable_seq(), revocations=self.revocations)
                    at_once.setdefault(sender, []).append(reply)
                    continue
                decoded.append(request)
                senders.append(sender)
        for sender, answered in at_once.items():
            await self._send(sender, answered)
        if not decoded:
            return
        self.batches_taken += 1
        replies: list[CommandReply]
        try:
            results = await self._submit_many([request.command for request in decoded if request.command])
        except Exception as exc:  # the runner stopping, or a bug: an error reply, never silence
            if not isinstance(exc, RunnerError | ValueError):
                log.error("engine_endpoint_batch_failed", error=repr(exc))
            error = str(exc) or type(exc).__name__
            replies = [CommandReply(id=request.id, error=error) for request in decoded]
        else:
            replies = [
                CommandReply(id=request.id, seq=result.seq, ts=result.ts, events=result.events)
                for request, result in zip(decoded, results, strict=True)
            ]
        if self._status is not None:  # the runner's listener has; this covers a runner without one
            self._status.durable_seq = max(self._status.durable_seq, self._durable_seq())
        by_sender: dict[bytes, list[CommandReply]] = {}
        for sender, reply in zip(senders, replies, strict=True):
            by_sender.setdefault(sender, []).append(reply)
        for sender, grouped in by_sender.items():
            await self._send(sender, grouped)

    def _count_revocation(self, revoked: tuple[str, str | None]) -> None:
        """Counted in the status page first: from then on every gateway's next request forgets its
        cached keys, whether or not the notice has reached it."""
        status = self._status
        self.revocations = status.count_revocation() if status is not None else self.revocations + 1
        if self._on_revoked is not None:
            self._on_revoked(*revoked)

    async def _send(self, sender: bytes, replies: list[CommandReply]) -> None:
        frame = [sender, _encoder.encode(replies)]
        for _ in range(SEND_RETRIES):
            try:
                self._socket.send_multipart(frame, flags=zmq.NOBLOCK)
            except zmq.Again:  # that gateway's queue is full: wait for room (it times out meanwhile)
                await asyncio.sleep(SEND_RETRY_SECONDS)
                continue
            except zmq.ZMQError as exc:  # the gateway is gone (EHOSTUNREACH): nobody to answer
                log.info("engine_endpoint_reply_dropped", error=str(exc))
            break
        self._reader.after_send()


SEND_RETRIES = 1000
SEND_RETRY_SECONDS = 0.001
"""A reply to a gateway whose queue is full is tried again this often, at most this many times."""
BLOCKED_RETRY_SECONDS = 0.005
"""How often a gateway tries again to send a frame no engine process could take."""
SWEEP_SECONDS = 0.1
"""How often a gateway fails its requests past their deadline (a timeout is late by at most this)."""


class EngineUnavailableError(RunnerError):
    """The engine process did not answer in time (down, restarting, or overloaded)."""


class EngineClient:
    """A gateway's side: `submit` sends one command and returns the engine's durable result.

    Requests are pipelined on one DEALER socket; replies are matched by id. The requests made in one
    loop turn leave in one frame, sent without waiting (the synchronous socket, `NOBLOCK`; only a full
    queue falls back to waiting), and the replies are read a whole queue at a time: measured, awaiting
    `zmq.asyncio`'s send per command cost more than the route. A request that gets no reply within
    `timeout` raises `EngineUnavailableError`: the command may or may not have been applied, so a client
    retries with the same client order id (deduplicated by the engine)."""

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._reader = LoopReader(self._socket, self._on_frames)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[CommandReply]] = {}
        self._outbox: list[CommandRequest] = []
        self._deadlines: list[tuple[float, int]] = []
        self._unsent: dict[int, float] = {}
        """Requests in a frame still waiting to be sent (no engine connected), with their timeouts:
        their deadline runs from the moment they leave, as when a send waited."""
        self._sweeper: asyncio.TimerHandle | None = None
        self._blocked: set[asyncio.Task[None]] = set()
        self.frames_sent = 0
        """How many frames left (a test reads it to see one loop turn's requests share one)."""

    async def start(self) -> None:
        self._socket.connect(self.address)
        self._reader.start()

    async def stop(self) -> None:
        self._reader.stop()
        for task in list(self._blocked):
            task.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(EngineUnavailableError("the engine client stopped"))
        self._waiting.clear()
        self._socket.close(0)
        self._context.term()

    async def submit(self, command: AnyCommand) -> CommandResult:
        reply = await self._request(command)
        return CommandResult(seq=reply.seq, ts=reply.ts, events=reply.events)

    async def barrier(self, timeout: float | None = None) -> tuple[int, int]:
        """The engine's last durable seq now and how many revocations it has relayed, asked over the
        socket (a gateway reads both from the `EngineStatus` page instead, without a round trip)."""
        reply = await self._request(None, timeout)
        return reply.seq, reply.revocations

    async def revoke(self, user_id: str, key_id: str | None) -> None:
        """Every gateway is to forget this credential; returns once the engine process counted it in
        its status page and relayed it."""
        await self._request(None, revoked=(user_id, key_id))

    async def _request(
        self,
        command: AnyCommand | None,
        timeout: float | None = None,
        revoked: tuple[str, str | None] | None = None,
    ) -> CommandReply:
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommandReply] = loop.create_future()
        self._waiting[request_id] = future
        self._deadlines.append((loop.time() + (self.timeout if timeout is None else timeout), request_id))
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP_SECONDS, self._sweep)
        if not self._outbox:
            loop.call_soon(self._flush)
        self._outbox.append(CommandRequest(id=request_id, command=command, revoked=revoked))
        try:
            reply = await future
        finally:
            self._waiting.pop(request_id, None)
        if reply.error:
            raise RunnerError(reply.error)
        return reply

    def _sweep(self) -> None:
        """Fails the requests past their deadline: one timer for all of them, not one per request."""
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        deadlines = self._deadlines
        kept: list[tuple[float, int]] = []
        for deadline, request_id in deadlines:
            future = self._waiting.get(request_id)
            if future is None or future.done():
                continue
            if request_id in self._unsent:
                kept.append((deadline, request_id))
            elif deadline <= now:
                future.set_exception(EngineUnavailableError("the engine did not answer in time"))
            else:
                kept.append((deadline, request_id))
        self._deadlines = kept
        if kept or self._unsent:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep)

    def _flush(self) -> None:
        """This loop turn's requests, in one frame."""
        requests, self._outbox = self._outbox, []
        if not requests:
            return
        try:
            frame = _encoder.encode(requests)
        except (OverflowError, TypeError):  # one command cannot be encoded: refuse it, send the others
            requests = [request for request in requests if self._encodable(request)]
            if not requests:
                return
            frame = _encoder.encode(requests)
        self.frames_sent += 1
        try:
            self._socket.send(frame, flags=zmq.NOBLOCK)
        except zmq.Again:  # no engine connected (it is restarting) or its queue is full: wait
            timeout = self.timeout
            for request in requests:
                self._unsent[request.id] = timeout
            task = asyncio.get_running_loop().create_task(self._send_blocked(frame, requests))
            self._blocked.add(task)
            task.add_done_callback(self._blocked.discard)
        self._reader.after_send()

    def _encodable(self, request: CommandRequest) -> bool:
        """False, with the request refused, for a command no journal could hold (as the runner refuses
        it in one process: an integer beyond 64 bits, a foreign type)."""
        try:
            _encoder.encode(request)
        except (OverflowError, TypeError) as exc:
            future = self._waiting.get(request.id)
            if future is not None and not future.done():
                detail = f"the command cannot be journaled: {exc}"
                future.set_exception(TradehallError(Code.INVALID_REQUEST, detail))
            return False
        return True

    async def _send_blocked(self, frame: bytes, requests: list[CommandRequest]) -> None:
        """Until the frame leaves (an engine process restarting takes a while to bind again); the
        requests' deadlines start then."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._socket.send(frame, flags=zmq.NOBLOCK)
            except zmq.Again:
                await asyncio.sleep(BLOCKED_RETRY_SECONDS)
                continue
            except zmq.ZMQError:
                pass  # closed: the requests fail on their deadlines
            break
        now = loop.time()
        for request in requests:
            timeout = self._unsent.pop(request.id, self.timeout)
            self._deadlines.append((now + timeout, request.id))
        self._reader.after_send()

    def _on_frames(self, frames: list[bytes]) -> None:
        try:
            replies = _replies_decoder.decode(frames[-1])
        except msgspec.DecodeError as exc:
            log.warning("engine_client_bad_reply", error=str(exc))
            return
        waiting = self._waiting
        for reply in replies:
            future = waiting.get(reply.id)
            if future is not None and not future.done():
                future.set_result(reply)
