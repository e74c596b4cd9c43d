"""Replicas of one shard and a gateway under load, in namespaces on a `Network`, and the checks after.

`ShardCluster` starts replica processes (`python -m tradehall.service.cluster.replica`) and the load
generator (`load_child.py`) in their own namespaces, asks the replicas for their status over NATS,
and reads the shard's whole stream back. `check_log` is the crash test's checks for a replicated
log: the records are 1..n, each once; every acknowledged order is at its acknowledged seq with its
acknowledged events; a command is in the log twice only as the gateway's resend of the very same
command across a takeover; no client order was accepted twice; a replay from the first record gives
the same events and conserves money; and a new writer only ever starts after its epoch marker
(fencing: no earlier leader's append lands after it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats

from tests.cluster.netns import NatsCluster, Network, Node, Proc, wait_for
from tradehall.domain.events import OrderAccepted
from tradehall.engine import Engine
from tradehall.journal.records import JournalRecord
from tradehall.service.cluster.log import LogEntry, ShardLog
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.protocol import ReplicaStatus
from tradehall.service.cluster.status import gather_status

LOAD = Path(__file__).with_name("load_child.py")
FENCE = Path(__file__).with_name("fence_probe.py")
OPS_PORT = 9464


def digest(events: object) -> str:
    return hashlib.sha256(msgspec.msgpack.encode(events)).hexdigest()


@dataclass
class Replica:
    replica_id: str
    node: Node
    proc: Proc

    @property
    def ops_url(self) -> str:
        return f"http://{self.node.address}:{OPS_PORT}"

    def get(self, path: str) -> tuple[int, str]:
        """`GET` on the replica's ops endpoint: (status, body); (0, error) when unreachable."""
        try:
            with urllib.request.urlopen(f"{self.ops_url}{path}", timeout=2) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            return 0, repr(error)


@dataclass
class Load:
    """The load generator's process and every line it printed (read by a thread as they come)."""

    proc: Proc
    lines: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self.proc.process.stdout
        assert stdout is not None
        for raw in stdout:
            if not raw.endswith(b"\n"):
                break  # a line cut by the stop was never fully received
            self.lines.append(json.loads(raw))

    @property
    def ready(self) -> bool:
        return any("ready" in line for line in self.lines)

    @property
    def acks(self) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if "ack" in line]

    def stop(self) -> None:
        """Ends the load for good: nothing is sent, and no line is read, after this returns."""
        self.proc.kill(signal.SIGTERM)
        if self.proc.alive():
            self.proc.kill(signal.SIGKILL)
        assert not self.proc.alive(), "the load generator outlived SIGKILL"
        self._reader.join(10)


