"""Administration: accounts and money in and out, markets and their status, leverage, engine settings."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Final

import msgspec

from tradehall.domain import commands as cmds
from tradehall.domain.enums import AccountKind, CostBasis, MarketStatus
from tradehall.domain.errors import Code, TradehallError, invalid_request
from tradehall.domain.events import AccountOpened, EngineConfigured, LeverageChanged, MarketCreated
from tradehall.domain.fixedpoint import PPM, ceil_div, minor_of, parse_decimal
from tradehall.domain.market import SMART_VENUE, MarketSpec, instrument_of
from tradehall.engine.assessments import Assessments
from tradehall.engine.checks import price_of
from tradehall.engine.constants import MARKET_OPEN, PERP, SYSTEM_KIND
from tradehall.engine.holds import Holds
from tradehall.engine.ledger import SYSTEM_EXTERNAL, SYSTEM_ROUNDING, Account
from tradehall.engine.markets import Market
from tradehall.engine.risk import AssessmentState, tier_day_index
from tradehall.engine.settlement import Settlement
from tradehall.engine.state import EngineState, enum_of

NEW_MARKET_STATUSES: Final = (MARKET_OPEN, MarketStatus.HALTED, MarketStatus.CLOSED)
MAX_ID_BASE: Final = 2**53 - 2**40
"""Ids stay below 2**53 (exact in JSON numbers) with 2**40 ids per shard."""
_VENUE_NAME: Final = re.compile(r"[A-Z0-9_]{1,16}")


def amount_of(state: EngineState, account: Account, amount: object, currency: str | None) -> tuple[str, int]:
    """(currency, positive minor units) of a money command's amount (deposits, withdrawals, transfers);
    the currency defaults to the account's."""
    currency = currency or account.currency
    value = parse_decimal(amount, "amount")
    minor = minor_of(value, state.config.decimals(currency))
    if minor <= 0:
        raise invalid_request("amount must be positive")
    return currency, minor


