"""Accounts: balances and equity from the engine's live state; peak equity from the read models."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from starlette.responses import Response

from tradehall.api import convert
from tradehall.api.auth import Principal
from tradehall.api.errors import ApiError
from tradehall.api.gateway import AdminDep, CorrelationDep, Gateway, GatewayDep, PrincipalDep, TraderDep
from tradehall.api.routes.common import ERRORS, Cursor, Limit, json_response, page
from tradehall.api.schemas import (
    AccountCreate,
    AccountOut,
    AccountsPage,
    DepositRequest,
    LedgerPage,
    LeverageOut,
    LeverageRequest,
    TiersPage,
)
from tradehall.domain.commands import Deposit, OpenAccount, SetLeverage
from tradehall.domain.enums import AccountKind, CostBasis
from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.fixedpoint import minor_of, parse_decimal
from tradehall.engine import views
from tradehall.store import queries

router = APIRouter(tags=["accounts"], responses=ERRORS)


def _amount(gateway: Gateway, value: str, currency: str) -> Decimal:
    try:
        amount = parse_decimal(value, "amount")
        minor = minor_of(amount, views.currency_places(gateway.engine, currency))
    except TradehallError as error:
        raise ApiError(Code.INVALID_REQUEST, error.detail) from None
    if minor <= 0:
        raise ApiError(Code.INVALID_REQUEST, "amount must be positive")
    return amount


def known_currencies(gateway: Gateway) -> set[str]:
    """The currencies a self-funded balance may be in: the configured ones, those markets settle
    in and spot markets' base assets.

    Money conjured in a currency nothing trades or values would sit outside every market's books.
    """
    return views.holdable_currencies(gateway.engine)


async def _account_out(gateway: Gateway, principal: Principal, account_id: str) -> dict[str, object]:
    gateway.check_account(principal, account_id)
    row = await gateway.service.store.call(queries.get_account, account_id)
    account = gateway.account(principal, account_id)  # as it stands after the read
    peak = row.peak_equity if row is not None else None
    return gateway.account_dict(account, peak)


@router.post(
    "/accounts",
    status_code=201,
    response_model=AccountOut,
    summary="Open an account",
    description="A paper `cash` account in `currency`, self-funded with `initial_balance` where the "
    "venue allows it (`TRADEHALL_ALLOW_SELF_FUNDING`; else an admin deposits), or an `assessment` "
    "account of a `tier` (see `GET /tiers`), funded by the tier's starting balance and bound by its "
    "rules. `cost_basis` (`fifo`, `lifo` or `average`, the default) is how a sale's realised P&L "
    "picks the lots it closes. Needs the `trade` scope; a key bound to one account cannot open another.",
)
async def create_account(
    body: AccountCreate, principal: TraderDep, gateway: GatewayDep, correlation_id: CorrelationDep
) -> Response:
    if principal.account_id is not None:
        raise ApiError(Code.FORBIDDEN, f"this API key is bound to account {principal.account_id}")
    amount = None
    if body.kind == "assessment":
        if body.tier is None or body.tier not in views.tiers(gateway.engine):
            raise ApiError(Code.INVALID_REQUEST, f"unknown tier {body.tier!r}; see GET /tiers")
        if body.initial_balance is not None:
            raise ApiError(Code.INVALID_REQUEST, "an assessment account is funded by its tier")
    elif body.tier is not None:
        raise ApiError(Code.INVALID_REQUEST, "only assessment accounts have a tier")
    if body.initial_balance is not None:
        if not gateway.settings.allow_self_funding:
            raise ApiError(Code.FORBIDDEN, "self-funding is disabled; an admin deposits")
        known = known_currencies(gateway)
        if body.currency not in known:
            listed = ", ".join(sorted(known))
            raise ApiError(
                Code.INVALID_REQUEST, f"currency {body.currency!r} is not one of the venue's ({listed})"
            )
        amount = _amount(gateway, body.initial_balance, body.currency)
    account_id = gateway.new_account_id()
    await gateway.execute(
        OpenAccount(
            account_id=account_id,
            owner=principal.user_id,
            kind=AccountKind(body.kind),
            currency=body.currency,
            tier=body.tier,
            cost_basis=CostBasis(body.cost_basis),
            correlation_id=correlation_id,
        )
    )
    if amount is not None:
        await gateway.execute(Deposit(account_id=account_id, amount=amount, correlation_id=correlation_id))
    return json_response(await _account_out(gateway, principal, account_id), 201)


@router.get(
    "/accounts",
    response_model=AccountsPage,
    summary="List your accounts",
    description="The caller's accounts with their balances, equity, P&L and status "
    "(a key bound to an account sees that one only). Through a cluster gateway: what every shard holds, "
    "added up, with each shard's part under `shards`.",
)
async def list_accounts(principal: PrincipalDep, gateway: GatewayDep) -> Response:
    items = [gateway.account_dict(account) for account in gateway.accounts_of(principal)]
    return json_response(page(items))


@router.get(
    "/accounts/{account_id}",
    response_model=AccountOut,
    summary="Get an account",
    description="Balances per currency (`total`, `available`, `held`), equity, P&L, peak equity and "
    "drawdown; an assessment account also shows its tier `rules` with floors and progress, and once "
    "ended its `status_reason`. 404 if unknown, 403 if another user's.",
)
async def get_account(account_id: str, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    return json_response(await _account_out(gateway, principal, account_id))


@router.get("/accounts/{account_id}/ledger", response_model=LedgerPage, summary="An account's ledger")
async def get_ledger(
    account_id: str,
    principal: PrincipalDep,
    gateway: GatewayDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    """Every change of the account's balances, newest first: deposits, withdrawals, fill cash, fees,
    funding, settlement payouts, void refunds, liquidations and insurance takeovers, each with the
    running balance of its currency. The amounts of a currency sum to its balance."""
    gateway.check_account(principal, account_id)
    await gateway.service.read_barrier()
    result = await gateway.service.store.call(queries.list_ledger, account_id, limit=limit, cursor=cursor)
    return json_response(page([convert.ledger_from_row(row) for row in result.items], result.next_cursor))


@router.post(
    "/accounts/{account_id}/leverage", response_model=LeverageOut, summary="Set leverage on a perp market"
)
async def set_leverage(
    account_id: str,
    body: LeverageRequest,
    principal: TraderDep,
    gateway: GatewayDep,
    correlation_id: CorrelationDep,
) -> Response:
    """The account's leverage on a perp market, up to the market's and its tier's maximum."""
    gateway.check_account(principal, account_id)
    gateway.spec(body.market)
    try:
        leverage = parse_decimal(body.leverage, "leverage")
    except TradehallError as error:
        raise ApiError(Code.INVALID_REQUEST, error.detail) from None
    await gateway.execute(
        SetLeverage(
            account_id=account_id, market=body.market, leverage=leverage, correlation_id=correlation_id
        )
    )
    initial = views.initial_margin_ppm(gateway.engine, account_id, body.market)
    return json_response(
        {
            "account_id": account_id,
            "market": body.market,
            "leverage": convert.dec((Decimal(1_000_000) / initial).quantize(Decimal("0.01"))),
            "initial_margin": convert.dec(Decimal(initial) / 1_000_000),
        }
    )


