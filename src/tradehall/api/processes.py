"""The processes of `tradehall serve --workers N`, each started by the supervisor.

    python -m tradehall.cli.processes engine
    python -m tradehall.cli.processes gateway

The engine process is today's service without HTTP: the runner (the single writer: sequencer,
journal, engine), the projector, the clock, sessions, bus and feeds; it takes commands from the
gateways (`EngineEndpoint`) and publishes its durable records to them (`RecordPublisher`). A gateway
process serves the whole HTTP/WebSocket API on the supervisor's listening socket over a replica of
the engine (`FollowerRunner`): it parses, authenticates, validates and rate-limits locally, sends
commands to the engine process and answers with its durable results. Settings come from the
environment (TRADEHALL_*), as for `tradehall serve`.
"""

from __future__ import annotations

import asyncio
import signal

import uvicorn

from tradehall.api.app import create_app
from tradehall.api.auth import hash_password
from tradehall.api.fastpath import TradehallApp
from tradehall.api.server import uvicorn_config
from tradehall.service.follower import FollowerRunner, RecordPublisher, records_address
from tradehall.service.runner import RunnerConfig
from tradehall.service.settings import Settings
from tradehall.service.supervisor import inherited_listener
from tradehall.service.transport import EngineEndpoint, engine_address
from tradehall.service.wiring import Service, engine_factory


async def run_engine(settings: Settings) -> None:
    """Until SIGTERM/SIGINT; the endpoint binds last, so its socket file says the engine is ready."""
    service = Service(settings)
    await service.start(password_hasher=hash_password)
    publisher = RecordPublisher(records_address(settings.data_dir))
    service.add_listener(publisher.on_records)
    endpoint = EngineEndpoint(
        engine_address(settings.data_dir),
        service.runner.submit_many,
        lambda: service.runner.durable_seq,
        on_revoked=publisher.on_revoked,
        max_batch=settings.group_commit_max_batch,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await endpoint.start()
    try:
        await stop.wait()
    finally:
        await endpoint.stop()
        await service.stop()
        publisher.close()


def run_gateway(settings: Settings) -> None:
    """The API over a replica, accepting on the supervisor's socket."""
    listener = inherited_listener()
    if listener is None:
        raise SystemExit("a gateway process takes its listening socket from `tradehall serve --workers N`")
    runner = FollowerRunner(
        engine_factory(),
        RunnerConfig.from_settings(settings),
        engine_address=engine_address(settings.data_dir),
        records_from=records_address(settings.data_dir),
    )
    app = create_app(settings, service=Service(settings, runner=runner))
    assert isinstance(app, TradehallApp)
    app.read_barrier = runner.catch_up
    host, port = listener.getsockname()[:2]
    uvicorn.Server(uvicorn_config(app, settings, host=host, port=port)).run(sockets=[listener])
