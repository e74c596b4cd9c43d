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

import msgspec
import structlog
import zmq
import zmq.asyncio

from tradehall.domain.commands import AnyCommand
from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.events import AnyEvent
from tradehall.service.runner import CommandResult, RunnerError

log = structlog.get_logger(__name__)

SubmitMany = Callable[[Sequence[AnyCommand]], Awaitable[list[CommandResult]]]
Revoked = Callable[[str, str | None], None]


class CommandRequest(msgspec.Struct, frozen=True, array_like=True, gc=False):
    id: int
    command: AnyCommand | None
    """None asks only for the engine's durable seq and revocation count (`EngineClient.barrier`)."""
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
    """How many revocations the engine process has relayed since it started."""


_request_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(CommandRequest)
_reply_decoder = msgspec.msgpack.Decoder(CommandReply)


def engine_address(data_dir: object) -> str:
    """The engine's endpoint for the processes of one data directory (a Unix socket in it)."""
    return f"ipc://{data_dir}/engine.sock"


class EngineEndpoint:
    """The engine process's side: requests in, durable results out, one batch per loop turn."""

    def __init__(
        self,
        address: str,
        submit_many: SubmitMany,
        durable_seq: Callable[[], int],
        *,
        on_revoked: Revoked | None = None,
        max_batch: int = 1024,
    ) -> None:
        """`on_revoked` relays a revocation to every gateway (the record publisher's notice)."""
        self.address = address
        self._on_revoked = on_revoked
        self.revocations = 0
        self._submit_many = submit_many
        self._durable_seq = durable_seq
        self._max_batch = max_batch
        self._context = zmq.asyncio.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._drain: zmq.Socket[bytes] = zmq.Socket.shadow(self._socket.underlying)
        """The same socket, synchronous: takes what is already queued without waiting."""
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self.batches_taken = 0
        """How many batches went to the runner (a test reads it to see requests grouped)."""

    async def start(self) -> None:
        self._socket.bind(self.address)
        self._task = asyncio.create_task(self._serve(), name="engine-endpoint")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for batch in list(self._batches):
            with contextlib.suppress(Exception):
                await batch
        self._socket.close(0)
        self._context.term()

    async def _serve(self) -> None:
        socket = self._socket
        while True:
            frames = await socket.recv_multipart()
            requests: list[tuple[bytes, bytes]] = [(frames[0], frames[-1])]
            while len(requests) < self._max_batch:  # everything already queued joins this turn's batch
                try:
                    more = self._drain.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                requests.append((more[0], more[-1]))
            task = asyncio.create_task(self._run_batch(requests))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _run_batch(self, raw: list[tuple[bytes, bytes]]) -> None:
        senders: list[bytes] = []
        decoded: list[CommandRequest] = []
        for sender, payload in raw:
            try:
                request = _request_decoder.decode(payload)
            except msgspec.DecodeError as exc:
                log.warning("engine_endpoint_bad_request", error=str(exc))
                continue
            if request.command is None:  # a read barrier or a revocation: answered at once
                if request.revoked is not None:
                    self.revocations += 1
                    if self._on_revoked is not None:
                        self._on_revoked(*request.revoked)
                reply = CommandReply(id=request.id, seq=self._durable_seq(), revocations=self.revocations)
                await self._socket.send_multipart([sender, _request_encoder.encode(reply)])
                continue
            decoded.append(request)
            senders.append(sender)
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
        for sender, reply in zip(senders, replies, strict=True):
            await self._socket.send_multipart([sender, _request_encoder.encode(reply)])


class EngineUnavailableError(RunnerError):
    """The engine process did not answer in time (down, restarting, or overloaded)."""


class EngineClient:
    """A gateway's side: `submit` sends one command and returns the engine's durable result.

    Requests are pipelined on one DEALER socket; replies are matched by id. A request that gets no
    reply within `timeout` raises `EngineUnavailableError`: the command may or may not have been
    applied, so a client retries with the same client order id (deduplicated by the engine)."""

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        self._context = zmq.asyncio.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[CommandReply]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._socket.connect(self.address)
        self._reader = asyncio.create_task(self._read(), name="engine-client")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
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
        """The engine's last durable seq now (a replica that has applied it shows every answer given)
        and how many revocations it has relayed."""
        reply = await self._request(None, timeout)
        return reply.seq, reply.revocations

    async def revoke(self, user_id: str, key_id: str | None) -> None:
        """Every gateway is to forget this credential; returns once the engine process relayed it."""
        await self._request(None, revoked=(user_id, key_id))

    async def _request(
        self,
        command: AnyCommand | None,
        timeout: float | None = None,
        revoked: tuple[str, str | None] | None = None,
    ) -> CommandReply:
        request_id = next(self._ids)
        future: asyncio.Future[CommandReply] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            request = CommandRequest(id=request_id, command=command, revoked=revoked)
            try:
                payload = _request_encoder.encode(request)
            except (OverflowError, TypeError) as exc:  # as the runner refuses it in one process
                detail = f"the command cannot be journaled: {exc}"
                raise TradehallError(Code.INVALID_REQUEST, detail) from None
            await self._socket.send(payload)
            reply = await asyncio.wait_for(future, self.timeout if timeout is None else timeout)
        except TimeoutError:
            raise EngineUnavailableError("the engine did not answer in time") from None
        finally:
            self._waiting.pop(request_id, None)
        if reply.error:
            raise RunnerError(reply.error)
        return reply

    async def _read(self) -> None:
        while True:
            payload = await self._socket.recv()
            try:
                reply = _reply_decoder.decode(payload)
            except msgspec.DecodeError as exc:
                log.warning("engine_client_bad_reply", error=str(exc))
                continue
            future = self._waiting.get(reply.id)
            if future is not None and not future.done():
                future.set_result(reply)
