"""A shard's leader dies or is cut off under load; its standby takes over, and nothing is lost or doubled.

Real processes on a real (namespaced) network: three JetStream-clustered nats-servers, two replicas
of shard A (each in its own namespace) and a gateway placing orders with client order ids, retrying
the same order after a takeover. After each failure: every acknowledged order is in the shard's log
once, at its acknowledged seq with its acknowledged events; no client order is accepted twice; a
replay conserves money and equals the survivors' state; a new leader writes only after its epoch
marker; and a deposed leader's own append is refused (fencing).

Set TRADEHALL_CLUSTER_RESULTS=<file> to have the measured takeover times appended there (JSON lines).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.cluster.netns import NatsCluster, Network, nats_server_version, wait_for
from tests.cluster.shard_support import ShardCluster, check_log, first_ack_by, settle, wait_acks
from tradehall.service.cluster.protocol import ReplicaStatus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
STREAM_LEADER_CHANGE_SAFE = (2, 9, 21)
"""The first nats-server whose new stream leader resynchronises its failed-proposal count (PR 4365)."""
TAKEOVER_LIMIT = 5.0
"""The issue's bound: the standby serves within 5 s of the leader's death."""


def record_result(name: str, value: float) -> None:
    target = os.environ.get("TRADEHALL_CLUSTER_RESULTS")
    if target:
        with Path(target).open("a") as out:
            out.write(json.dumps({"bench": "cluster_failover", "workload": name, "metric": "takeover_s",
                                  "value": round(value, 3), "unit": "s"}) + "\n")


def two_replicas(network: Network, nats_cluster: NatsCluster) -> ShardCluster:
    cluster = ShardCluster(network, nats_cluster)
    cluster.start_replica("a")
    cluster.wait_role("a", "leader")
    cluster.start_replica("b")
    cluster.wait_role("b", "standby", caught_up=True)
    return cluster


def test_sigkill_of_the_leader_under_load(network: Network, nats_cluster: NatsCluster) -> None:
    cluster = two_replicas(network, nats_cluster)
    a, b = cluster.replicas["a"], cluster.replicas["b"]
    status, body = b.get("/ready")
    assert status == 200 and json.loads(body)["checks"]["shards"]["A"]["role"] == "standby", body

    load = cluster.start_load(seed=random.randrange(1 << 30))
    wait_acks(load, 150, 90, cluster.logs)
    before = len(load.acks)
    killed_at = time.monotonic()
    a.proc.kill(signal.SIGKILL)
    wait_acks(load, before + 150, 60, cluster.logs)
    load.stop()
    acks = load.acks

    check = check_log(cluster.read_log(), acks)
    assert check.writers == ["a", "b"], check.writers
    takeover = first_ack_by(acks, check, "b", killed_at) - killed_at
    record_result("sigkill_leader", takeover)
    assert takeover < TAKEOVER_LIMIT, f"the standby served {takeover:.2f} s after the kill"
    retried = [ack for ack in acks if ack["attempts"] > 1]
    assert all(ack["t"] > killed_at for ack in retried)

    settled = settle(cluster, check.last_seq, ["b"])
    assert settled["b"].role == "leader" and settled["b"].takeovers == 1
    assert settled["b"].state_hash == check.engine.state_hash()
    status, body = b.get("/ready")
    assert status == 200 and json.loads(body)["checks"]["shards"]["A"]["role"] == "leader", body
    _, metrics = b.get("/metrics")
    assert 'tradehall_shard_takeovers_total{replica="b",shard="A"} 1.0' in metrics
    assert 'tradehall_shard_role{replica="b",role="leader",shard="A"} 1.0' in metrics


def test_partitioned_leader_stops_acknowledging_and_is_fenced(
    network: Network, nats_cluster: NatsCluster
) -> None:
    cluster = two_replicas(network, nats_cluster)
    a = cluster.replicas["a"]

    load = cluster.start_load(seed=random.randrange(1 << 30))
    wait_acks(load, 150, 90, cluster.logs)
    before = len(load.acks)
    cut_at = time.monotonic()
    network.partition(a.node)
    wait_acks(load, before + 150, 60, cluster.logs)
    cluster.wait_role("b", "leader")

    network.heal(a.node)
    # back on the network the old leader follows: standby, caught up, and the only leader is b
    cluster.wait_role("a", "standby", caught_up=True)
    statuses = cluster.statuses()
    assert [rid for rid, status in statuses.items() if status.role == "leader"] == ["b"]
    wait_acks(load, len(load.acks) + 50, 30, cluster.logs)
    load.stop()
    acks = load.acks

    entries = cluster.read_log()
    check = check_log(entries, acks)
    assert check.writers == ["a", "b"], check.writers
    late = [
        ack for ack in acks
        if ack["seq"] and ack["t"] > cut_at + 0.5 and check.leader_of_seq[ack["seq"]] != "b"
    ]
    assert not late, f"the cut-off leader acknowledged {late[:3]}"
    takeover = first_ack_by(acks, check, "b", cut_at) - cut_at
    record_result("partition_leader", takeover)

    # fencing: the old leader, appending where its own writes ended, is refused by JetStream
    a_last = max(entry.stream_seq for entry in entries if entry.leader == "a")
    end = entries[-1].stream_seq
    assert a_last < end
    refused = cluster.fence_probe(a, a_last)
    assert refused["fenced"] is True, refused
    assert refused["last_seq"] >= end

    settled = settle(cluster, check.last_seq, ["a", "b"])
    assert settled["a"].state_hash == settled["b"].state_hash == check.engine.state_hash()
    assert settled["a"].role == "standby" and settled["b"].role == "leader"
    wait_for(lambda: a.get("/ready")[0] == 200, 10, "the healed replica to be ready as a standby")


def test_a_frozen_leader_that_resumes_cannot_write(network: Network, nats_cluster: NatsCluster) -> None:
    """SIGSTOP (a stall: a long pause, a frozen VM) past the lease: the standby takes over; on SIGCONT
    the old leader, with requests queued while it was stopped, writes nothing: it finds its lease gone
    and steps down (an append it still tried would be refused: the partition test proves that)."""
    cluster = two_replicas(network, nats_cluster)
    a = cluster.replicas["a"]
    load = cluster.start_load(seed=random.randrange(1 << 30))
    wait_acks(load, 150, 90, cluster.logs)
    frozen_at = time.monotonic()
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        cluster.wait_role("b", "leader")
        wait_acks(load, len(load.acks) + 100, 60, cluster.logs)
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    cluster.wait_role("a", "standby", caught_up=True)
    wait_acks(load, len(load.acks) + 50, 30, cluster.logs)
    load.stop()
    acks = load.acks

    check = check_log(cluster.read_log(), acks)
    assert check.writers == ["a", "b"], check.writers
    record_result("sigstop_leader", first_ack_by(acks, check, "b", frozen_at) - frozen_at)
    stepped_down = [line for line in a.proc.tail(400).splitlines() if "replica_stepping_down" in line]
    assert stepped_down, a.proc.tail(40)
    settled = settle(cluster, check.last_seq, ["a", "b"])
    assert settled["a"].state_hash == settled["b"].state_hash == check.engine.state_hash()


def test_losing_one_nats_server_keeps_the_shard_serving(
    network: Network, nats_cluster: NatsCluster
) -> None:
    """The NATS server leading the shard's stream is cut off: the other two elect a new stream leader and
    the shard keeps acknowledging (R=3: two of three store), with nothing lost or doubled."""
    version = nats_server_version()
    if version is not None and version < STREAM_LEADER_CHANGE_SAFE:
        pytest.skip(
            f"nats-server {'.'.join(map(str, version))} can lose an acknowledged message when a stream's"
            " leader changes after refused conditional appends (fixed in 2.9.21, nats-server PR 4365);"
            " reproduced here on 2.9.10: a new leader's acknowledged epoch marker was gone from the"
            " stream and the old leader's timed-out batch stood in its place (docs/cluster.md, 'NATS"
            " server version')"
        )
    cluster = two_replicas(network, nats_cluster)
    load = cluster.start_load(seed=random.randrange(1 << 30))
    wait_acks(load, 150, 90, cluster.logs)
    stream_leader = nats_cluster.server(cluster.stream_leader())
    cut_at = time.monotonic()
    network.partition(stream_leader.node)
    wait_acks(load, len(load.acks) + 150, 60, cluster.logs)
    resumed = min(ack["t"] for ack in load.acks if ack["t"] > cut_at + 0.001)
    network.heal(stream_leader.node)
    wait_acks(load, len(load.acks) + 50, 30, cluster.logs)
    load.stop()
    acks = load.acks

    check = check_log(cluster.read_log(), acks)
    record_result("nats_server_lost_first_ack", resumed - cut_at)
    settle(cluster, check.last_seq, ["a", "b"])

    def one_leader() -> list[ReplicaStatus]:  # the lease may change hands once more while the server rejoins
        leaders = [status for status in cluster.statuses().values() if status.role == "leader"]
        return leaders if len(leaders) == 1 else []

    # not "a writer of the log": when the rejoin costs the leader its lease after the load stopped, the
    # new leader's only entry is its epoch marker (seen at load 18: b led with no record of its own)
    (leader,) = wait_for(one_leader, 30, "one leader", 0.3, cluster.logs)
    assert (leader.replica_id in ("a", "b"), leader.applied_seq) == (True, check.last_seq), leader
    assert set(check.writers) <= {"a", "b"}, check.writers
