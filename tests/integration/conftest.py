"""Fixtures shared by the integration tests of shards on NATS JetStream (tests/integration/test_cluster_*):
a connection to the NATS on 127.0.0.1:4222 and a unique name prefix whose streams, buckets and object
stores are removed after the test. A module may define its own `prefix` for another service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from tests.conftest import require_service
from tests.integration.cluster_kit import NATS_URL, delete_prefix, unique_prefix


@pytest.fixture
async def nc() -> AsyncIterator[Any]:
    require_service("nats")
    connection = await nats.connect(NATS_URL)
    yield connection
    await connection.close()


@pytest.fixture
async def prefix(nc: Any) -> AsyncIterator[str]:
    name = unique_prefix()
    yield name
    await delete_prefix(nc.jetstream(), name)
