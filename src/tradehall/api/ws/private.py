"""The private channels (`orders`, `fills`, `positions`, `account`, `sessions`, `signals`): every message
is the REST object (`sessions`: the session of `GET /sessions/{id}` with `event: "status"`, or a cycle's
summary with `event: "cycle"`; `signals`: an item of `GET /sessions/{id}/signals` with its
`session_id`). `sessions` and `signals` send updates only: REST gives the state to start from.

A mixin of the hub (`WebSocketHub`). An `orders` update or snapshot item is the order as
`GET /orders/{id}` answers it (its `fills` from the read models), an `account` one the account as
`GET /accounts/{id}` (peak equity from the read models), a `positions` or `fills` one an item of
`GET /positions` or `GET /trades`: built by the same functions, so the two transports cannot drift.

Objects that need the read models are built after a read barrier, off the record fan-out: each
user has one queue of jobs in journal order, worked by one task while it is not empty, so a
connection's private messages keep the journal's order and a snapshot comes before the updates that
follow it. A job names its connections when it is queued, so a connection that subscribes later gets
nothing older than its snapshot. The objects built in one pass of the worker are shared by its
messages: several changes of one order in one record each get a message (`event` names the change)
carrying the order as it stands once the read models have caught up, which is what REST answers then.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Iterable
from typing import Any

import structlog

from tradehall.api import convert
from tradehall.api.auth import Principal
from tradehall.api.gateway import Gateway
from tradehall.api.routes.orders import engine_order_out
from tradehall.api.ws.connection import Connection
from tradehall.api.ws.snapshots import data_message
from tradehall.engine import views
from tradehall.store import queries

log = structlog.get_logger(__name__)

_READY, _ORDER, _ACCOUNT, _ORDERS_SNAPSHOT, _ACCOUNTS_SNAPSHOT = range(5)


class _Job:
    """One private message to build (unless `text` is ready) and push to `targets`."""

    __slots__ = ("account_id", "channel", "event", "key", "kind", "principal", "sequence", "targets", "text")

    def __init__(
        self,
        kind: int,
        channel: str,
        sequence: int,
        targets: tuple[Connection, ...],
        *,
        account_id: str | None = None,
        key: Any = None,
        event: str | None = None,
        text: str | None = None,
        principal: Principal | None = None,
    ) -> None:
        self.kind = kind
        self.channel = channel
        self.sequence = sequence
        self.targets = targets
        self.account_id = account_id
        """The account the message is about (None: a snapshot, built for its one connection)."""
        self.key = key
        self.event = event
        self.text = text
        self.principal = principal


async def order_view(gateway: Gateway, order_id: int) -> dict[str, Any] | None:
    """`GET /orders/{id}` without the owner check: the open order from the engine (fills from the read
    models), a closed one from the read models."""
    gateway.read_order(order_id)  # in a cluster: the replica of the shard that gave the id
    order = views.order(gateway.engine, order_id)
    if order is not None:
        return await engine_order_out(gateway, order)
    await gateway.service.read_barrier()
    row = await gateway.service.store.call(queries.get_order, str(order_id))
    if row is None:
        return None
    fills = await gateway.service.store.call(queries.list_order_fills, str(order_id))
    return convert.order_from_row(row, views.spec(gateway.engine, row.market), fills)


async def account_view(gateway: Gateway, account_id: str) -> dict[str, Any] | None:
    """`GET /accounts/{id}` without the owner check: the engine's account, the read models' peak."""
    if views.account_owner(gateway.engine, account_id) is None:
        return None
    row = await gateway.service.store.call(queries.get_account, account_id)
    account = gateway.find_account(account_id)  # as it stands now, after the read
    if account is None:  # pragma: no cover - the engine never drops an account
        return None
    return gateway.account_dict(account, row.peak_equity if row is not None else None)


class PrivateFeed:
    gateway: Gateway
    private: dict[tuple[str, str], set[Connection]]

    def _init_private(self) -> None:
        self._private_jobs: dict[str, deque[_Job]] = {}
        self._private_tasks: set[asyncio.Task[None]] = set()

    async def _close_private(self) -> None:
        tasks = list(self._private_tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # closing: nothing is waiting for them
                continue

    def _targets(self, user_id: str, channel: str) -> tuple[Connection, ...]:
        targets = self.private.get((user_id, channel))
        return tuple(targets) if targets else ()

    # ---- queueing ---------------------------------------------------------------------------------

    def private_update(
        self, user_id: str, channel: str, sequence: int, account_id: str, data: dict[str, Any]
    ) -> None:
        """An update whose object is ready now (`positions`, `fills`)."""
        targets = self._targets(user_id, channel)
        if targets:
            text = data_message(channel, "update", sequence, data)
            self._queue(user_id, _Job(_READY, channel, sequence, targets, account_id=account_id, text=text))

    def session_update(self, user_id: str, channel: str, data: dict[str, Any]) -> None:
        """A live session's message (`sessions`, `signals`), in order with the user's other private
        messages; `sequence` is the journal's durable seq when it is sent."""
        account_id = data.get("account_id")
        sequence = self.gateway.service.runner.durable_seq
        self.private_update(user_id, channel, sequence, str(account_id or ""), data)

    def order_update(self, user_id: str, sequence: int, account_id: str, order_id: int, event: str) -> None:
        targets = self._targets(user_id, "orders")
        if targets:
            job = _Job(_ORDER, "orders", sequence, targets, account_id=account_id, key=order_id, event=event)
            self._queue(user_id, job)

    def account_updates(self, user_id: str, sequence: int, account_ids: Iterable[str]) -> None:
        targets = self._targets(user_id, "account")
        if not targets:
            return
        for account_id in account_ids:
            self._queue(
                user_id, _Job(_ACCOUNT, "account", sequence, targets, account_id=account_id, key=account_id)
            )

    def private_snapshot(self, connection: Connection, channel: str, sequence: int) -> None:
        """The snapshot of `channel` for `connection`, queued behind the updates already on their way."""
        principal = connection.principal
        assert principal is not None
        if channel == "orders":
            job = _Job(
                _ORDERS_SNAPSHOT, channel, sequence, (connection,), key=connection.id, principal=principal
            )
        elif channel == "account":
            job = _Job(
                _ACCOUNTS_SNAPSHOT, channel, sequence, (connection,), key=connection.id, principal=principal
            )
        elif channel == "positions":
            engine = self.gateway.engine
            items = [
                convert.position_dict(position)
                for account_id in self.gateway.account_ids_of(principal)
                for position in views.positions(engine, account_id)
            ]
            text = data_message(channel, "snapshot", sequence, items)
            job = _Job(_READY, channel, sequence, (connection,), text=text)
        else:
            return  # fills: updates only
        self._queue(principal.user_id, job)

    def _queue(self, user_id: str, job: _Job) -> None:
        jobs = self._private_jobs.get(user_id)
        if jobs is None:
            if job.text is not None:  # nothing ahead of it: no reason to wait
                self._deliver(job, job.text)
                return
            jobs = self._private_jobs[user_id] = deque()
            # in a cluster, the shard the first job came from must not stick to the task: each job
            # reads its own (an order its id's shard, an account the home shard)
            context = contextvars.Context() if self.gateway.cluster is not None else None
            task = asyncio.create_task(
                self._work(user_id, jobs), name=f"ws-private:{user_id}", context=context
            )
            self._private_tasks.add(task)
            task.add_done_callback(self._private_tasks.discard)
        jobs.append(job)

    # ---- building and delivering ------------------------------------------------------------------

    @staticmethod
    def _deliver(job: _Job, text: str) -> None:
        for connection in job.targets:
            principal = connection.principal
            if principal is None or job.channel not in connection.channels:
                continue  # unsubscribed or revoked since the job was queued
            if job.account_id is not None and principal.account_id not in (None, job.account_id):
                continue  # a key bound to another of the user's accounts
            connection.push(text)

    async def _work(self, user_id: str, jobs: deque[_Job]) -> None:
        try:
            while jobs:
                batch = list(jobs)
                jobs.clear()
                await self.gateway.service.read_barrier()
                built: dict[tuple[int, Any], Any] = {}
                for job in batch:
                    try:
                        text = job.text if job.text is not None else await self._build(job, built)
                    except Exception as exc:  # one object that cannot be read must not stop the feed
                        log.error(
                            "ws_private_build_failed", channel=job.channel, key=job.key, error=repr(exc)
                        )
                        continue
                    if text is not None:
                        self._deliver(job, text)
        finally:
            if self._private_jobs.get(user_id) is jobs:
                del self._private_jobs[user_id]

    async def _build(self, job: _Job, built: dict[tuple[int, Any], Any]) -> str | None:
        cache_key = (job.kind, job.key)
        if cache_key in built:
            data = built[cache_key]
        else:
            data = built[cache_key] = await self._object(job)
        if data is None:
            log.warning("ws_private_object_missing", channel=job.channel, key=job.key)
            return None
        kind = "update" if job.kind in (_ORDER, _ACCOUNT) else "snapshot"
        return data_message(job.channel, kind, job.sequence, data, event=job.event)

    async def _object(self, job: _Job) -> Any:
        gateway = self.gateway
        if job.kind == _ORDER:
            return await order_view(gateway, int(job.key))
        if job.kind == _ACCOUNT:
            return await account_view(gateway, str(job.key))
        assert job.principal is not None
        accounts = gateway.account_ids_of(job.principal)
        if job.kind == _ACCOUNTS_SNAPSHOT:
            found = [await account_view(gateway, account_id) for account_id in accounts]
            return [view for view in found if view is not None]
        # the user's open orders (each account's own index), newest first, as GET /orders/{id}
        orders = views.open_orders(gateway.engine, set(accounts))
        return [await engine_order_out(gateway, order) for order in orders]
