"""A gateway's side of a cluster: each command to the leader of the shard that owns it, retried across
a takeover.

Where a command goes (`ShardRouter.shards_for`): a market's command to the market's shard (the shard
map), a smart order to its instrument's shard, a cancel or amend to the shard its order id names (each
shard's ids start at its `id_base`), account-level money (deposits, withdrawals) to the home shard,
and what concerns every shard (opening an account, settings, `CancelAll` without a market) to all of
them. Cross-shard transfers name their shards themselves (`submit_to`, `transfers.py`).

While a shard has no leader (a takeover: the lease lapses, a standby takes it) its requests find no
responder or time out; the router sends the same command again with backoff until
`retry_seconds`, then answers `ClusterUnavailableError` (a 503 `overloaded` at the gateway). A request
that timed out may have been applied: it is sent again only when a repeat is harmless, i.e. the
engine deduplicates it (an order with a `client_order_id`, a transfer by its id, settings); a repeat
then answers the original order (exactly once by the engine's idempotency). Anything else that timed
out is answered at once with the same 503, saying it may or may not have been applied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import structlog

from tradehall.domain import commands as cmds
from tradehall.domain.commands import AnyCommand
from tradehall.domain.enums import AccountKind
from tradehall.domain.errors import Code
from tradehall.domain.events import AnyEvent, CommandRejected
from tradehall.engine import Engine, views
from tradehall.engine.views import AccountView
from tradehall.journal.records import JournalRecord
from tradehall.service.cluster.accounts import merged_account
from tradehall.service.cluster.cached import SharedResult
from tradehall.service.cluster.shards import ShardMap
from tradehall.service.cluster.transfers import TransferCoordinator
from tradehall.service.runner import CommandResult, RunnerError
from tradehall.service.transport import EngineUnavailableError

log = structlog.get_logger(__name__)

READY_CACHE_SECONDS = 1.0
"""How long one round of `/ready`'s per-shard NATS checks answers every `/ready` request."""

_MARKET_COMMANDS = (
    cmds.PlaceOrder,
    cmds.SetMarketStatus,
    cmds.MarkPrice,
    cmds.Quote,
    cmds.SetLeverage,
    cmds.ApplyFunding,
    cmds.SettleMarket,
    cmds.VoidMarket,
)
_HOME_COMMANDS = (cmds.Deposit, cmds.Withdraw)
_EVERY_SHARD = (cmds.Configure, cmds.AdvanceTime)
_HARMLESS_REPEATS = (
    cmds.TransferOut,
    cmds.TransferIn,
    cmds.CompleteTransfer,
    cmds.RefundTransfer,
    cmds.Configure,
    cmds.AdvanceTime,
    cmds.OpenAccount,
    cmds.MarkPrice,
    cmds.Quote,
)


class ShardSubmitter(Protocol):
    """One shard's leader (`client.ShardClient`, or a local runner in tests)."""

    async def submit(self, command: AnyCommand, *, timeout: float | None = None) -> CommandResult: ...


class NoResponderError(RunnerError):
    """No leader listens on the shard's command subject: the command was not delivered (safe to resend)."""


class ClusterUnavailableError(EngineUnavailableError):
    """A shard had no leader that answered within the retry deadline (503 `overloaded`)."""


def maybe_applied(error: RunnerError) -> bool:
    """Whether a failed request may have reached the leader (a timeout) or surely did not (no
    responders: nobody listened; `ShardUnavailableError.maybe_applied`). Other failures count as maybe."""
    if isinstance(error, NoResponderError):
        return False
    flag = getattr(error, "maybe_applied", None)
    return flag if isinstance(flag, bool) else True


def repeat_is_harmless(command: AnyCommand) -> bool:
    """The engine answers a repeat of this command with the first result (or it changes nothing)."""
    if isinstance(command, cmds.PlaceOrder | cmds.RouteOrder):
        return command.client_order_id is not None
    return isinstance(command, _HARMLESS_REPEATS)


