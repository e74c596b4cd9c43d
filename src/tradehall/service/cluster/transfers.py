"""Moving an account's collateral between shards: a coordinator over both shards' logs.

The engines hold the money and make each step idempotent by `transfer_id` (`engine/transfers.py`);
the coordinator only records how far a transfer got and drives it on, so it never holds money and
may die anywhere:

    requested --TransferOut (source)--> sent --TransferIn (destination)--> credited --Complete--> completed
        |                                                              \\-> refused  --Refund---> refunded
        \\-- refused by the source (balance, account) --> failed (nothing moved)

The record is written before each step's command is sent and moved forward after its answer; after a
crash, `recover()` resends the step the record names. A resent step that was already applied answers
the first result, so the money moves once; a refund happens only after the destination has durably
refused (and keeps refusing) that transfer id, so a credit and a refund never both happen. Records
live in a JetStream key-value bucket (`KvTransferStore`, one key per transfer, updated with
compare-and-set and only forward), so any gateway can resume any transfer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import msgspec
import structlog

from tradehall.domain import commands as cmds
from tradehall.domain.commands import AnyCommand
from tradehall.domain.enums import TransferStatus
from tradehall.domain.errors import Code, TradehallError, invalid_request
from tradehall.domain.events import AnyEvent, CommandRejected, TransferUpdated
from tradehall.service.runner import CommandResult, RunnerError

log = structlog.get_logger(__name__)

REQUESTED = "requested"
SENT = "sent"
CREDITED = "credited"
REFUSED = "refused"
COMPLETED = "completed"
REFUNDED = "refunded"
FAILED = "failed"
FINISHED = frozenset({COMPLETED, REFUNDED, FAILED})
_RANK = {REQUESTED: 0, SENT: 1, CREDITED: 2, REFUSED: 2, COMPLETED: 3, REFUNDED: 3, FAILED: 3}

SubmitTo = Callable[[str, AnyCommand], Awaitable[CommandResult]]
Checkpoint = Callable[[str, "TransferRecord"], None]


class TransferRecord(msgspec.Struct, kw_only=True):
    """A transfer's progress. `amount` is the decimal string asked for; `currency` is known once the
    source took step 1 (it defaults to the account's); `reason` says why it failed or was refunded."""

    transfer_id: str
    account_id: str
    amount: str
    from_shard: str
    to_shard: str
    currency: str = ""
    state: str = REQUESTED
    reason: str = ""
    minor: int = 0
    error: str = ""
    """The last error that kept the transfer where it is (it is retried by `recover`)."""
    updated_ns: int = 0

    def terms(self) -> tuple[str, str, str, str]:
        return (self.account_id, self.amount, self.from_shard, self.to_shard)


class TransferStuckError(TradehallError):
    """A step got an answer the protocol does not expect (e.g. a transfer id reused elsewhere)."""


class TransferStore(Protocol):
    async def create(self, record: TransferRecord) -> TransferRecord:
        """Store a new record; an existing one with the same id is returned as it is."""
        ...

    async def advance(self, record: TransferRecord) -> TransferRecord:
        """Store `record` unless the stored one is already further on; returns what is stored."""
        ...

    async def get(self, transfer_id: str) -> TransferRecord | None: ...

    async def unfinished(self) -> list[TransferRecord]: ...


class MemoryTransferStore:
    """The store in one process (tests, a one-gateway cluster); the KV store is the durable one."""

    def __init__(self) -> None:
        self._records: dict[str, bytes] = {}

    async def create(self, record: TransferRecord) -> TransferRecord:
        stored = self._records.setdefault(record.transfer_id, msgspec.json.encode(record))
        return msgspec.json.decode(stored, type=TransferRecord)

    async def advance(self, record: TransferRecord) -> TransferRecord:
        current = await self.get(record.transfer_id)
        if (
            current is not None
            and _RANK[current.state] >= _RANK[record.state]
            and current.state != record.state
        ):
            return current
        self._records[record.transfer_id] = msgspec.json.encode(record)
        return record

    async def get(self, transfer_id: str) -> TransferRecord | None:
        stored = self._records.get(transfer_id)
        return None if stored is None else msgspec.json.decode(stored, type=TransferRecord)

    async def unfinished(self) -> list[TransferRecord]:
        records = [msgspec.json.decode(raw, type=TransferRecord) for raw in self._records.values()]
        return sorted((r for r in records if r.state not in FINISHED), key=lambda r: r.transfer_id)


class KvTransferStore:
    """Records in a JetStream key-value bucket (`<prefix>-transfers`, file storage), one key per transfer
    (the transfer id, which is a valid key: letters, digits, `-`, `_`, `.`, `=`)."""

    def __init__(self, kv: Any) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: Any, prefix: str = "tradehall", replicas: int = 1) -> KvTransferStore:
        from nats.js.api import KeyValueConfig, StorageType

        bucket = f"{prefix}-transfers"
        try:
            kv = await js.key_value(bucket)
        except Exception:  # nats-py raises BucketNotFoundError or NotFoundError by version
            kv = await js.create_key_value(
                KeyValueConfig(bucket=bucket, history=1, storage=StorageType.FILE, replicas=replicas)
            )
        return cls(kv)

    async def create(self, record: TransferRecord) -> TransferRecord:
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            await self._kv.create(record.transfer_id, msgspec.json.encode(record))
        except KeyWrongLastSequenceError:
            existing = await self.get(record.transfer_id)
            if existing is not None:
                return existing
            raise
        return record

    async def advance(self, record: TransferRecord) -> TransferRecord:
        from nats.js.errors import KeyWrongLastSequenceError

        while True:
            entry = await self._kv.get(record.transfer_id)
            current = msgspec.json.decode(entry.value, type=TransferRecord)
            if _RANK[current.state] > _RANK[record.state] or (
                _RANK[current.state] == _RANK[record.state] and current.state != record.state
            ):
                return current
            try:
                await self._kv.update(record.transfer_id, msgspec.json.encode(record), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue  # another coordinator moved it meanwhile: look again
            return record

    async def get(self, transfer_id: str) -> TransferRecord | None:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self._kv.get(transfer_id)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return msgspec.json.decode(entry.value, type=TransferRecord)

    async def unfinished(self) -> list[TransferRecord]:
        from nats.js.errors import NoKeysError

        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        records = [await self.get(key) for key in sorted(keys)]
        return [r for r in records if r is not None and r.state not in FINISHED]


class TransferCoordinator:
    """Starts transfers and drives any unfinished one to its end (`recover`)."""

    def __init__(
        self,
        submit_to: SubmitTo,
        store: TransferStore,
        shards: Sequence[str],
        *,
        checkpoint: Checkpoint | None = None,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        """`checkpoint(name, record)` is called after each step's answer, before it is recorded (tests
        crash the coordinator there)."""
        self._submit_to = submit_to
        self.store = store
        self._shards = list(shards)
        self._checkpoint = checkpoint
        self._now_ns = now_ns

    async def transfer(
        self,
        transfer_id: str,
        account_id: str,
        amount: Decimal | str,
        from_shard: str,
        to_shard: str,
        currency: str | None = None,
    ) -> TransferRecord:
        """Start (or resume: the same id and terms) a transfer and drive it as far as it goes."""
        for shard in (from_shard, to_shard):
            if shard not in self._shards:
                raise invalid_request(f"shard {shard!r} is not one of {self._shards}")
        if from_shard == to_shard:
            raise invalid_request("a transfer goes from one shard to another")
        if (
            not transfer_id
            or len(transfer_id) > 64
            or not all(ch.isalnum() or ch in "-_" for ch in transfer_id)
        ):
            raise invalid_request("transfer_id: 1 to 64 letters, digits, '-' or '_'")
        try:
            value = Decimal(str(amount))
        except InvalidOperation:
            raise invalid_request("amount must be a decimal number") from None
        if not value.is_finite() or value <= 0:
            raise invalid_request("amount must be positive")
        record = TransferRecord(
            transfer_id=transfer_id,
            account_id=account_id,
            amount=str(amount),
            from_shard=from_shard,
            to_shard=to_shard,
            currency=currency or "",
            updated_ns=self._now_ns(),
        )
        stored = await self.store.create(record)
        if stored.terms() != record.terms() or (currency and stored.currency not in ("", currency)):
            raise TradehallError(Code.CONFLICT, f"transfer_id {transfer_id!r} was used for another transfer")
        return await self.drive(stored)

    async def recover(self) -> list[TransferRecord]:
        """Drive every unfinished transfer on (after a crash, at start, now and then); a transfer that
        cannot go on now keeps its record and its `error`."""
        done = []
        for record in await self.store.unfinished():
            try:
                done.append(await self.drive(record))
            except (TradehallError, RunnerError) as error:  # a refusal; a shard without a leader
                log.warning("transfer_not_recovered", transfer_id=record.transfer_id, error=str(error))
        return done

    async def drive(self, record: TransferRecord) -> TransferRecord:
        while record.state not in FINISHED:
            record = await self._step(record)
        return record

    async def _step(self, record: TransferRecord) -> TransferRecord:
        state = record.state
        if state == REQUESTED:
            result = await self._submit_to(
                record.from_shard,
                cmds.TransferOut(
                    transfer_id=record.transfer_id,
                    account_id=record.account_id,
                    amount=Decimal(record.amount),
                    to_shard=record.to_shard,
                    currency=record.currency or None,
                ),
            )
            update, refusal = _answer(result.events)
            if refusal is not None:  # nothing moved; the same id may be asked again later
                return await self._advance(record, "out_refused", state=FAILED, reason=refusal.reason)
            assert update is not None
            return await self._advance(
                record, "out_applied", state=SENT, currency=update.currency, minor=update.amount
            )
        if state == SENT:
            result = await self._submit_to(
                record.to_shard,
                cmds.TransferIn(
                    transfer_id=record.transfer_id,
                    account_id=record.account_id,
                    amount=Decimal(record.amount),
                    currency=record.currency,
                    from_shard=record.from_shard,
                ),
            )
            update = await self._expect(record, result.events)
            if update.status is TransferStatus.CREDITED:
                return await self._advance(record, "in_applied", state=CREDITED)
            return await self._advance(record, "in_refused", state=REFUSED, reason=update.reason)
        if state == CREDITED:
            result = await self._submit_to(
                record.from_shard, cmds.CompleteTransfer(transfer_id=record.transfer_id)
            )
            await self._expect(record, result.events)
            return await self._advance(record, "completed", state=COMPLETED)
        # REFUSED: the destination keeps refusing this id, so the money goes back
        result = await self._submit_to(
            record.from_shard, cmds.RefundTransfer(transfer_id=record.transfer_id, reason=record.reason)
        )
        await self._expect(record, result.events)
        return await self._advance(record, "refunded", state=REFUNDED)

    async def _expect(self, record: TransferRecord, events: Sequence[AnyEvent]) -> TransferUpdated:
        update, refusal = _answer(events)
        if refusal is not None:
            record.error = f"{refusal.command}: {refusal.reason}"
            await self.store.advance(record)
            raise TransferStuckError(Code.CONFLICT, f"transfer {record.transfer_id} is stuck: {record.error}")
        assert update is not None
        return update

    async def _advance(self, record: TransferRecord, point: str, **changes: Any) -> TransferRecord:
        if self._checkpoint is not None:
            self._checkpoint(point, record)
        moved = msgspec.structs.replace(record, error="", updated_ns=self._now_ns(), **changes)
        stored = await self.store.advance(moved)
        log.info("transfer_step", transfer_id=record.transfer_id, state=stored.state)
        return stored


def _answer(events: Sequence[AnyEvent]) -> tuple[TransferUpdated | None, CommandRejected | None]:
    for event in events:
        if isinstance(event, TransferUpdated):
            return event, None
        if isinstance(event, CommandRejected):
            return None, event
    raise TransferStuckError(Code.INTERNAL, "a transfer command answered no transfer event")
