"""Balances with holds, as double-entry postings between accounts (system accounts included).

Every movement of money is a `transfer` from one account to another, so the sum of all balances
of a currency over all accounts is always zero: deposits come from `system:external`, fees go to
`system:fees`, perp P&L settles against `system:perp_settlement`, binary contracts' collateral sits
in one `system:collateral:<market>` account per market, and what rounding in the venue's favour
leaves (a buyer's cash rounded up against a seller's rounded down, funding, perp P&L) accrues to
`system:rounding`, which never goes negative. Collateral moving to or from another shard of a cluster
passes through `system:transfers` (`transfers.py`): in each shard it is the shard's net position
against the other shards, and summed over the shards it is the money in transit. Holds only move
money between an account's `available` and `held` parts. Changes are accumulated per command and
emitted once per balance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from tradehall.domain.enums import AccountKind, AccountStatus, CostBasis, TradingState
from tradehall.domain.events import AnyEvent, BalanceChanged

_BALANCE_CHANGED: Final = BalanceChanged
"""Bound once: the compiled ledger reads a `Final` from a C static, an imported class from the
module dict on every event."""

if TYPE_CHECKING:
    from tradehall.engine.positions import Position
    from tradehall.engine.risk import AssessmentState

SYSTEM_EXTERNAL: Final = "system:external"
SYSTEM_FEES: Final = "system:fees"
SYSTEM_PERP_SETTLEMENT: Final = "system:perp_settlement"
SYSTEM_INSURANCE: Final = "system:insurance"
SYSTEM_VENUE: Final = "system:venue"
SYSTEM_ROUNDING: Final = "system:rounding"
SYSTEM_TRANSFERS: Final = "system:transfers"
"""Opened on a shard's first cross-shard transfer (not with the others: a lone engine never has it)."""
SYSTEM_ACCOUNTS: Final = (
    SYSTEM_EXTERNAL,
    SYSTEM_FEES,
    SYSTEM_PERP_SETTLEMENT,
    SYSTEM_INSURANCE,
    SYSTEM_VENUE,
    SYSTEM_ROUNDING,
)


def collateral_account(market: str) -> str:
    return f"system:collateral:{market}"


class Balance:
    __slots__ = ("held", "total")

    def __init__(self, total: int = 0, held: int = 0) -> None:
        self.total = total
        self.held = held


class Account:
    __slots__ = (
        "account_id",
        "assessment",
        "balances",
        "cost_basis",
        "currency",
        "kind",
        "leverage",
        "open_orders",
        "open_perps",
        "owner",
        "positions",
        "status",
        "status_reason",
        "tier",
        "trading_state",
    )

    def __init__(
        self,
        account_id: str,
        owner: str,
        kind: AccountKind,
        currency: str,
        cost_basis: CostBasis,
        tier: str | None,
    ) -> None:
        self.account_id = account_id
        self.owner = owner
        self.kind = kind
        self.currency = currency
        self.cost_basis = cost_basis
        self.tier = tier
        self.status = AccountStatus.ACTIVE
        self.trading_state = TradingState.ACTIVE
        self.balances: dict[str, Balance] = {}
        self.open_orders: dict[int, object] = {}
        self.positions: dict[str, Position] = {}  # by market, the same objects as Market.positions
        self.leverage: dict[str, int] = {}  # initial margin in ppm chosen per perp market
        self.assessment: AssessmentState | None = None
        self.open_perps = 0  # perp positions not flat: the account needs margin checks
        # why an assessment ended: (rule, value, limit, ts); value and limit in minor units
        self.status_reason: tuple[str, int, int, int] | None = None

    @property
    def watched(self) -> bool:
        """Whether a change can make a rule fire: an assessment, or perp positions (liquidation)."""
        return self.assessment is not None or self.open_perps > 0

    def balance(self, currency: str) -> Balance:
        balance = self.balances.get(currency)
        if balance is None:
            balance = self.balances[currency] = Balance()
        return balance

    def available(self, currency: str) -> int:
        balance = self.balances.get(currency)
        return 0 if balance is None else balance.total - balance.held


class Ledger:
    __slots__ = ("_changes", "accounts", "totals_changed")

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self._changes: dict[tuple[str, str], int] = {}
        self.totals_changed = False  # a transfer happened since the last flush (not only holds)

    def open_system_accounts(self, currency: str) -> None:
        for account_id in SYSTEM_ACCOUNTS:
            if account_id not in self.accounts:
                self.accounts[account_id] = Account(
                    account_id, "system", AccountKind.SYSTEM, currency, CostBasis.AVERAGE, None
                )

    def system_account(self, account_id: str, currency: str) -> Account:
        account = self.accounts.get(account_id)
        if account is None:
            account = self.accounts[account_id] = Account(
                account_id, "system", AccountKind.SYSTEM, currency, CostBasis.AVERAGE, None
            )
        return account

    def transfer(self, source: Account, target: Account, currency: str, amount: int) -> None:
        if amount == 0:
            return
        source.balance(currency).total -= amount
        target.balance(currency).total += amount
        self.totals_changed = True
        changes = self._changes
        key = (source.account_id, currency)
        changes[key] = changes.get(key, 0) - amount
        key = (target.account_id, currency)
        changes[key] = changes.get(key, 0) + amount

    def adjust_held(self, account: Account, currency: str, amount: int) -> None:
        """Move `amount` from available to held (negative: release)."""
        if amount == 0:
            return
        account.balance(currency).held += amount
        key = (account.account_id, currency)
        changes = self._changes
        if key not in changes:
            changes[key] = 0

    def pending_changes(self) -> list[tuple[str, str]]:
        """(account, currency) of every balance changed since the last flush."""
        return list(self._changes)

    def discard(self) -> None:
        """Forget the changes since the last flush without their events (a replay reads none)."""
        self.totals_changed = False
        self._changes.clear()

    def flush(self, reason: str, events: list[AnyEvent]) -> None:
        self.totals_changed = False
        if not self._changes:
            return
        accounts = self.accounts
        for (account_id, currency), delta in sorted(self._changes.items()):
            balance = accounts[account_id].balances[currency]
            events.append(
                _BALANCE_CHANGED(
                    account_id=account_id,
                    currency=currency,
                    total=balance.total,
                    held=balance.held,
                    delta=delta,
                    reason=reason,
                )
            )
        self._changes.clear()

    def totals(self) -> dict[str, int]:
        """Sum of every balance per currency over all accounts: always zero (double entry)."""
        sums: dict[str, int] = {}
        for account in self.accounts.values():
            for currency, balance in account.balances.items():
                sums[currency] = sums.get(currency, 0) + balance.total
        return sums
