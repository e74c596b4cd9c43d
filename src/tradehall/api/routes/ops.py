"""Operations: liveness, readiness with its checks, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tradehall.api.gateway import GatewayDep
from tradehall.api.metrics import PROJECTION_LAG, render
from tradehall.api.monitor import Health, MonitorRuntime
from tradehall.api.routes.common import json_response
from tradehall.api.schemas import HealthOut, ReadyOut
from tradehall.service.feeds_process import FEEDS_STATUS_FILE
from tradehall.service.supervisor import read_status, read_status_file

router = APIRouter(tags=["operations"])

MAX_READY_LAG = 100_000
"""Read models further behind the journal than this many records make the process not ready."""


@router.get(
    "/health",
    response_model=HealthOut,
    summary="Liveness",
    description="200 while the process runs. Public.",
)
async def health() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "A check fails"}},
    summary="Readiness",
    description="200 `ready` when the engine, journal, read-model store, bus and feeds are all well, "
    "else 503 `not_ready`; `checks` shows each one, and `monitor` the alerts' health (HEALTHY, DEGRADED, "
    "CRITICAL) and the alerts firing. A cluster gateway adds `checks.shards`: per shard whether a leader "
    "holds its lease and this gateway's replica of it follows its stream (503 when one does not). Public: "
    "the store's and the shards' checks run at most once a second, shared by every request.",
)
async def ready(gateway: GatewayDep, request: Request) -> Response:
    service = gateway.service
    engine_ok = service.runner_alive()
    journal_ok = service.journal_writable()
    store_ok = await gateway.store_check.get()  # at most one round a second, shared (a public endpoint)
    lag = service.projection_lag
    PROJECTION_LAG.set(lag)
    projection_ok = service.projection_failed is None and lag <= MAX_READY_LAG
    checks: dict[str, Any] = {
        "engine": {"ok": engine_ok, "seq": service.runner.last_seq if engine_ok else None},
        "journal": {"ok": journal_ok, "durable_seq": service.runner.durable_seq},
        "store": {
            "ok": store_ok,
            "projected_seq": service.projected_seq,
            "lag": lag,
            "projector_ok": projection_ok,
        },
        "bus": {"ok": True, "backend": gateway.settings.bus},
    }
    good = engine_ok and journal_ok and store_ok and projection_ok
    publisher = service.integrations.publisher
    if publisher is not None:
        # unhealthy from a failed publish until the next one succeeds (the backlog then drains)
        checks["bus"] = {
            "ok": publisher.healthy,
            "backend": gateway.settings.bus,
            "published_seq": publisher.published_seq,
            "lag": max(0, service.runner.durable_seq - publisher.published_seq),
            "backlog": publisher.backlog,
        }
        good = good and publisher.healthy
    cluster = gateway.cluster
    if cluster is not None:  # a cluster gateway: each shard has a live leader, its replica follows
        shards_ok, shards = await cluster.ready_check()
        checks["shards"] = {"ok": shards_ok, **shards}
        good = good and shards_ok
    registry = gateway.feeds if gateway.feeds is not None else service.integrations.feeds
    if registry is not None:
        feeds_ok, feeds = registry.ready_check()
        checks["feeds"] = {"ok": feeds_ok, "feeds": feeds}
        good = good and feeds_ok
    supervised = read_status(gateway.settings.data_dir)
    if supervised is not None:  # `serve --workers N`: which of the processes is down
        children = supervised.get("children")
        processes = dict(children) if isinstance(children, dict) else {}
        processes_ok = all(isinstance(child, dict) and child.get("up") for child in processes.values())
        checks["processes"] = {"ok": processes_ok, **processes}
        good = good and processes_ok
        if "feeds" in processes and registry is None:  # the feeds process's own report
            report = read_status_file(gateway.settings.data_dir / FEEDS_STATUS_FILE)
            feeds_ok = report is not None and report.get("ok") is True
            checks["feeds"] = {"ok": feeds_ok, "feeds": [] if report is None else report.get("feeds", [])}
            good = good and feeds_ok
    monitor: MonitorRuntime | None = getattr(request.app.state, "monitor", None)
    if monitor is not None:
        # the alerts' verdict; CRITICAL fails readiness only with TRADEHALL_MONITOR_CRITICAL_NOT_READY
        status = monitor.monitor.status()
        critical = status["health"] == Health.CRITICAL
        checks["monitor"] = {"ok": not critical, **status}
        if critical and gateway.settings.monitor_critical_not_ready:
            good = False
    return json_response({"status": "ready" if good else "not_ready", "checks": checks}, 200 if good else 503)


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    description="Prometheus text format: orders, order latency, trades, journal fsync, feeds, bus and "
    "WebSocket connections. Public.",
)
async def metrics() -> Response:
    body, content_type = render()
    return Response(body, media_type=content_type)
