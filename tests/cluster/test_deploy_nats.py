"""The documented deployment's NATS configuration (deploy/nats/cluster.conf) forms a JetStream cluster.

The very file compose and the systemd units use, on three servers in namespaces where the names
nats1..nats3 resolve to them (as compose's DNS does): they form one cluster with one meta leader and
hold a stream with three replicas.
"""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
from nats.js.api import StorageType, StreamConfig

from tests.cluster.netns import NatsCluster, Network

CONFIG = Path(__file__).parents[2] / "deploy" / "nats" / "cluster.conf"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_the_deployed_configuration_forms_a_cluster(network: Network) -> None:
    cluster = NatsCluster(network, 3, config=CONFIG)
    cluster.start()
    leader = cluster.wait_formed()
    assert leader in {"nats1", "nats2", "nats3"}
    client = await nats.connect(cluster.urls, connect_timeout=2)
    try:
        js = client.jetstream(timeout=5)
        await js.add_stream(StreamConfig(name="DEPLOY", subjects=["deploy.>"], num_replicas=3,
                                         storage=StorageType.FILE))
        ack = await js.publish("deploy.x", b"1")
        info = await js.stream_info("DEPLOY")
        assert ack.seq == 1 and info.cluster is not None and info.cluster.name == "tradehall"
        assert len(info.cluster.replicas or []) == 2
    finally:
        await client.close()
    jsz = cluster.servers[0].monitor("jsz")
    assert jsz is not None and jsz["meta_cluster"]["cluster_size"] == 3
