"""A gateway's side of a shard: one command to the leader over NATS request/reply, its durable result.

Only the leader listens on the command subject, so with no leader (a takeover under way) the request
fails at once (no responders) or after `timeout`: the command may or may not have been applied, and
the caller retries it with the same client order id (the engine answers a repeat with the original).
"""

from __future__ import annotations

from typing import Any

import nats.errors

from tradehall.domain.commands import AnyCommand
from tradehall.domain.errors import Code, TradehallError
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.protocol import ShardRequest, command_encoder, reply_decoder
from tradehall.service.runner import CommandResult, RunnerError


class ShardUnavailableError(RunnerError):
    """No leader answered: none is serving right now, or it did not answer within the timeout."""

    def __init__(self, message: str, *, maybe_applied: bool) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        """False when nobody listened (the command surely was not applied); True after a timeout or a
        broken connection (it may have been: resend only what the engine deduplicates)."""


class ShardClient:
    def __init__(self, nc: Any, names: ShardNames, *, timeout: float = 5.0) -> None:
        self._nc = nc
        self.names = names
        self.timeout = timeout

    async def submit(self, command: AnyCommand, *, timeout: float | None = None) -> CommandResult:
        """The leader's durable result; `TradehallError` for a refusal with a code, `RunnerError` for
        one without, `ShardUnavailableError` when no leader answered."""
        payload = command_encoder.encode(ShardRequest(command))
        try:
            message = await self._nc.request(
                self.names.command_subject, payload, timeout=self.timeout if timeout is None else timeout
            )
        except nats.errors.NoRespondersError:
            raise ShardUnavailableError(
                f"shard {self.names.shard}: no leader is serving", maybe_applied=False
            ) from None
        except (TimeoutError, nats.errors.TimeoutError):
            raise ShardUnavailableError(
                f"shard {self.names.shard}: the leader did not answer in time", maybe_applied=True
            ) from None
        except (OSError, nats.errors.Error) as exc:
            raise ShardUnavailableError(f"shard {self.names.shard}: {exc!r}", maybe_applied=True) from exc
        reply = reply_decoder.decode(message.data)
        if reply.error:
            if reply.code:
                raise TradehallError(Code(reply.code), reply.error)
            raise RunnerError(reply.error)
        return CommandResult(reply.seq, reply.ts, reply.events)