class ShardCluster:
    """One shard's replicas, each in its own namespace, on the NATS cluster of `nats`."""

    def __init__(
        self, network: Network, nats_cluster: NatsCluster, shard: str = "A", lease_ttl: float = 3.0,
        replicas: int | None = None,
    ):
        self.network = network
        self.nats = nats_cluster
        self.names = ShardNames(shard, f"th{network.id}")
        self.lease_ttl = lease_ttl
        self.stream_replicas = replicas or len(nats_cluster.servers)
        """Copies of the stream: one per NATS server unless told."""
        self.replicas: dict[str, Replica] = {}

    @property
    def servers(self) -> str:
        return ",".join(self.nats.urls)

    def start_replica(self, replica_id: str) -> Replica:
        node = self.network.add_node(f"r{replica_id}")
        argv = [
            sys.executable, "-m", "tradehall.service.cluster.replica",
            "--shard", self.names.shard, "--nats", self.servers, "--prefix", self.names.prefix,
            "--replicas", str(self.stream_replicas), "--replica-id", replica_id,
            "--lease-ttl", str(self.lease_ttl), "--http", f"0.0.0.0:{OPS_PORT}",
        ]
        replica = Replica(replica_id, node, self.network.spawn(node, f"replica-{replica_id}", argv))
        self.replicas[replica_id] = replica
        return replica

    def start_load(self, seed: int, clients: int = 8) -> Load:
        node = self.network.nodes.get("gateway") or self.network.add_node("gateway")
        argv = [sys.executable, str(LOAD), self.servers, self.names.prefix, self.names.shard, str(seed),
                str(clients)]
        proc = self.network.spawn(node, "load", argv, stdout_pipe=True)
        return Load(proc)

    def logs(self) -> str:
        return "\n".join(f"--- {rid}\n{replica.proc.tail(25)}" for rid, replica in self.replicas.items())

    # ------------------------------------------------------------------ over NATS, from the test

    async def _statuses(self, state_hash: bool) -> list[ReplicaStatus]:
        nc = await nats.connect(self.nats.urls, connect_timeout=2, allow_reconnect=False)
        try:
            return await gather_status(nc, self.names, timeout=0.5, state_hash=state_hash)
        finally:
            await nc.close()

    def statuses(self, state_hash: bool = False) -> dict[str, ReplicaStatus]:
        try:
            found = asyncio.run(self._statuses(state_hash))
        except Exception:  # a cluster in the middle of an election: no answer this time
            return {}
        return {status.replica_id: status for status in found}

    def wait_role(
        self, replica_id: str, role: str, timeout: float = 45, caught_up: bool = False
    ) -> ReplicaStatus:
        def reached() -> ReplicaStatus | None:
            status = self.statuses().get(replica_id)
            if status is None or status.role != role or (caught_up and status.lag != 0):
                return None
            return status

        what = f"replica {replica_id} to be {role}"
        found: ReplicaStatus = wait_for(reached, timeout, what, 0.2, self.logs)
        return found

    async def _stream_leader(self) -> str:
        nc = await nats.connect(self.nats.urls, connect_timeout=2, allow_reconnect=False)
        try:
            info = await nc.jetstream(timeout=5).stream_info(self.names.stream)
            return str(info.cluster.leader)
        finally:
            await nc.close()

    def stream_leader(self) -> str:
        """The NATS server that leads the shard's stream (its Raft group)."""
        return asyncio.run(self._stream_leader())

    async def _read_log(self) -> list[LogEntry]:
        nc = await nats.connect(self.nats.urls, connect_timeout=2)
        try:
            js = nc.jetstream(timeout=5)
            shard_log = ShardLog(js, self.names)
            end = await self._settled_last_seq(js)
            entries: list[LogEntry] = []
            done = asyncio.Event()

            def on_entry(entry: LogEntry) -> None:
                # each stream message once, as a replica applies it: an ordered consumer that resets
                # (a server rejoining) delivers again from where it was (`ShardState.apply` skips it too)
                if entries and entry.stream_seq <= entries[-1].stream_seq:
                    return
                entries.append(entry)
                if entry.stream_seq >= end:
                    done.set()

            subscription = await shard_log.subscribe(1, on_entry)
            try:
                await asyncio.wait_for(done.wait(), 60)
            finally:
                await subscription.unsubscribe()
            if await self._settled_last_seq(js) != end:
                raise RuntimeError(f"the stream grew past {end} while it was read")
            if [entry.stream_seq for entry in entries] != list(range(1, end + 1)):
                raise RuntimeError(f"the stream's messages 1..{end} were not each delivered")
            return entries
        finally:
            await nc.close()

    async def _settled_last_seq(self, js: Any) -> int:
        """The stream's last seq as its leader knows it, with every copy current. While the cluster
        elects (a server rejoining after a partition) a member answers a stream info with its own,
        possibly stale, state: reading to that end would leave acknowledged records out."""
        info = await js.stream_info(self.names.stream)
        cluster = info.cluster
        if cluster is not None:
            behind = [peer.name for peer in cluster.replicas or [] if not peer.current or peer.offline]
            if not cluster.leader or behind:
                raise RuntimeError(f"stream leader {cluster.leader!r}, copies not current: {behind}")
        return int(info.state.last_seq)

    def read_log(self, timeout: float = 45) -> list[LogEntry]:
        """The whole stream, read once its leader and every copy agree on its end; tried again while
        the NATS cluster is not answering or still electing (a server rejoining after a partition:
        JetStream is "temporarily unavailable" for a few seconds, longer on a loaded machine)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return asyncio.run(self._read_log())
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def fence_probe(self, replica: Replica, expected_last: int) -> dict[str, Any]:
        """From `replica`'s namespace, an append as `replica` that believes the stream ends at
        `expected_last` (what a deposed leader would try)."""
        done = self.network.run(replica.node, [
            sys.executable, str(FENCE), self.servers, self.names.prefix, self.names.shard,
            str(expected_last), replica.replica_id,
        ])
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return answer


@dataclass
class LogCheck:
    engine: Engine
    last_seq: int
    """The last record seq in the log."""
    leader_of_seq: dict[int, str]
    """Which leader wrote each record."""
    writers: list[str]
    """The leaders in the order their epochs start (a leader may appear again after another)."""


def leader_of(entries: list[LogEntry], seq: int) -> tuple[str, int]:
    """Who wrote record `seq`, and in which stream message (diagnostics)."""
    for entry in entries:
        if any(record.seq == seq for record in entry.records):
            return entry.leader, entry.stream_seq
    return "", 0


def unstamped(command: Any) -> bytes:
    """A command without the sequencer's time stamp (a resend is stamped anew)."""
    return msgspec.msgpack.encode(msgspec.structs.replace(command, ts=0))


