"""Processes for tests/e2e/test_supervisor.py: a supervisor, an engine process, minimal gateways.

    python supervised_child.py supervise DATA_DIR PORT GATEWAYS
    python supervised_child.py engine DATA_DIR
    python supervised_child.py gateway DATA_DIR

The engine process runs the runner (journal, fsync `batch`) behind the ZeroMQ endpoint; a gateway
accepts HTTP on the supervisor's socket and forwards `POST /orders` (a PlaceOrder as JSON) over the
transport, answering with the durable result and its own pid; `GET /pid` answers its pid.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import msgspec
import structlog
import uvicorn

sys.path.insert(0, str(Path(__file__).parent))

from crash_runner_child import setup_commands

from tradehall.domain.commands import AnyCommand
from tradehall.engine import Engine
from tradehall.journal import EngineFactory
from tradehall.service.runner import EngineRunner, RunnerConfig, RunnerError
from tradehall.service.supervisor import (
    STATUS_FILE,
    ChildSpec,
    Supervisor,
    arm_lifeline,
    bind_listener,
    inherited_listener,
)
from tradehall.service.transport import EngineClient, EngineEndpoint, engine_address

_command_decoder = msgspec.json.Decoder(AnyCommand)


def quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))


async def engine(data_dir: Path) -> None:
    config = RunnerConfig(journal_dir=data_dir / "journal", snapshot_dir=data_dir / "snapshots",
                          fsync="batch", segment_bytes=64 * 1024, snapshot_every_commands=300,
                          max_wait_ms=0.5)
    runner = EngineRunner(EngineFactory(Engine, Engine.restore), config)
    await runner.start()
    if runner.last_seq == 0:
        await runner.submit_many(setup_commands())
    endpoint = EngineEndpoint(engine_address(data_dir), runner.submit_many, lambda: runner.durable_seq)
    await endpoint.start()
    await asyncio.Event().wait()


def gateway_app(client: EngineClient) -> Any:
    pid = str(os.getpid()).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await client.start()
                    await send({"type": "lifespan.startup.complete"})
            await client.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, payload = 200, pid
        if scope["method"] == "POST":
            try:
                result = await client.submit(_command_decoder.decode(body))
            except RunnerError as exc:
                status, payload = 503, json.dumps({"error": str(exc)}).encode()
            else:
                digest = hashlib.sha256(msgspec.msgpack.encode(result.events)).hexdigest()
                payload = json.dumps({"pid": os.getpid(), "seq": result.seq, "digest": digest,
                                      "events": [type(event).__name__ for event in result.events]}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    return app


def gateway(data_dir: Path) -> None:
    listener = inherited_listener()
    assert listener is not None
    client = EngineClient(engine_address(data_dir), timeout=5.0)
    config = uvicorn.Config(gateway_app(client), log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[listener])


def supervise(data_dir: Path, port: int, gateways: int) -> None:
    me = [sys.executable, __file__]
    children = [ChildSpec("engine", [*me, "engine", str(data_dir)])]
    children += [ChildSpec(f"gateway-{n}", [*me, "gateway", str(data_dir)]) for n in range(1, gateways + 1)]
    supervisor = Supervisor(children, status_path=data_dir / STATUS_FILE,
                            listener=bind_listener("127.0.0.1", port))
    sys.exit(supervisor.run())


if __name__ == "__main__":
    quiet()
    role, directory = sys.argv[1], Path(sys.argv[2])
    if role == "supervise":
        supervise(directory, int(sys.argv[3]), int(sys.argv[4]))
    else:
        arm_lifeline()
        if role == "engine":
            asyncio.run(engine(directory))
        else:
            gateway(directory)
