"""Shared test helpers: real services on 127.0.0.1, required in CI, skipped with a reason elsewhere."""

from __future__ import annotations

import os
import socket

import pytest

REQUIRE_SERVICES = os.environ.get("TRADEHALL_REQUIRE_SERVICES") == "1"

SERVICES: dict[str, tuple[str, int]] = {
    "postgresql": ("127.0.0.1", 5432),
    "redis": ("127.0.0.1", 6379),
    "nats": ("127.0.0.1", 4222),
    "rabbitmq": ("127.0.0.1", 5672),
}


def service_reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str) -> None:
    """Skip (on a laptop) or fail (in CI, TRADEHALL_REQUIRE_SERVICES=1) when `name` is not running."""
    host, port = SERVICES[name]
    if service_reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and TRADEHALL_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(f"{message}; start it to run this test (CI requires it)")


@pytest.fixture
def postgresql_available() -> None:
    require_service("postgresql")


@pytest.fixture
def redis_available() -> None:
    require_service("redis")


@pytest.fixture
def nats_available() -> None:
    require_service("nats")
