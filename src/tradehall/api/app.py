"""The FastAPI application: `create_app(settings)` wires the service, routers, middleware and /ws."""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from random import getrandbits
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradehall.api import fastpath
from tradehall.api.alpaca import mount as alpaca
from tradehall.api.auth import Authenticator, settings_password_hash
from tradehall.api.body import RequestBody
from tradehall.api.docs_pages import DESCRIPTION, install_docs
from tradehall.api.errors import install_error_handlers
from tradehall.api.gateway import Gateway
from tradehall.api.metrics import REQUEST_LATENCY, labelled, timed_fsync, watch_conservation
from tradehall.api.monitor import MonitorRuntime
from tradehall.api.routes import (
    accounts,
    admin,
    alerts,
    analytics,
    auth,
    backtests,
    cluster,
    markets,
    ops,
    orders,
    positions,
    sessions,
    settlements,
    strategies,
)
from tradehall.api.ws import WebSocketHub
from tradehall.api.ws import router as ws_router
from tradehall.service.follower import FollowerRunner
from tradehall.service.settings import Settings
from tradehall.service.wiring import Service, engine_factory
from tradehall.web import install_web

if TYPE_CHECKING:
    from tradehall.service.cluster.gateway import ClusterConnection

log = structlog.get_logger(__name__)

_SAFE_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


_STATUS_CLASS = [f"{n}xx" for n in range(10)]


def request_id_of(raw: bytes | None) -> str:
    """The caller's X-Request-ID when it is a sane token, else a fresh one: 128 random bits as 32 hex
    digits, like `uuid4().hex`, from the process's seeded generator (an identifier, not a secret;
    `uuid4` reads the OS's random source on every call, 8 µs a request here against 1.3 µs)."""
    if raw:
        text = raw.decode("latin-1")
        if 0 < len(text) <= 128 and all(ch in _SAFE_ID for ch in text):
            return text
    return f"{getrandbits(128):032x}"


class RequestContext:
    """X-Request-ID in and out, the structlog correlation id, and request latency per route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                raw = value
                break
        request_id = request_id_of(raw)
        scope.setdefault("state", {})["correlation_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=request_id)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                headers.append(header)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            latency = labelled(REQUEST_LATENCY, method, template, _STATUS_CLASS[status // 100])
            latency.observe(time.perf_counter() - started)


def create_app(settings: Settings | None = None, *, service: Service | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = service or Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start(password_hasher=settings_password_hash(settings))
        if not runtime.follower:  # a gateway process's engine is a replica: it writes no journal
            journal = runtime.runner.journal
            journal.sync = timed_fsync(journal.sync)  # type: ignore[method-assign]
        gateway = Gateway(settings, runtime, Authenticator(settings, runtime.store))
        if isinstance(runtime.runner, FollowerRunner):  # a gateway process: revocations reach them all
            runtime.runner.revocation_listeners.append(gateway.auth.forget_key)
            runtime.runner.on_missed_revocations = gateway.auth.forget_all_keys
            gateway.auth.broadcast_revocation = runtime.runner.revoke
        runtime.add_listener(gateway.volumes.on_records)
        runtime.add_listener(gateway.candles.on_records)
        hub = WebSocketHub(gateway)
        runtime.add_listener(hub.on_records)
        runtime.session_publishers.append(hub.session_update)
        gateway.candles.listeners.append(hub.on_candle)
        cluster = await _join_cluster(settings, gateway)
        if gateway.cluster is not None:
            follow_shards(gateway, hub)
        await gateway.load_volumes()  # the 24 h window's earlier trades, from the read models
        app.state.gateway = gateway
        app.state.alpaca = alpaca.AlpacaSurface(gateway)
        app.state.alpaca_updates = alpaca.TradeUpdates(app.state.alpaca)
        runtime.add_listener(app.state.alpaca_updates.on_records)
        app.state.hub = hub
        app.state.service = runtime
        monitor = MonitorRuntime(settings, runtime, hub)
        app.state.monitor = monitor
        await monitor.start()
        watch_conservation(lambda: runtime.engine)
        # long-lived objects (engine state, routes, schemas) need no more scanning by the collector, and
        # a request allocates hundreds of short-lived objects: collect the young generation less often
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        try:
            yield
        finally:
            await monitor.close()
            await hub.close()
            await gateway.backtests.close()
            await gateway.auth.flush_last_used()  # API keys' last uses not yet stored
            if cluster is not None:
                await cluster.close()
            await runtime.stop()
            gateway.auth.close()  # the password-hashing threads

    app = fastpath.TradehallApp(
        title="tradehall",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load their assets from a CDN: install_docs serves them locally
        redoc_url=None,
    )
    install_error_handlers(app)
    modules = (
        auth,
        accounts,
        markets,
        analytics,
        orders,
        positions,
        ops,
        settlements,
        admin,
        cluster,
        strategies,
        sessions,
        backtests,
        alerts,
    )
    routers = [module.router for module in modules]
    for router in routers:
        app.include_router(router)
    app.include_router(ws_router)
    install_docs(app, routers)
    install_web(app)  # the dashboard at `/`
    alpaca.install(app)
    app.router.routes[0:0] = fastpath.ROUTES
    app.add_middleware(RequestBody, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext)
    app.hot_path = RequestContext(RequestBody(app.run_hot, max_bytes=settings.max_body_bytes))
    return app


def follow_shards(gateway: Gateway, hub: WebSocketHub) -> None:
    """A cluster gateway's live views follow the shards' replicas, not its own idle runner: the
    ticker's 24 h volumes, the in-memory candles (the `candles:` channel) and the WebSocket hub."""
    cluster = gateway.cluster
    assert cluster is not None
    cluster.follow(gateway.volumes.on_records)
    cluster.follow(gateway.candles.on_records)
    cluster.follow(hub.on_records)


async def _join_cluster(settings: Settings, gateway: Gateway) -> ClusterConnection | None:
    """With a shard map (docs/cluster.md): commands go to the shards' leaders, reads to their replicas."""
    from tradehall.service.cluster.gateway import cluster_shard_map, connect

    shard_map = cluster_shard_map(settings)
    if shard_map is None:
        return None
    connection = await connect(settings, shard_map, engine_factory())
    gateway.cluster = connection.gateway
    store = gateway.service.store
    # history reads wait (best effort) for the shards' projections to show what the replicas applied
    gateway.service.read_barriers.append(lambda timeout: connection.wait_projected(store, timeout))
    connection.start_recovery()
    return connection


def app_factory() -> Any:
    """For `uvicorn --factory tradehall.api.app:app_factory`."""
    return create_app(Settings())
