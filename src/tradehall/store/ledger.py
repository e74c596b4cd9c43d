"""The ledger read model: every balance change of a user's account, split by cause.

The engine emits one `BalanceChanged` per (account, currency) per command, with the net `delta`
of everything the command did to that balance (a taker sweeping three orders, their fees, a
liquidation it set off...). The ledger shows each cause on its own line, so a user can reconcile:
the other events of the same journal record say what happened, and the amounts each one moved
follow the engine's settlement rules exactly (the same integer arithmetic, `Ratio.floor` of
tick-lots into minor units):

| cause (event) | type | amount |
| --- | --- | --- |
| `OrderFilled`, spot | `trade` | quote: -/+ the fill's `cash` (older: floor of notional); base: +/- lots |
| `OrderFilled`, perp | `trade` | the fill's realised P&L |
| `OrderFilled`, binary | `trade` | + value of the contracts it closes - cost of those it opens |
| `OrderFilled` with origin `liquidation` | `liquidation` | as above |
| `OrderFilled.fee` | `fee` | - fee |
| `PositionTakenOver` | `insurance` | the rest of a close-out, taken by the fund at the mark like a fill |
| `FundingPaid` | `funding` | - payment |
| `MarketSettled` | `settlement` | the payout |
| `MarketVoided` | `void_refund` | the refund (0.50 per contract) |
| command `Deposit` / `OpenAccount` | `deposit` | the delta |
| command `Withdraw` | `withdrawal` | - amount |
| `TransferOut` / `TransferIn` / `RefundTransfer` | `transfer` | the delta (between shards) |

A perp loss (a fill's, a takeover's or funding's) is paid from the balance as far as it goes, the
rest by the insurance fund: its line shows what the account paid (the balance never goes below
zero), as the engine's `_settle_pnl` does, in the engine's order (a perp fill's fee before its P&L).

What the causes do not explain is the *residual* of the balance's delta: the whole of a deposit or
a withdrawal. Anything else would be a rule this module does not know; it is booked on its own line
(typed after the command, else `trade`) and logged as `ledger_unattributed`, so the ledger still sums
to the balance. The tests drive real engine scenarios and require no such line.

`opening_balance` lines exist only for balances that predate the ledger (migration 0006 seeds one
per balance, so older read models reconcile too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from tradehall.domain.enums import FillOrigin, MarketKind, Side
from tradehall.domain.events import (
    BalanceChanged,
    FundingPaid,
    MarketSettled,
    MarketVoided,
    OrderFilled,
    PositionTakenOver,
)
from tradehall.domain.fixedpoint import Ratio, minor_of, units_of
from tradehall.domain.market import BINARY_PAYOUT, MarketSpec

log = structlog.get_logger(__name__)

LEDGER_TYPES = (
    "deposit",
    "withdrawal",
    "trade",
    "fee",
    "funding",
    "settlement",
    "void_refund",
    "liquidation",
    "insurance",
    "opening_balance",
    "transfer",
)
ID_SHIFT = 20
"""An entry's id is seq << ID_SHIFT | its index in the record: at most 2**20 entries per record."""
SHARD_SHIFT = 58
"""A cluster shard's entries add `shard index << SHARD_SHIFT` (shards share one ledger table): up to
32 shards of 2**38 records each; the one-machine default is shard 0 (ids unchanged)."""
MAX_LEDGER_SHARDS = 1 << (63 - SHARD_SHIFT)

_RESIDUAL_TYPE = {
    "Deposit": "deposit",
    "OpenAccount": "deposit",
    "Withdraw": "withdrawal",
    "SettleMarket": "settlement",
    "VoidMarket": "void_refund",
    "ApplyFunding": "funding",
    "TransferOut": "transfer",
    "TransferIn": "transfer",
    "RefundTransfer": "transfer",
}
SYSTEM_PREFIX = "system:"


@dataclass(frozen=True, slots=True)
class MarketMoney:
    """What a market's fills move, in minor units: the engine's own conversions of its spec."""

    kind: MarketKind
    quote: str
    base: str
    notional: Ratio
    """Tick-lots -> minor units of the quote currency."""
    base_per_lot: int
    payout_ticks: int

    @staticmethod
    def of(spec: MarketSpec, quote_decimals: int, base_decimals: int) -> MarketMoney:
        tick_lot = spec.tick_size * spec.lot_size
        spot, binary = spec.kind is MarketKind.SPOT, spec.kind is MarketKind.BINARY
        return MarketMoney(
            kind=spec.kind,
            quote=spec.quote,
            base=spec.base,
            notional=Ratio.of(tick_lot * (10**quote_decimals)),
            base_per_lot=minor_of(spec.lot_size, base_decimals, "lot_size") if spot else 0,
            payout_ticks=units_of(BINARY_PAYOUT, spec.tick_size, "payout") if binary else 0,
        )


@dataclass(slots=True)
class Cause:
    account_id: str
    currency: str
    type: str
    amount: int
    market: str | None = None
    order_id: str | None = None
    trade_id: int | None = None
    perp_loss: bool = False
    """A perp loss: the account pays what its balance holds, the insurance fund the rest."""