class Admin:
    def __init__(
        self, state: EngineState, holds: Holds, assessments: Assessments, settlement: Settlement
    ) -> None:
        self._state = state
        self._holds = holds
        self._assessments = assessments
        self._settlement = settlement
        self._ledger = state.ledger
        self._accounts = state.accounts
        self._markets = state.markets
        self._dirty_positions = state.dirty_positions

    # --- accounts and money ------------------------------------------------------------------

    def open_account(self, command: cmds.OpenAccount) -> None:
        state = self._state
        config = state.config
        if not command.account_id or command.account_id.startswith("system:"):
            raise invalid_request("account_id must be non-empty and not start with 'system:'")
        if command.account_id in self._accounts:
            raise TradehallError(Code.CONFLICT, f"account {command.account_id} exists")
        kind = enum_of(AccountKind, getattr(command, "kind"), "kind")  # noqa: B009
        cost_basis = enum_of(CostBasis, getattr(command, "cost_basis"), "cost_basis")  # noqa: B009
        if kind is SYSTEM_KIND:
            raise invalid_request("system accounts are opened by the engine")
        tier = None
        if kind is AccountKind.ASSESSMENT:
            tier = config.tiers.get(command.tier or "")
            if tier is None:
                raise invalid_request(f"unknown tier {command.tier!r}")
        elif command.tier is not None:
            raise invalid_request("only assessment accounts have a tier")
        account = Account(
            command.account_id,
            command.owner,
            kind,
            tier.currency if tier is not None else command.currency,
            cost_basis,
            command.tier,
        )
        self._accounts[command.account_id] = account
        self._state.events.append(
            AccountOpened(
                account_id=account.account_id,
                owner=account.owner,
                kind=account.kind,
                currency=account.currency,
                cost_basis=account.cost_basis,
                tier=account.tier,
                ts=state.now,
            )
        )
        if tier is not None:
            assessment = AssessmentState(
                tier, config.decimals(tier.currency), tier_day_index(tier, state.now)
            )
            account.assessment = assessment
            external = self._ledger.system_account(SYSTEM_EXTERNAL, tier.currency)
            self._ledger.transfer(external, account, tier.currency, assessment.initial)
            self._assessments.emit(account, assessment.initial)
            self._assessments.schedule_resets(tier)

    def deposit(self, command: cmds.Deposit) -> None:
        state = self._state
        account = state.trader(command.account_id)
        currency, minor = amount_of(state, account, command.amount, command.currency)
        basis = None if command.cost_price is None else self._deposit_basis(account, currency, minor, command)
        external = self._ledger.system_account(SYSTEM_EXTERNAL, currency)
        self._ledger.transfer(external, account, currency, minor)
        if basis is not None:  # the units join the spot position as if bought at the cost price
            market, lots, price = basis
            position = state.position(market, account)
            position.change(lots, price, account.cost_basis, market.terms.notional)
            state.dirty_positions[(account.account_id, market.symbol)] = position

    def _deposit_basis(
        self, account: Account, currency: str, minor: int, command: cmds.Deposit
    ) -> tuple[Market, int, int]:
        """(spot market, lots, price ticks) a deposit with a `cost_price` adds to the account's position:
        whole lots of the spot market that prices `currency` in the account's currency, on its tick."""
        market = self._state.spot_market_for(currency, account.currency)
        if market is None:
            raise invalid_request(
                f"a cost_price needs a spot market that prices {currency} in {account.currency}"
            )
        lots, rest = divmod(minor, market.terms.base_per_lot)
        if rest:
            raise invalid_request(f"a deposit with a cost_price is whole lots of {market.symbol}")
        return market, lots, price_of(market, command.cost_price, "cost_price")

    def withdraw(self, command: cmds.Withdraw) -> None:
        state = self._state
        account = state.trader(command.account_id)
        currency, minor = amount_of(state, account, command.amount, command.currency)
        if account.available(currency) < minor:
            raise TradehallError(
                Code.INSUFFICIENT_BALANCE,
                f"the withdrawal needs {state.money(minor, currency)}, "
                f"{state.money(account.available(currency), currency, bare=True)} available",
            )
        external = self._ledger.system_account(SYSTEM_EXTERNAL, currency)
        self._ledger.transfer(account, external, currency, minor)

    # --- markets -------------------------------------------------------------------------------

    def create_market(self, command: cmds.CreateMarket) -> None:
        state = self._state
        try:  # a spec built in code with plain strings is checked and normalised like a decoded one
            spec = msgspec.convert(msgspec.to_builtins(command.spec), MarketSpec)
        except (msgspec.ValidationError, TypeError) as error:
            raise invalid_request(f"invalid market spec: {error}") from None
        if spec.symbol in self._markets:
            raise TradehallError(Code.CONFLICT, f"market {spec.symbol} exists")
        if spec.status not in NEW_MARKET_STATUSES:
            raise invalid_request("a new market is open, halted or closed")
        self._check_instrument(spec)
        try:
            market = Market(spec, state.config.currency_decimals, state.book_factory())
        except TradehallError as error:
            raise invalid_request(error.detail) from None
        self._markets[spec.symbol] = market
        # the venue's rounding residue in this quote currency is listed from the start, at zero
        self._ledger.system_account(SYSTEM_ROUNDING, spec.quote).balance(spec.quote)
        self._state.events.append(MarketCreated(spec=spec, ts=state.now))

    def _check_instrument(self, spec: MarketSpec) -> None:
        """A market on another venue is named `<instrument>.<VENUE>` and trades what its siblings do."""
        instrument = instrument_of(spec)
        if instrument != spec.symbol:
            venue = spec.symbol[len(instrument) + 1 :]
            if not spec.symbol.startswith(instrument + ".") or not _VENUE_NAME.fullmatch(venue):
                raise invalid_request(
                    f"a market listing {instrument} on a venue is named {instrument}.<VENUE>"
                    " (VENUE: 1 to 16 capital letters, digits or _)"
                )
        if instrument == SMART_VENUE or spec.symbol == SMART_VENUE:
            raise invalid_request(f"{SMART_VENUE!r} is not a market or instrument name")
        for sibling in self._state.venues_of(instrument):
            other = sibling.spec
            if (other.kind, other.base, other.quote) != (spec.kind, spec.base, spec.quote):
                raise invalid_request(
                    f"{instrument} is listed by {other.symbol} as {other.kind} {other.base}/{other.quote}"
                )

    def set_market_status(self, command: cmds.SetMarketStatus) -> None:
        market = self._state.market(command.market)
        if market.status in (MarketStatus.SETTLED, MarketStatus.CANCELLED):
            raise TradehallError(Code.CONFLICT, f"market {market.symbol} is {market.status}")
        status = enum_of(MarketStatus, getattr(command, "status"), "status")  # noqa: B009
        if status not in NEW_MARKET_STATUSES:
            raise invalid_request("settle or void a market with SettleMarket / VoidMarket")
        self._settlement.change_status(market, status)

    # --- leverage and settings -----------------------------------------------------------------

    def set_leverage(self, command: cmds.SetLeverage) -> None:
        state = self._state
        market = state.market(command.market)
        account = state.trader(command.account_id)
        if market.kind is not PERP:
            raise invalid_request("leverage is for perp markets")
        leverage = parse_decimal(command.leverage, "leverage")
        if leverage < 1:
            raise invalid_request("leverage must be at least 1")
        limit = PPM * PPM // market.terms.initial_margin_ppm  # in ppm of 1x
        if account.assessment is not None and account.assessment.tier.max_leverage is not None:
            limit = min(limit, int(account.assessment.tier.max_leverage * PPM))
        if leverage * PPM > limit:
            raise TradehallError(
                Code.RISK_LIMIT_EXCEEDED, f"leverage above the maximum {Decimal(limit) / PPM}"
            )
        initial = max(market.terms.initial_margin_ppm, ceil_div(PPM * PPM, int(leverage * PPM)))
        quote = market.spec.quote
        position = market.positions.get(account.account_id)
        margin = 0 if position is None else position.margin
        if position is not None and position.quantity:
            margin = market.terms.margin_of(position.entry_value_up(), initial)
        more_margin = margin - (0 if position is None else position.margin)
        # open orders hold their opening lots' margin at the account's rate: a higher rate holds more
        rises = self._holds.margin_rate_rises(account, market, initial)
        more_held = sum(rise for _, rise in rises)
        if more_margin + more_held > account.available(quote):
            what = "the position and its open orders need" if more_margin else "its open orders need"
            if not more_held:
                what = "the position needs"
            raise TradehallError(
                Code.INSUFFICIENT_BALANCE,
                f"{what} {state.money(more_margin + more_held, quote)} more margin at that leverage, "
                f"{state.money(account.available(quote), quote, bare=True)} available",
            )
        if position is not None and more_margin:
            self._ledger.adjust_held(account, quote, more_margin)
            position.margin = margin
            self._dirty_positions[(account.account_id, market.symbol)] = position
        for order, rise in rises:
            self._holds.hold_more(order, account, rise)
        account.leverage[market.symbol] = initial
        self._state.events.append(
            LeverageChanged(
                account_id=account.account_id, market=market.symbol, initial_margin_ppm=initial, ts=state.now
            )
        )

    def configure(self, command: cmds.Configure) -> None:
        state = self._state
        changes: dict[str, Any] = {}
        if command.tiers is not None:
            for name, tier in command.tiers.items():
                if name != tier.name or tier.starting_balance <= 0:
                    raise invalid_request(f"tier {name!r}: its name must match and its balance be positive")
                try:
                    tier_day_index(tier, state.now)
                except (ValueError, KeyError) as error:
                    raise invalid_request(f"tier {name!r}: {error}") from None
            changes["tiers"] = dict(command.tiers)
        if command.quote_max_age_ms is not None:
            if command.quote_max_age_ms <= 0:
                raise invalid_request("quote_max_age_ms must be positive")
            changes["quote_max_age_ms"] = command.quote_max_age_ms
        if command.max_open_orders is not None:
            if command.max_open_orders <= 0:
                raise invalid_request("max_open_orders must be positive")
            changes["max_open_orders"] = command.max_open_orders
        if command.id_base is not None:
            if command.id_base < 0 or command.id_base > MAX_ID_BASE:
                raise invalid_request(f"id_base must be 0 to {MAX_ID_BASE}")
            changes["id_base"] = command.id_base
        state.config = config = msgspec.structs.replace(state.config, **changes)
        if command.id_base is not None:  # ids only move forward: ids already given stay unique
            state.next_order_id = max(state.next_order_id, config.id_base + 1)
            state.next_trade_id = max(state.next_trade_id, config.id_base + 1)
        self._state.events.append(
            EngineConfigured(
                tiers=tuple(sorted(config.tiers)),
                quote_max_age_ms=config.quote_max_age_ms,
                max_open_orders=config.max_open_orders,
                ts=state.now,
                id_base=config.id_base,
            )
        )
