"""Perp funding: longs pay shorts (or the reverse) `rate x mark x quantity`, through clearing."""

from __future__ import annotations

from tradehall.domain import commands as cmds
from tradehall.domain.errors import invalid_request
from tradehall.domain.events import FundingPaid
from tradehall.domain.fixedpoint import PPM, div_round_half_even, parse_decimal
from tradehall.engine.constants import PERP
from tradehall.engine.ledger import SYSTEM_PERP_SETTLEMENT
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
        if mark_of(market) is None:
            raise invalid_request(f"market {market.symbol} has no mark to fund at")
        self.pay(market, int(rate * PPM))

    def pay(self, market: Market, rate_ppm: int) -> None:
        mark = mark_of(market)
        assert mark is not None
        quote = market.spec.quote
        clearing = self._ledger.system_account(SYSTEM_PERP_SETTLEMENT, quote)
        payments: list[tuple[str, int]] = []
        for account_id in sorted(market.positions):
            position = market.positions[account_id]
            if position.quantity == 0:
                continue
            payment = div_round_half_even(
                market.terms.notional.num * position.quantity * mark * rate_ppm,
                market.terms.notional.den * PPM,
            )
            if payment == 0:
                continue
            account = self._accounts[account_id]
            if payment > 0:
                self._postings.settle_pnl(account, quote, -payment)
            else:
                self._ledger.transfer(clearing, account, quote, -payment)
            payments.append((account_id, payment))
        self._state.events.append(
            FundingPaid(
                market=market.symbol,
                rate_ppm=rate_ppm,
                mark=mark,
                payments=tuple(payments),
                ts=self._state.now,
            )
        )
