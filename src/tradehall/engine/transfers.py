"""Cross-shard collateral transfers: the engine's half of the two-step protocol (docs/cluster.md).

An account trading in several shards holds collateral in each (exchange-core's pattern: the risk stage
reserves against the balance of the shard that matches). Moving it is journaled in both shards' logs:

- `TransferOut` (source): the account's available balance -> `system:transfers`, record `in_transit`;
- `TransferIn` (destination): `system:transfers` -> the account, record `credited`; or, when this shard
  cannot take it (no such account here, an assessment, an amount its currency cannot hold), record
  `refused` with the reason. A refusal is kept, unlike other refusals, so that every repeat answers it
  again and no later `TransferIn` can credit what the source has refunded;
- `CompleteTransfer` / `RefundTransfer` (source): the record ends `completed` (nothing moves: the money
  is in the destination) or `refunded` (`system:transfers` -> the account).

Every command is idempotent by `transfer_id`: a repeat with the same terms changes nothing and answers
the record as it is (`TransferUpdated` with `repeated`), different terms are a conflict. So a coordinator
may resend any step after any crash. Each shard's books balance on their own (double entry through
`system:transfers`); across the shards, the sum of `system:transfers` is the money in transit.
"""

from __future__ import annotations

from typing import Final

from tradehall.domain import commands as cmds
from tradehall.domain.enums import AccountKind, TransferStatus
from tradehall.domain.errors import Code, TradehallError, invalid_request, not_found
from tradehall.domain.events import TransferUpdated
from tradehall.engine.admin import amount_of
from tradehall.engine.ledger import SYSTEM_TRANSFERS, Account
from tradehall.engine.state import EngineState, Transfer

OUT: Final = "out"
IN: Final = "in"
MAX_ID_LENGTH: Final = 64


class Transfers:
    def __init__(self, state: EngineState) -> None:
        self._state = state
        self._ledger = state.ledger
        self._accounts = state.accounts
        self._transfers = state.transfers

    def transfer_out(self, command: cmds.TransferOut) -> None:
        state = self._state
        transfer_id = _checked_id(command.transfer_id)
        if not command.to_shard:
            raise invalid_request("to_shard must be non-empty")
        account = state.trader(command.account_id)
        _check_kind(account)
        currency, minor = amount_of(state, account, command.amount, command.currency)
        if self._repeat(transfer_id, OUT, account.account_id, currency, minor, command.to_shard):
            return
        if account.available(currency) < minor:
            raise TradehallError(
                Code.INSUFFICIENT_BALANCE,
                f"the transfer needs {state.money(minor, currency)}, "
                f"{state.money(account.available(currency), currency, bare=True)} available",
            )
        self._ledger.transfer(
            account, self._ledger.system_account(SYSTEM_TRANSFERS, currency), currency, minor
        )
        self._record(
            Transfer(
                transfer_id,
                OUT,
                account.account_id,
                currency,
                minor,
                command.to_shard,
                TransferStatus.IN_TRANSIT,
            )
        )

    def transfer_in(self, command: cmds.TransferIn) -> None:
        state = self._state
        transfer_id = _checked_id(command.transfer_id)
        if not command.from_shard or not command.currency:
            raise invalid_request("from_shard and currency must be non-empty")
        account = self._accounts.get(command.account_id)
        reason = ""
        minor = 0
        try:
            if account is None or account.kind is AccountKind.SYSTEM:
                raise not_found(f"account {command.account_id} not found in this shard")
            _check_kind(account)
            _, minor = amount_of(state, account, command.amount, command.currency)
        except TradehallError as error:
            reason = error.detail
        if self._repeat(transfer_id, IN, command.account_id, command.currency, minor, command.from_shard):
            return
        status = TransferStatus.REFUSED if reason else TransferStatus.CREDITED
        if account is not None and not reason:
            system = self._ledger.system_account(SYSTEM_TRANSFERS, command.currency)
            self._ledger.transfer(system, account, command.currency, minor)
        self._record(
            Transfer(
                transfer_id,
                IN,
                command.account_id,
                command.currency,
                minor,
                command.from_shard,
                status,
                reason,
            )
        )

    def complete_transfer(self, command: cmds.CompleteTransfer) -> None:
        transfer = self._outgoing(command.transfer_id)
        if transfer.status is TransferStatus.COMPLETED:
            self._emit(transfer, repeated=True)
            return
        if transfer.status is not TransferStatus.IN_TRANSIT:
            raise TradehallError(Code.CONFLICT, f"transfer {transfer.transfer_id} is {transfer.status}")
        transfer.status = TransferStatus.COMPLETED
        self._emit(transfer, repeated=False)

    def refund_transfer(self, command: cmds.RefundTransfer) -> None:
        transfer = self._outgoing(command.transfer_id)
        if transfer.status is TransferStatus.REFUNDED:
            self._emit(transfer, repeated=True)
            return
        if transfer.status is not TransferStatus.IN_TRANSIT:
            raise TradehallError(Code.CONFLICT, f"transfer {transfer.transfer_id} is {transfer.status}")
        ledger = self._ledger
        system = ledger.system_account(SYSTEM_TRANSFERS, transfer.currency)
        ledger.transfer(system, self._accounts[transfer.account_id], transfer.currency, transfer.amount)
        transfer.status = TransferStatus.REFUNDED
        transfer.reason = command.reason
        self._emit(transfer, repeated=False)

    # --- the records -----------------------------------------------------------------------

    def _outgoing(self, transfer_id: str) -> Transfer:
        transfer = self._transfers.get(transfer_id)
        if transfer is None or transfer.side != OUT:
            raise not_found(f"no transfer {transfer_id!r} out of this shard")
        return transfer

    def _repeat(
        self, transfer_id: str, side: str, account_id: str, currency: str, amount: int, peer: str
    ) -> bool:
        """True (and the record answered again) when `transfer_id` was applied with these terms; a
        conflict when with others. A refused `TransferIn` matches on its account and peer alone (its
        amount may be what it was refused for)."""
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            return False
        same = (transfer.side, transfer.account_id, transfer.currency, transfer.peer) == (
            side,
            account_id,
            currency,
            peer,
        )
        if same and transfer.status is not TransferStatus.REFUSED:
            same = transfer.amount == amount
        if not same:
            raise TradehallError(
                Code.CONFLICT, f"transfer_id {transfer_id!r} was used for another transfer ({transfer.side})"
            )
        self._emit(transfer, repeated=True)
        return True

    def _record(self, transfer: Transfer) -> None:
        self._transfers[transfer.transfer_id] = transfer
        self._emit(transfer, repeated=False)

    def _emit(self, transfer: Transfer, *, repeated: bool) -> None:
        self._state.events.append(
            TransferUpdated(
                transfer_id=transfer.transfer_id,
                account_id=transfer.account_id,
                currency=transfer.currency,
                amount=transfer.amount,
                side=transfer.side,
                peer_shard=transfer.peer,
                status=transfer.status,
                reason=transfer.reason,
                repeated=repeated,
                ts=self._state.now,
            )
        )


def _checked_id(transfer_id: str) -> str:
    if not transfer_id or len(transfer_id) > MAX_ID_LENGTH:
        raise invalid_request(f"transfer_id must be 1 to {MAX_ID_LENGTH} characters")
    return transfer_id


def _check_kind(account: Account) -> None:
    if account.kind is AccountKind.ASSESSMENT:
        raise invalid_request("an assessment account's balance does not move between shards")
