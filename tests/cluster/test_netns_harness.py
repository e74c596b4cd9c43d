"""The harness alone: three nats-servers in namespaces form a JetStream cluster that behaves like one.

An R=3 stream stores a publish; the node leading the stream, cut off by taking its link down, stops
storing (no quorum) while the other two elect a new leader and keep storing; after healing, the cut-off
node catches up and all three hold the same messages. Also: the fixture leaves nothing behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
from nats.js.api import StorageType, StreamConfig

from tests.cluster.netns import MARKERS, NATS_HTTP_PORT, NatsCluster, NatsNode, Network, wait_for

PROBE = Path(__file__).with_name("probe.py")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def probe(network: Network, server: NatsNode, *args: str) -> dict[str, Any]:
    """Runs probe.py inside `server`'s namespace, against that server on 127.0.0.1."""
    done = network.run(server.node, [sys.executable, str(PROBE), *args])
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def stream_state(server: NatsNode, name: str, via: Network | None = None) -> dict[str, Any] | None:
    """`server`'s own view of stream `name` (its /jsz), from inside its namespace when `via` is given."""
    path = "jsz?streams=true"
    if via is not None:
        jsz: dict[str, Any] | None = probe(via, server, "get", f"http://127.0.0.1:{NATS_HTTP_PORT}", path)
    else:
        jsz = server.monitor(path)
    for account in (jsz or {}).get("account_details", []):
        for stream in account.get("stream_detail", []):
            if stream["name"] == name:
                found: dict[str, Any] = stream
                return found
    return None


async def test_three_servers_form_a_cluster_and_survive_a_partition(
    network: Network, nats_cluster: NatsCluster
) -> None:
    client = await nats.connect(nats_cluster.urls, connect_timeout=2)
    try:
        js = client.jetstream(timeout=5)
        await js.add_stream(StreamConfig(
            name="PROBE", subjects=["probe.>"], num_replicas=3, storage=StorageType.FILE
        ))
        first = await js.publish("probe.a", b"1")
        assert (first.stream, first.seq) == ("PROBE", 1)
        info = await js.stream_info("PROBE")
        assert info.cluster is not None and info.cluster.leader is not None
        assert len(info.cluster.replicas or []) == 2
        leader = nats_cluster.server(info.cluster.leader)
    finally:
        await client.close()

    network.partition(leader.node)
    cut_off = probe(network, leader, "publish", f"nats://127.0.0.1:{4222}", "probe.b", "3")
    assert cut_off["ok"] is False, "a node cut off from its peers still stored a message"

    others = [server for server in nats_cluster.servers if server is not leader]
    majority = await nats.connect([server.url for server in others], connect_timeout=2)
    try:
        js = majority.jetstream(timeout=3)

        async def new_leader() -> str | None:
            try:
                info = await js.stream_info("PROBE")
            except Exception:
                return None
            return info.cluster.leader if info.cluster and info.cluster.leader != leader.server_name else None

        deadline = 30.0
        elected = None
        while elected is None and deadline > 0:
            elected = await new_leader()
            if elected is None:
                await _sleep(0.2)
                deadline -= 0.2
        assert elected in {server.server_name for server in others}, nats_cluster.logs()
        stored = [await js.publish("probe.c", str(n).encode()) for n in range(2)]
        assert [ack.seq for ack in stored] == [2, 3]
    finally:
        await majority.close()

    # the cut-off node no longer leads the stream in its own eyes (it lost quorum and stepped down)
    wait_for(
        lambda: (stream_state(leader, "PROBE", via=network) or {}).get("cluster", {}).get("leader")
        != leader.server_name,
        30, "the cut-off node to step down", 0.5,
    )

    network.heal(leader.node)

    def converged() -> bool:
        states = [stream_state(server, "PROBE") for server in nats_cluster.servers]
        return all(state is not None and state["state"]["last_seq"] == 3 for state in states)

    wait_for(converged, 30, "the healed node to catch up", 0.3, nats_cluster.logs)
    healed = await nats.connect(leader.url, connect_timeout=2)
    try:
        # a rejoined server answers "JetStream system temporarily unavailable" (503) until its
        # JetStream has rejoined the meta group, which can come after its copy of the stream caught up
        message = None
        deadline = 30.0
        while message is None:
            try:
                message = await healed.jetstream(timeout=3).get_msg("PROBE", 3)
            except nats.js.errors.ServiceUnavailableError:
                assert deadline > 0, f"the healed node's JetStream never answered\n{nats_cluster.logs()}"
                await _sleep(0.2)
                deadline -= 0.2
        assert message.data == b"1"
    finally:
        await healed.close()


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def test_the_network_is_removed_after_use(tmp_path: Path) -> None:
    from tests.cluster.netns import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    network = Network(tmp_path / "net")
    node = network.add_node("solo")
    sleeper = network.spawn(node, "sleeper", ["sleep", "300"])
    assert network.run(node, ["ip", "-4", "-o", "addr", "show"]).stdout.count(node.address) == 1
    network.close()
    assert not sleeper.alive()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert node.netns not in namespaces
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert network.bridge not in links and node.bridge_veth not in links
    assert not (MARKERS / f"{network.id}.json").exists()


def test_a_dead_run_s_leftovers_are_swept(tmp_path: Path) -> None:
    from tests.cluster.netns import sweep_leftovers, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    network = Network(tmp_path / "net")
    node = network.add_node("orphan")
    sleeper = network.spawn(node, "sleeper", ["sleep", "300"])
    try:
        gone = subprocess.Popen(["true"])
        gone.wait()
        marker = MARKERS / f"{network.id}.json"
        record = json.loads(marker.read_text())
        marker.write_text(json.dumps({**record, "owner": gone.pid}))  # as if its pytest was SIGKILLed
        assert network.id in sweep_leftovers()
        assert sleeper.process.wait(10) == -9  # the processes inside the namespace, found by `ip netns pids`
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert node.netns not in namespaces
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
        assert network.bridge not in links and node.bridge_veth not in links
    finally:
        network.close()