@router.post(
    "/admin/accounts/{account_id}/deposit",
    response_model=AccountOut,
    summary="Deposit into an account (admin)",
    description="Credits `amount` in `currency` (default: the account's currency) and answers the "
    "account. The deposit appears in the account's ledger. With `cost_price` the deposited units of a "
    "spot base get that cost basis (whole lots of the spot market that prices them in the account's "
    "currency, on its tick; else 400 or 422).",
)
async def deposit(
    account_id: str,
    body: DepositRequest,
    admin: AdminDep,
    gateway: GatewayDep,
    correlation_id: CorrelationDep,
) -> Response:
    account = gateway.account(admin, account_id)
    currency = body.currency or account.currency
    amount = _amount(gateway, body.amount, currency)
    try:
        cost_price = None if body.cost_price is None else parse_decimal(body.cost_price, "cost_price")
    except TradehallError as error:
        raise ApiError(Code.INVALID_REQUEST, error.detail) from None
    await gateway.execute(
        Deposit(
            account_id=account_id,
            amount=amount,
            currency=body.currency,
            cost_price=cost_price,
            correlation_id=correlation_id,
        )
    )
    return json_response(await _account_out(gateway, admin, account_id))


@router.get("/tiers", response_model=TiersPage, summary="List assessment tiers")
async def tiers(gateway: GatewayDep) -> Response:
    """The assessment tiers the engine is configured with (public)."""
    items = [convert.tier_dict(tier) for tier in views.tiers(gateway.engine).values()]
    return json_response(page(sorted(items, key=lambda t: t["name"])))
