"""The processes of `tradehall serve --workers N`, each started by the supervisor.

    python -m tradehall.cli.processes engine|gateway|projector|feeds

The engine process is today's service without HTTP, the read models and the feeds: the runner (the
single writer: sequencer, journal, engine), the clock, sessions and the bus; it takes commands from
the gateways and the feeds process (`EngineEndpoint`) and publishes its durable records
(`RecordPublisher`) to the gateways and the projector process (`service.projection`), which writes
the read models; the feeds process (`service.feeds_process`) submits quotes and marks. A gateway
process serves the whole HTTP/WebSocket API on the supervisor's listening socket over a replica of
the engine (`FollowerRunner`): it parses, authenticates, validates and rate-limits locally, sends
commands to the engine process and answers with its durable results. Settings come from the
environment (TRADEHALL_*), as for `tradehall serve`.
"""

from __future__ import annotations

import uvicorn

from tradehall.api.app import create_app
from tradehall.api.auth import settings_password_hash
from tradehall.api.fastpath import TradehallApp
from tradehall.api.server import uvicorn_config
from tradehall.service.follower import FollowerRunner, RecordPublisher, records_address
from tradehall.service.runner import RunnerConfig
from tradehall.service.settings import Settings
from tradehall.service.status_page import EngineStatus, status_path
from tradehall.service.supervisor import inherited_listener, stop_on_signals
from tradehall.service.transport import EngineEndpoint, engine_address
from tradehall.service.wiring import Service, engine_factory


async def run_engine(settings: Settings) -> None:
    """Until SIGTERM/SIGINT; the endpoint binds last, so its socket file says the engine is ready."""
    service = Service(settings, project=False, feeds=False)  # their own processes do both
    await service.start(password_hasher=settings_password_hash(settings))
    status = EngineStatus(status_path(settings.data_dir))
    status.durable_seq = service.runner.durable_seq  # what this run recovered, before any gateway asks
    publisher = RecordPublisher(records_address(settings.data_dir), status)
    service.add_listener(publisher.on_records)
    endpoint = EngineEndpoint(
        engine_address(settings.data_dir),
        service.runner.submit_many,
        lambda: service.runner.durable_seq,
        on_revoked=publisher.on_revoked,
        status=status,
        max_batch=settings.group_commit_max_batch,
    )
    stop = stop_on_signals()
    await endpoint.start()
    try:
        await stop.wait()
    finally:
        await endpoint.stop()
        await service.stop()
        publisher.close()
        status.close()


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
        status=EngineStatus(status_path(settings.data_dir)),
    )
    app = create_app(settings, service=Service(settings, runner=runner))
    assert isinstance(app, TradehallApp)
    app.read_barrier = runner.catch_up
    app.credential_check = runner.check_revocations
    host, port = listener.getsockname()[:2]
    uvicorn.Server(uvicorn_config(app, settings, host=host, port=port)).run(sockets=[listener])
