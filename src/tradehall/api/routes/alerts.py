"""The monitor's alerts: their history and the rules (admins only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from tradehall.api.convert import rfc3339
from tradehall.api.gateway import AdminDep, GatewayDep
from tradehall.api.monitor import MonitorRuntime
from tradehall.api.routes.common import ERRORS, Cursor, Limit, json_response, page
from tradehall.store import alerts as alert_store
from tradehall.store.models import AlertRecord

router = APIRouter(tags=["alerts"])


def alert_out(row: AlertRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "rule": row.rule,
        "severity": row.severity,
        "status": row.status,
        "value": row.value,
        "started_at": rfc3339(row.started_at),
        "resolved_at": None if row.resolved_at is None else rfc3339(row.resolved_at),
    }


def monitor_of(request: Request) -> MonitorRuntime:
    runtime: MonitorRuntime = request.app.state.monitor
    return runtime


@router.get(
    "/alerts",
    summary="Alert history",
    description="Alerts newest first (by when they fired), each `{id, rule, severity, status: firing|"
    "resolved, value, started_at, resolved_at}`, with cursor pagination; `status` and `rule` filter. "
    "Admins only.",
    responses={k: ERRORS[k] for k in (400, 401, 403)},
)
async def list_alerts(
    gateway: GatewayDep,
    admin: AdminDep,
    status: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
    rule: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    result = await gateway.service.store.call(
        alert_store.list_alerts, status=status, rule=rule, limit=limit, cursor=cursor
    )
    return json_response(page([alert_out(row) for row in result.items], result.next_cursor))


@router.get(
    "/alerts/rules",
    summary="Alert rules",
    description="The rules the monitor evaluates (the built-ins and TRADEHALL_MONITOR_RULES_FILE), with "
    "the system's health and each rule's state. Admins only.",
    responses={k: ERRORS[k] for k in (401, 403)},
)
async def list_rules(request: Request, admin: AdminDep) -> Response:
    monitor = monitor_of(request).monitor
    items = []
    for rule in monitor.rules:
        state = monitor.states[rule.name]
        items.append(
            {
                **rule.to_json(),
                "firing": state.firing is not None,
                "last_value": state.last_value,
            }
        )
    return json_response({"health": monitor.health.value, "items": items})
