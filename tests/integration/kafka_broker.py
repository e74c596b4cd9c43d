"""A Kafka-protocol test broker started inside the test session (noida-db from PyPI).

`noida-db start --only kafka` runs an in-process-memory Kafka-compatible broker that aiokafka,
idempotent producers included, talks to. In CI (TRADEHALL_REQUIRE_SERVICES=1) a broker that cannot
start fails the tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES, service_reachable

BROKER_PACKAGE = "noida-db"


def broker_binary() -> str | None:
    """The broker binary itself (not the Python wrapper, which would leave it running when killed)."""
    try:
        from importlib.resources import files

        packaged = files("noida_db").joinpath("noida-db")
        if packaged.is_file():
            return str(packaged)
    except ModuleNotFoundError:
        pass
    beside_python = Path(sys.executable).parent / "noida-db"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("noida-db")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class KafkaTestBroker:
    """One broker process on a free port; `restart()` kills it and starts it again on the same port."""

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process owns it until it stops
        self.process = subprocess.Popen(
            [
                self.binary,
                "start",
                "--only",
                "kafka",
                "--data-dir",
                str(self.data_dir / "data"),
                "--kafka-port",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kafka test broker exited: {self.log_path.read_text()[-2000:]}")
            if service_reachable("127.0.0.1", self.port, timeout=0.2):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"kafka test broker did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        """Kill -9: the broker gets no chance to shut down cleanly."""
        if self.process is not None and self.process.poll() is None:
            # The broker's own session: a wrapper script's child dies with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def kafka_test_broker() -> Iterator[KafkaTestBroker]:
    binary = broker_binary()
    if binary is None:
        reason = f"no Kafka test broker: `pip install {BROKER_PACKAGE}` provides one"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason}, and TRADEHALL_REQUIRE_SERVICES=1 requires it", pytrace=False)
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="tradehall-kafka-") as directory:
        broker = KafkaTestBroker(binary, Path(directory))
        try:
            broker.start()
        except (OSError, RuntimeError) as exc:
            if REQUIRE_SERVICES:
                pytest.fail(f"kafka test broker failed to start: {exc}", pytrace=False)
            pytest.skip(f"kafka test broker failed to start: {exc}")
        try:
            yield broker
        finally:
            broker.stop()
