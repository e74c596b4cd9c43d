"""The venue's own books (system accounts, conservation per currency) and the manual clock (admin)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from tradehall.api import convert
from tradehall.api.errors import ApiError
from tradehall.api.gateway import AdminDep, CorrelationDep, Gateway, GatewayDep
from tradehall.api.routes.common import ERRORS, LATEST_NS, json_response, page, time_ns
from tradehall.api.schemas import ClockOut, ClockRequest, ConservationPage, SystemAccountsPage
from tradehall.domain.commands import AdvanceTime
from tradehall.domain.errors import Code
from tradehall.domain.fixedpoint import amount_of
from tradehall.engine import views
from tradehall.store.models import LedgerEntry

router = APIRouter(tags=["admin"], responses=ERRORS)

_CONSISTENT_READS = 5
"""Tries at reading the engine and the read models at the same point (a command may land between)."""


@router.get(
    "/admin/system-accounts",
    response_model=SystemAccountsPage,
    summary="The venue's system accounts (admin)",
    description="Every system account with its balance per currency: `system:fees`, "
    "`system:perp_settlement` (perp clearing: P&L and funding), `system:insurance`, `system:venue`, "
    "one `system:collateral:<market>` per binary market, and `system:external`, the outside world's "
    "side of deposits and withdrawals (minus what came in, net). All system accounts but "
    "`system:external` hold the venue's own money.",
)
async def system_accounts(_admin: AdminDep, gateway: GatewayDep) -> Response:
    engine = gateway.engine
    items = [
        {
            "name": name,
            "currency": currency,
            "balance": convert.dec(amount_of(total, views.currency_places(engine, currency))),
        }
        for name, currency, total in views.system_account_balances(engine)
    ]
    return json_response(page(items))


def _deposits_and_withdrawals(session: Session) -> dict[str, tuple[Decimal, Decimal]]:
    """Per currency, the sums of every deposit and every withdrawal the read models' ledger shows."""
    query = (
        select(LedgerEntry.currency, LedgerEntry.type, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.type.in_(("deposit", "withdrawal")))
        .group_by(LedgerEntry.currency, LedgerEntry.type)
    )
    sums: dict[str, tuple[Decimal, Decimal]] = {}
    for currency, kind, total in session.execute(query):
        deposits, withdrawals = sums.get(currency, (Decimal(0), Decimal(0)))
        if kind == "deposit":
            deposits += Decimal(total)
        else:
            withdrawals -= Decimal(total)  # a withdrawal's ledger amount is negative
        sums[currency] = (deposits, withdrawals)
    return sums


def _net(flows: dict[str, tuple[Decimal, Decimal]], currency: str) -> Decimal:
    deposits, withdrawals = flows.get(currency, (Decimal(0), Decimal(0)))
    return deposits - withdrawals


async def _conservation(gateway: Gateway) -> list[dict[str, str]]:
    engine = gateway.engine
    service = gateway.service
    for _ in range(_CONSISTENT_READS):
        await service.read_barrier()
        flows = await service.store.call(_deposits_and_withdrawals)
        money = views.money_by_currency(engine)  # no await from here on: one point of the engine
        if all(
            amount_of(-external, views.currency_places(engine, currency)) == _net(flows, currency)
            for currency, (_, _, external) in money.items()
        ):
            break
    items = []
    for currency in sorted(set(money) | set(flows)):
        places = views.currency_places(engine, currency)
        users, system, _external = money.get(currency, (0, 0, 0))
        deposits, withdrawals = flows.get(currency, (Decimal(0), Decimal(0)))
        user_balances = amount_of(users, places)
        system_balances = amount_of(system, places)
        difference = user_balances + system_balances - (deposits - withdrawals)
        items.append(
            {
                "currency": currency,
                "deposits": convert.dec(deposits),
                "withdrawals": convert.dec(withdrawals),
                "user_balances": convert.dec(user_balances),
                "system_balances": convert.dec(system_balances),
                "difference": convert.dec(difference) if difference else "0",
            }
        )
    return items


@router.get(
    "/admin/conservation",
    response_model=ConservationPage,
    summary="Money conservation per currency (admin)",
    description="Per currency: `deposits` and `withdrawals` (all time, from the ledger), the sum of "
    "users' balances and of the system accounts' (but `system:external`), and `difference` = "
    "user_balances + system_balances - (deposits - withdrawals), which is always `0`: no rule "
    "creates or destroys money. Read at one point of the engine and the ledger (under heavy "
    "trading the read retries until both show the same commands).",
)
async def conservation(_admin: AdminDep, gateway: GatewayDep) -> Response:
    return json_response(page(await _conservation(gateway)))


def _seconds_ns(value: int | float | str) -> int:
    if isinstance(value, bool):
        raise ApiError(Code.INVALID_REQUEST, "advance_seconds must be a number")
    try:
        seconds = Decimal(str(value))
    except InvalidOperation:
        raise ApiError(Code.INVALID_REQUEST, "advance_seconds must be a number") from None
    if not seconds.is_finite():
        raise ApiError(Code.INVALID_REQUEST, "advance_seconds must be a finite number")
    ns = seconds * 1_000_000_000
    if ns != ns.to_integral_value():
        raise ApiError(Code.INVALID_REQUEST, "advance_seconds is finer than a nanosecond")
    if ns < 0:
        raise ApiError(Code.CONFLICT, "the clock moves forward only")
    return int(ns)


@router.post(
    "/admin/clock",
    response_model=ClockOut,
    summary="Move the manual clock (admin; TRADEHALL_CLOCK=manual only)",
    description="Moves the sequencer's clock forward by `advance_seconds` (a number or decimal "
    "string) or to `set_to` (RFC 3339), then lets the engine act on the new time (DAY/GTD expiries, "
    "market close times, funding, daily resets); answers `{now}`. Exactly one of the two. Backwards "
    "(a negative advance, a `set_to` in the past) is 409 `conflict`; so is any call on a server that "
    "runs with the wall clock. For tests and demos, never production.",
)
async def move_clock(
    body: ClockRequest, _admin: AdminDep, gateway: GatewayDep, correlation_id: CorrelationDep
) -> Response:
    gateway.require_engine_process("the manual clock")
    clock = gateway.service.manual_clock
    if clock is None:
        raise ApiError(
            Code.CONFLICT, "this server runs with the wall clock (TRADEHALL_CLOCK=manual moves it)"
        )
    if (body.advance_seconds is None) == (body.set_to is None):
        raise ApiError(Code.INVALID_REQUEST, "give exactly one of advance_seconds and set_to")
    now = clock.peek_ns()
    if body.advance_seconds is not None:
        target = now + _seconds_ns(body.advance_seconds)
    else:
        target = time_ns(body.set_to, "set_to") or 0
        if target < now:
            raise ApiError(
                Code.CONFLICT, f"set_to is before the clock's {convert.rfc3339_ns(now)}: forward only"
            )
    if target > LATEST_NS:
        raise ApiError(Code.INVALID_REQUEST, "the clock cannot pass 2262")
    clock.set(target)
    await gateway.execute(AdvanceTime(correlation_id=correlation_id))
    return json_response({"now": convert.rfc3339_ns(clock.peek_ns())})