def log_anomalies(entries: list[LogEntry]) -> list[str]:
    """Where the records' seqs leave 1..n: each jump or repeat with the stream messages and leaders
    around it (diagnostics for a failed check)."""
    found: list[str] = []
    expected = 1
    previous: LogEntry | None = None
    for entry in entries:
        for record in entry.records:
            if record.seq != expected:
                before = (previous.stream_seq, previous.leader) if previous else None
                found.append(
                    f"record {record.seq} where {expected} was due, in stream message {entry.stream_seq}"
                    f" by {entry.leader!r} ({len(entry.records)} records) after message {before}"
                )
            expected = record.seq + 1
        previous = entry
    markers = [(entry.stream_seq, entry.leader) for entry in entries if not entry.records]
    return [*found[:20], f"epoch markers: {markers}"]


def check_log(entries: list[LogEntry], acks: list[dict[str, Any]]) -> LogCheck:
    records = [record for entry in entries for record in entry.records]
    seqs = [record.seq for record in records]
    assert seqs == list(range(1, len(seqs) + 1)), (
        f"the log's records are not 1..n, each once: {log_anomalies(entries)}"
    )
    by_corr: dict[str, list[JournalRecord]] = {}
    for record in records:
        same = by_corr.setdefault(record.command.correlation_id, [])
        if same:  # the gateway sent a request again across a takeover: it must be the same command
            assert unstamped(same[0].command) == unstamped(record.command), (
                f"two different commands share the correlation id {record.command.correlation_id}"
            )
        same.append(record)
    by_seq = {record.seq: record for record in records}
    for ack in acks:
        if not ack["seq"]:
            continue  # refused before the engine decided: not in the log
        acked = by_seq.get(ack["seq"])
        assert acked is not None and acked.command.correlation_id == ack["ack"], (
            f"acknowledged {ack['ack']} (seq {ack['seq']}) is not in the log at that seq: {ack}; there: "
            f"{acked and (acked.command.correlation_id, leader_of(entries, acked.seq))}; "
            f"its records: {[(r.seq, leader_of(entries, r.seq)) for r in by_corr.get(ack['ack'], [])]}"
        )
        assert digest(acked.events) == ack["digest"], f"the acknowledged result of {ack['ack']} changed"
    accepted = Counter(
        (event.account_id, event.client_order_id)
        for record in records for event in record.events
        if isinstance(event, OrderAccepted) and event.client_order_id is not None
    )
    assert not [key for key, count in accepted.items() if count > 1], "a client order was accepted twice"
    owners = {(ack["coid"]) for ack in acks if ack["accepted"]}
    assert owners <= {coid for _, coid in accepted}, "an acknowledged acceptance is missing"

    engine = Engine()
    for record in records:
        assert digest(tuple(engine.apply(record.command))) == digest(record.events), (
            f"replaying record {record.seq} gives other events"
        )
    assert set(engine.ledger.totals().values()) <= {0}, "money is not conserved"

    writers: list[str] = []
    leader_of_seq: dict[int, str] = {}
    marker_since = True
    for entry in entries:
        if not entry.records:
            marker_since = True  # an epoch marker: from here on, only its leader can append
            continue
        if not writers or entry.leader != writers[-1]:
            assert marker_since, f"{entry.leader} wrote at stream seq {entry.stream_seq} with no epoch marker"
            writers.append(entry.leader)
        marker_since = False
        for record in entry.records:
            leader_of_seq[record.seq] = entry.leader
    return LogCheck(engine, seqs[-1] if seqs else 0, leader_of_seq, writers)


def settle(
    cluster: ShardCluster, last_seq: int, alive: list[str], timeout: float = 30
) -> dict[str, ReplicaStatus]:
    """Until every replica in `alive` applied the log to `last_seq`; their statuses with state hashes."""

    def caught_up() -> dict[str, ReplicaStatus] | None:
        found = cluster.statuses(state_hash=True)
        if all(rid in found and found[rid].applied_seq == last_seq for rid in alive):
            return found
        return None

    settled: dict[str, ReplicaStatus] = wait_for(
        caught_up, timeout, f"{alive} to apply the log to {last_seq}", 0.3,
        lambda: f"{cluster.statuses()}\n{cluster.logs()}",
    )
    return settled


def first_ack_by(acks: list[dict[str, Any]], check: LogCheck, leader: str, after: float) -> float:
    """When the first acknowledgement of a record written by `leader` arrived, after `after`."""
    times = [ack["t"] for ack in acks if ack["seq"] and check.leader_of_seq.get(ack["seq"]) == leader
             and ack["t"] >= after]
    assert times, f"no acknowledgement from {leader}"
    return float(min(times))


def wait_acks(load: Load, count: int, timeout: float, detail: Any = None) -> None:
    wait_for(lambda: len(load.acks) >= count, timeout, f"{count} acknowledgements", 0.05,
             lambda: f"{load.proc.tail(20)}\n{detail() if detail else ''}")


def monotonic() -> float:
    return time.monotonic()