@dataclass(slots=True)
class RecordLedger:
    """The causes of one journal record, then the entries of each of its balance changes.

    A binary fill needs the signed quantity held before it to know how many contracts it closes:
    `held_before` is the projector's mirror (`PositionChanged` comes at the end of a record), and
    later fills of the record continue from what the earlier ones left (`quantities`).
    """

    causes: dict[tuple[str, str], list[Cause]] = field(default_factory=dict)
    quantities: dict[tuple[str, str], int] = field(default_factory=dict)
    unattributed: int = 0

    def _add(self, cause: Cause) -> None:
        if cause.amount and not cause.account_id.startswith(SYSTEM_PREFIX):
            self.causes.setdefault((cause.account_id, cause.currency), []).append(cause)

    def fill(self, money: MarketMoney, ev: OrderFilled, held_before: int) -> None:
        """A fill's cash (its kind's rule), then its fee."""
        kind = "liquidation" if ev.origin is FillOrigin.LIQUIDATION else "trade"
        order_id = str(ev.order_id)

        def line(currency: str, type_: str, amount: int, perp_loss: bool = False) -> None:
            self._add(
                Cause(ev.account_id, currency, type_, amount, ev.market, order_id, ev.trade_id, perp_loss)
            )

        buy = ev.side is Side.BUY
        if money.kind is MarketKind.SPOT:
            cash = ev.cash if ev.cash is not None else money.notional.floor(ev.price * ev.quantity)
            line(money.quote, kind, -cash if buy else cash)
            base = ev.quantity * money.base_per_lot
            line(money.base, kind, base if buy else -base)
        elif money.kind is MarketKind.PERP:
            line(money.quote, "fee", -ev.fee)  # the engine settles a perp's P&L after the fee
            line(money.quote, kind, ev.realized_pnl, ev.realized_pnl < 0)
            return
        else:
            line(
                money.quote,
                kind,
                self._binary(money, ev.account_id, ev.market, buy, ev.quantity, ev.price, held_before),
            )
        line(money.quote, "fee", -ev.fee)

    def _binary(
        self, money: MarketMoney, account_id: str, market: str, buy: bool, lots: int, price: int, before: int
    ) -> int:
        """The engine's binary fill: contracts closed pay out of the collateral at their closing
        price, contracts opened pay into it at their opening price (NO contracts at 1 - price)."""
        held = self.quantities.get((account_id, market), before)
        delta = lots if buy else -lots
        closed = min(lots, abs(held)) if held and (held > 0) != (delta > 0) else 0
        payout = money.payout_ticks
        closing_price = payout - price if buy else price
        opening_price = price if buy else payout - price
        self.quantities[(account_id, market)] = held + delta
        cash = money.notional.floor(closing_price * closed) if closed else 0
        if lots - closed:
            cash -= money.notional.ceil(opening_price * (lots - closed))
        return cash

    def takeover(self, money: MarketMoney, ev: PositionTakenOver, held_before: int) -> None:
        """The insurance fund takes over what a close-out could not trade: settled like a fill at
        the mark, without fee; the account's side closes `quantity` (a sell for a long)."""
        lots = abs(ev.quantity)
        buy = ev.quantity < 0
        if money.kind is MarketKind.SPOT:
            notional = money.notional.floor(ev.price * lots)
            self._add(
                Cause(ev.account_id, money.quote, "insurance", -notional if buy else notional, ev.market)
            )
            base = lots * money.base_per_lot
            self._add(Cause(ev.account_id, money.base, "insurance", base if buy else -base, ev.market))
        elif money.kind is MarketKind.PERP:
            self._add(Cause(ev.account_id, money.quote, "insurance", ev.pnl, ev.market, perp_loss=ev.pnl < 0))
        else:
            cash = self._binary(money, ev.account_id, ev.market, buy, lots, ev.price, held_before)
            self._add(Cause(ev.account_id, money.quote, "insurance", cash, ev.market))

    def funding(self, quote: str, ev: FundingPaid) -> None:
        for account_id, payment in ev.payments:
            self._add(Cause(account_id, quote, "funding", -payment, ev.market, perp_loss=payment > 0))

    def settled(self, quote: str, ev: MarketSettled) -> None:
        for account_id, payout in ev.payouts:
            self._add(Cause(account_id, quote, "settlement", payout, ev.market))

    def voided(self, quote: str, ev: MarketVoided) -> None:
        for account_id, refund in ev.refunds:
            self._add(Cause(account_id, quote, "void_refund", refund, ev.market))

    def entries(self, ev: BalanceChanged, seq: int, total: int, command: str) -> list[Cause]:
        """The lines of one balance change (`total` before it) made by `command` (the record's
        command's type name, which the engine also uses as the reason): its causes in the engine's order,
        a perp loss capped at what the balance held then, and what they leave unexplained (see the
        module docstring); zero amounts are no lines."""
        causes = []
        for cause in self.causes.pop((ev.account_id, ev.currency), []):
            if cause.perp_loss:
                cause.amount = -min(-cause.amount, max(total, 0))
            if cause.amount:
                total += cause.amount
                causes.append(cause)
        residual = ev.delta - sum(cause.amount for cause in causes)
        if residual:
            kind = _RESIDUAL_TYPE.get(command)
            if kind is None:
                kind = "trade"
                self.unattributed += 1
                log.warning(
                    "ledger_unattributed",
                    account_id=ev.account_id,
                    currency=ev.currency,
                    amount=residual,
                    command=command,
                    seq=seq,
                )
            market = causes[-1].market if causes else None
            causes.append(Cause(ev.account_id, ev.currency, kind, residual, market))
        return causes