class ShardRouter:
    """`submit(command)`: the durable result from the shard(s) that own it (several: results merged)."""

    def __init__(
        self,
        shard_map: ShardMap,
        clients: Mapping[str, ShardSubmitter],
        *,
        request_timeout: float = 2.0,
        retry_seconds: float = 10.0,
        backoff: tuple[float, float] = (0.05, 1.0),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        missing = [shard for shard in shard_map.names if shard not in clients]
        if missing:
            raise ValueError(f"no client for shards {missing}")
        self.shard_map = shard_map
        self._clients = clients
        self.request_timeout = request_timeout
        self.retry_seconds = retry_seconds
        self._backoff = backoff
        self._monotonic = monotonic
        self._sleep = sleep
        self.retries = 0
        """Requests sent again after a failure (a test and the metrics read it)."""

    def shards_for(self, command: AnyCommand) -> list[str]:
        """The shards a command goes to (raises `UnknownMarketError` for a market no shard owns)."""
        shard_map = self.shard_map
        if isinstance(command, _MARKET_COMMANDS):
            return [shard_map.shard_of(command.market)]
        if isinstance(command, cmds.CreateMarket):
            return [shard_map.shard_of(command.spec.symbol)]
        if isinstance(command, cmds.RouteOrder):
            return [shard_map.shard_of_instrument(command.instrument)]
        if isinstance(command, cmds.CancelOrder | cmds.AmendOrder):
            return [shard_map.shard_of_id(command.order_id)]
        if isinstance(command, cmds.CancelAll):
            return shard_map.names if command.market is None else [shard_map.shard_of(command.market)]
        if isinstance(command, _HOME_COMMANDS):
            return [shard_map.home]
        if isinstance(command, cmds.OpenAccount):
            # an assessment's rules look at all its positions: it lives (and trades) in the home shard
            return [shard_map.home] if command.kind == AccountKind.ASSESSMENT else shard_map.names
        if isinstance(command, _EVERY_SHARD):
            return shard_map.names
        raise ValueError(f"{type(command).__name__} names its shard: use submit_to")

    async def submit(self, command: AnyCommand) -> CommandResult:
        shards = self.shards_for(command)
        if len(shards) == 1:
            return await self.submit_to(shards[0], command)
        return merged(await asyncio.gather(*(self.submit_to(shard, command) for shard in shards)))

    async def submit_to(self, shard: str, command: AnyCommand) -> CommandResult:
        """The command on one named shard's leader, retried while that shard has none."""
        client = self._clients[shard]
        deadline = self._monotonic() + self.retry_seconds
        delay, max_delay = self._backoff
        timed_out = False
        while True:
            remaining = deadline - self._monotonic()
            try:
                result = await client.submit(
                    command, timeout=max(min(self.request_timeout, remaining), 0.001)
                )
            except RunnerError as error:
                maybe = maybe_applied(error)
                timed_out = timed_out or maybe
                if maybe and not repeat_is_harmless(command):
                    raise ClusterUnavailableError(
                        f"shard {shard}: the leader did not answer in time; the command may or may not "
                        "have been applied: retry it with the same client_order_id"
                    ) from error
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    raise ClusterUnavailableError(
                        f"shard {shard} has no leader that answered within {self.retry_seconds:g} s "
                        f"({error}); "
                        + (
                            "the command may or may not have been applied: retry it with the same "
                            "client_order_id"
                            if timed_out
                            else "the command was not applied"
                        )
                    ) from error
                log.info("cluster_retry", shard=shard, command=type(command).__name__, error=str(error))
                self.retries += 1
                await self._sleep(min(delay, remaining))
                delay = min(delay * 2, max_delay)
                continue
            if timed_out and isinstance(command, cmds.OpenAccount):
                return _forget_existing(result)  # the earlier attempt opened it
            return result


def merged(results: Sequence[CommandResult]) -> CommandResult:
    """One answer for a command several shards applied: their events in shard order (the seq and time
    of the latest; a seq is only meaningful per shard)."""
    events: list[AnyEvent] = []
    for result in results:
        events.extend(result.events)
    last = max(results, key=lambda result: result.ts)
    return CommandResult(seq=last.seq, ts=last.ts, events=tuple(events))


def _forget_existing(result: CommandResult) -> CommandResult:
    events = tuple(
        e for e in result.events if not (isinstance(e, CommandRejected) and e.code is Code.CONFLICT)
    )
    return CommandResult(seq=result.seq, ts=result.ts, events=events)


class ShardReads(Protocol):
    """A gateway's read replicas, one engine per shard (each follows its shard's log)."""

    def engine_of(self, shard: str) -> Engine: ...

    async def wait_applied(self, shard: str, seq: int) -> None:
        """Returns once the shard's replica has applied record `seq` (read-after-write)."""
        ...

    def add_listener(self, shard: str, listener: Callable[[Sequence[JournalRecord]], None]) -> None:
        """`listener` gets the records the shard's replica applies, in order, as it applies them."""
        ...

    async def shard_check(self, shard: str) -> dict[str, Any]:
        """The shard's `/ready` entry (`ok` first): a live leader, the replica following (ops.py)."""
        ...


_READ_SHARD: ContextVar[str | None] = ContextVar("tradehall_read_shard", default=None)
"""The shard a request reads from (its market's or its order's); unset: the home shard."""


class ClusterGateway:
    """What an HTTP gateway configured for a cluster uses instead of its own engine: the router for
    commands, and per request the read replica of the shard the request is about (`read_shard_of_*`
    sets it for the request's task; anything not about a market or an order reads the home shard)."""

    def __init__(
        self,
        router: ShardRouter,
        reads: ShardReads,
        transfers: TransferCoordinator | None = None,
        *,
        ready_ttl: float = READY_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`transfers`: the coordinator of cross-shard transfers (`POST /admin/transfers`); `ready_ttl`:
        how long one round of `/ready`'s NATS checks answers every caller (`ready_check`)."""
        self.router = router
        self.reads = reads
        self.shard_map = router.shard_map
        self.transfers = transfers
        self.readiness: SharedResult[tuple[bool, dict[str, Any]]] = SharedResult(
            self._check_shards, ready_ttl, monotonic=monotonic
        )

    @property
    def engine(self) -> Engine:
        shard = _READ_SHARD.get()
        return self.reads.engine_of(self.shard_map.home if shard is None else shard)

    @property
    def home_engine(self) -> Engine:
        """The home shard's read replica, whatever shard the request reads."""
        return self.reads.engine_of(self.shard_map.home)

    def account_parts(self, account_id: str) -> list[tuple[str, AccountView]]:
        """(shard, the account's view there) for every shard that holds it, the home shard first."""
        home = self.shard_map.home
        shards = [home, *(shard for shard in self.shard_map.names if shard != home)]
        parts = ((shard, views.account(self.reads.engine_of(shard), account_id)) for shard in shards)
        return [(shard, view) for shard, view in parts if view is not None]

    def account(self, account_id: str) -> AccountView | None:
        """The account across every shard (`accounts.merged_account`); None if the home shard has
        none (it is opened there first)."""
        parts = self.account_parts(account_id)
        if not parts or parts[0][0] != self.shard_map.home:
            return None
        return merged_account([view for _, view in parts])

    def engines(self) -> list[Engine]:
        """Every shard's read replica, in shard order (listings across the cluster)."""
        return [self.reads.engine_of(shard) for shard in self.shard_map.names]

    def read_shard_of_market(self, market: str) -> None:
        _READ_SHARD.set(self.shard_map.shard_of(market))

    def read_shard_of_instrument(self, instrument: str) -> None:
        _READ_SHARD.set(self.shard_map.shard_of_instrument(instrument))

    def read_shard_of_order(self, order_id: int) -> None:
        _READ_SHARD.set(self.shard_map.shard_of_id(order_id))

    @contextmanager
    def reading(self, shard: str) -> Iterator[None]:
        """Within the block (this task only), reads go to `shard`'s replica; the previous shard after."""
        token = _READ_SHARD.set(shard)
        try:
            yield
        finally:
            _READ_SHARD.reset(token)

    def follow(self, listener: Callable[[Sequence[JournalRecord]], None]) -> None:
        """`listener` gets every shard's applied records (the WebSocket hub, ...), each batch called
        while reading that shard, so what it looks up (a market's spec, an order) is that shard's.
        Record seqs are per shard: they overlap across shards and order only one shard's records."""
        for shard in self.shard_map.names:

            def on_records(records: Sequence[JournalRecord], shard: str = shard) -> None:
                with self.reading(shard):
                    listener(records)

            self.reads.add_listener(shard, on_records)

    async def ready_check(self) -> tuple[bool, dict[str, Any]]:
        """`/ready`'s `checks.shards`: every shard's entry; ok only when each one is. `/ready` is
        public: one round of NATS calls answers every request for `ready_ttl` seconds after it ended,
        and requests during a round wait for it (`SharedResult`), so polling it costs NATS nothing more.
        The answer is shared: callers must not change it."""
        return await self.readiness.get()

    async def _check_shards(self) -> tuple[bool, dict[str, Any]]:
        names = self.shard_map.names
        checks = await asyncio.gather(*(self.reads.shard_check(shard) for shard in names))
        shards = dict(zip(names, checks, strict=True))
        good = all(check.get("ok") is True for check in checks)
        return good, shards

    async def submit(self, command: AnyCommand) -> CommandResult:
        """The command's durable result, once the replica the request reads has applied it."""
        router = self.router
        shards = router.shards_for(command)
        results = await asyncio.gather(*(router.submit_to(shard, command) for shard in shards))
        for shard, result in zip(shards, results, strict=True):
            await self.reads.wait_applied(shard, result.seq)
        return results[0] if len(results) == 1 else merged(results)
