"""Fixtures of the namespaced cluster tests: a fresh network (and NATS cluster) per test, always removed.

Skipped with the reason when the machine cannot make network namespaces (not root, no iproute2, no
nats-server); with TRADEHALL_REQUIRE_SERVICES=1 (CI) that is a failure instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.netns import NatsCluster, Network, unavailable_reason
from tests.conftest import REQUIRE_SERVICES


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    reason = unavailable_reason()
    if reason is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason}, and TRADEHALL_REQUIRE_SERVICES=1 requires them", pytrace=False)
        pytest.skip(reason)
    net = Network(tmp_path / "net")
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def nats_cluster(network: Network) -> NatsCluster:
    """Three JetStream-clustered nats-servers in namespaces nats1..nats3, formed (meta leader elected)."""
    cluster = NatsCluster(network, 3)
    cluster.start()
    cluster.wait_formed()
    return cluster
