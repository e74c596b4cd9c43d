"""Perp funding: longs pay shorts (or the reverse) `rate x mark x quantity`, through clearing.

Rates carry up to 8 decimals (1e-8 units); payers' amounts are rounded up, receivers' down, and the
difference goes to `system:rounding`."""

from __future__ import annotations

from tradehall.domain import commands as cmds
from tradehall.domain.errors import invalid_request
from tradehall.domain.events import FundingPaid
from tradehall.domain.fixedpoint import RATE_SCALE, ceil_div, parse_decimal, rate_units_of
from tradehall.engine.constants import PERP
from tradehall.engine.ledger import SYSTEM_PERP_SETTLEMENT, SYSTEM_ROUNDING
from tradehall.engine.markets import Market
from tradehall.engine.postings import Postings
from tradehall.engine.risk import mark_of
from tradehall.engine.state import EngineState


class Funding:
    def __init__(self, state: EngineState, postings: Postings) -> None:
        self._state = state
        self._postings = postings
        self._ledger = state.ledger
        self._accounts = state.accounts

    def apply_funding(self, command: cmds.ApplyFunding) -> None:
        market = self._state.market(command.market)
        if market.kind is not PERP:
            raise invalid_request("funding is for perp markets")
        rate = parse_decimal(command.rate, "rate")
        if abs(rate) >= 1:
            raise invalid_request("a funding rate is a fraction below 1")
        rate_e8 = rate_units_of(rate, "rate")  # finer than 8 decimals: refused, never truncated
        if mark_of(market) is None:
            raise invalid_request(f"market {market.symbol} has no mark to fund at")
        self.pay(market, rate_e8)

    def pay(self, market: Market, rate_e8: int) -> None:
        """Every open position pays or receives `rate x mark x quantity`: a payer's exact amount
        rounded up, a receiver's down. Positions sum to zero, so the exact amounts do too and clearing
        keeps what the rounding leaves, which goes to `system:rounding`."""
        mark = mark_of(market)
        assert mark is not None
        quote = market.spec.quote
        ledger = self._ledger
        clearing = ledger.system_account(SYSTEM_PERP_SETTLEMENT, quote)
        numerator = market.terms.notional.num * mark * rate_e8
        denominator = market.terms.notional.den * RATE_SCALE
        payments: list[tuple[str, int]] = []
        residue = 0
        for account_id in sorted(market.positions):
            position = market.positions[account_id]
            if position.quantity == 0:
                continue
            payment = ceil_div(numerator * position.quantity, denominator)  # received: -floor
            if payment == 0:
                continue
            account = self._accounts[account_id]
            if payment > 0:
                self._postings.settle_pnl(account, quote, -payment)
            else:
                ledger.transfer(clearing, account, quote, -payment)
            residue += payment
            payments.append((account_id, payment))
        ledger.transfer(clearing, ledger.system_account(SYSTEM_ROUNDING, quote), quote, residue)
        self._state.events.append(
            FundingPaid(
                market=market.symbol,
                rate_e8=rate_e8,
                mark=mark,
                payments=tuple(payments),
                ts=self._state.now,
            )
        )
