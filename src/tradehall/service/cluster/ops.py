"""What an operator scrapes of a replica process: per-shard metrics, readiness, a small HTTP endpoint.

Everything is computed from the replica's own `status()` when asked (a scrape, a probe), so nothing
costs a command anything. The endpoint (`python -m tradehall.service.cluster.replica --http
HOST:PORT`) answers `GET /health`, `/ready` and `/metrics` in the shapes of the gateway's endpoints:
`/ready` is 200 `ready` or 503 `not_ready` with one entry per shard under `checks.shards`.

A replica is ready when it can do its part: a leader that holds the lease, or a standby that follows
the stream no further behind than `max_lag` messages (it could take over at once). Starting,
stepping down or stopping is not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradehall.service.cluster.protocol import ReplicaStatus

ROLES = ("leader", "standby", "starting", "stepping_down", "stopping")
MAX_READY_LAG = 10_000
"""A standby further behind the stream than this many messages is not ready (a takeover would wait)."""

StatusSource = Callable[[], ReplicaStatus]


def shard_check(status: ReplicaStatus, max_lag: int = MAX_READY_LAG) -> dict[str, Any]:
    """The `/ready` entry of one shard as this replica sees it; `ok` says whether it can do its part."""
    if status.role == "leader":
        ok = status.lease_holder == status.replica_id
    elif status.role == "standby":
        ok = status.lag <= max_lag
    else:
        ok = False
    return {
        "ok": ok,
        "replica": status.replica_id,
        "role": status.role,
        "applied_seq": status.applied_seq,
        "stream_seq": status.stream_seq,
        "stream_last_seq": status.stream_last_seq,
        "lag": status.lag,
        "lease_holder": status.lease_holder,
        "lease_age_seconds": status.lease_age_seconds,
    }


def followed_check(
    *,
    applied_seq: int,
    stream_seq: int,
    stream_last_seq: int,
    lease_holder: str,
    lease_since_renewal_seconds: float,
    lease_ttl_seconds: float,
    diverged_seq: int,
    max_lag: int = MAX_READY_LAG,
) -> dict[str, Any]:
    """The `/ready` entry of one shard as a gateway's read replica of it sees it (the same keys as
    `shard_check` where they mean the same): `ok` when the shard has a leader whose lease is live and the
    replica follows its stream no further behind than `max_lag` messages, with the same engine results."""
    leader_seen = bool(lease_holder) and lease_since_renewal_seconds <= lease_ttl_seconds
    lag = max(0, stream_last_seq - stream_seq)
    return {
        "ok": leader_seen and lag <= max_lag and not diverged_seq,
        "leader_seen": leader_seen,
        "lease_holder": lease_holder,
        "applied_seq": applied_seq,
        "stream_seq": stream_seq,
        "stream_last_seq": stream_last_seq,
        "lag": lag,
        "diverged_seq": diverged_seq,
    }


def readiness(statuses: Iterable[ReplicaStatus], max_lag: int = MAX_READY_LAG) -> tuple[int, dict[str, Any]]:
    """The `/ready` answer (HTTP status, body) of a process running `statuses`' replicas."""
    shards = {status.shard: shard_check(status, max_lag) for status in statuses}
    good = bool(shards) and all(check["ok"] for check in shards.values())
    body = {"status": "ready" if good else "not_ready", "checks": {"shards": {"ok": good, **shards}}}
    return (200 if good else 503), body


class ReplicaCollector(Collector):
    """Prometheus series of every watched replica, labelled by shard and replica id."""

    def __init__(self) -> None:
        self.sources: list[StatusSource] = []

    def collect(self) -> Iterator[Metric]:
        labels = ["shard", "replica"]
        role = GaugeMetricFamily(
            "tradehall_shard_role", "1 for the replica's current role in its shard, 0 for the others.",
            labels=[*labels, "role"],
        )
        applied = GaugeMetricFamily(
            "tradehall_shard_applied_seq", "The last engine record this replica applied.", labels=labels
        )
        stream = GaugeMetricFamily(
            "tradehall_shard_stream_seq", "The last stream message this replica consumed or wrote.",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "tradehall_shard_lag", "Stream messages the replica is behind the stream's end.", labels=labels
        )
        lease_age = GaugeMetricFamily(
            "tradehall_shard_lease_age_seconds",
            "Since the current leader took the shard's lease (0 without a leader).", labels=labels,
        )
        takeovers = CounterMetricFamily(
            "tradehall_shard_takeovers", "Times this replica became its shard's leader.", labels=labels
        )
        for source in list(self.sources):
            try:
                status = source()
            except Exception:  # a replica not started yet (or stopped): no series rather than no scrape
                continue
            key = [status.shard, status.replica_id]
            for name in ROLES:
                role.add_metric([*key, name], 1.0 if status.role == name else 0.0)
            applied.add_metric(key, status.applied_seq)
            stream.add_metric(key, status.stream_seq)
            lag.add_metric(key, status.lag)
            lease_age.add_metric(key, status.lease_age_seconds)
            takeovers.add_metric(key, status.takeovers)
        yield from (role, applied, stream, lag, lease_age, takeovers)


_collector: ReplicaCollector | None = None


def watch_replica(source: StatusSource, registry: CollectorRegistry = REGISTRY) -> ReplicaCollector:
    """Adds a replica's status to `/metrics` (one collector per registry in the process)."""
    global _collector
    if registry is not REGISTRY:
        collector = ReplicaCollector()
        registry.register(collector)
    else:
        if _collector is None:
            _collector = ReplicaCollector()
            REGISTRY.register(_collector)
        collector = _collector
    collector.sources.append(source)
    return collector


def unwatch_replica(source: StatusSource) -> None:
    if _collector is not None:
        with contextlib.suppress(ValueError):
            _collector.sources.remove(source)


def _response(status: int, body: bytes, content_type: str) -> bytes:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def answer(
    method: str, path: str, sources: Iterable[StatusSource], registry: CollectorRegistry = REGISTRY,
    max_lag: int = MAX_READY_LAG,
) -> bytes:
    """The full HTTP response to one request line (pure: the server only reads and writes bytes)."""
    route = path.split("?", 1)[0]
    if route not in {"/health", "/ready", "/metrics"}:
        return _response(404, b'{"status":"not_found"}', "application/json")
    if method != "GET":
        return _response(405, b'{"status":"method_not_allowed"}', "application/json")
    if route == "/health":
        return _response(200, b'{"status":"ok"}', "application/json")
    if route == "/metrics":
        return _response(200, generate_latest(registry), CONTENT_TYPE_LATEST)
    statuses = []
    for source in sources:
        with contextlib.suppress(Exception):
            statuses.append(source())
    code, body = readiness(statuses, max_lag)
    return _response(code, json.dumps(body).encode(), "application/json")


async def serve_ops(
    sources: list[StatusSource], host: str, port: int, *, max_lag: int = MAX_READY_LAG
) -> asyncio.Server:
    """Serves `/health`, `/ready` and `/metrics` for the replicas in `sources` until the server closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            writer.write(answer(method, path, sources, max_lag=max_lag))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, limit=16 * 1024)


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (`:PORT` for every address, `[::1]:PORT` for IPv6) of the ops endpoint."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)
