"""A replica's operator surface: readiness per shard, Prometheus series per shard, the tiny HTTP endpoint."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tradehall.service.cluster.ops import (
    MAX_READY_LAG,
    answer,
    parse_listen,
    readiness,
    serve_ops,
    shard_check,
    watch_replica,
)
from tradehall.service.cluster.protocol import ReplicaStatus


def status(role: str = "leader", *, replica: str = "a", holder: str = "a", lag: int = 0, shard: str = "A",
           takeovers: int = 1) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id=replica, shard=shard, role=role, applied_seq=120, stream_seq=40, stream_last_seq=40 + lag,
        lag=lag, lease_holder=holder, lease_revision=7, lease_age_seconds=12.5, lease_ttl_seconds=3.0,
        takeovers=takeovers, pid=4242,
    )


@pytest.mark.parametrize(
    ("replica_status", "ok"),
    [
        (status("leader"), True),
        (status("leader", holder="b"), False),  # says it leads, the lease says otherwise: stepping down
        (status("standby", holder="b", lag=MAX_READY_LAG), True),
        (status("standby", holder="b", lag=MAX_READY_LAG + 1), False),
        (status("starting", holder=""), False),
        (status("stepping_down"), False),
        (status("stopping"), False),
    ],
)
def test_a_replica_is_ready_when_it_can_do_its_part(replica_status: ReplicaStatus, ok: bool) -> None:
    assert shard_check(replica_status)["ok"] is ok


def test_ready_has_one_entry_per_shard_and_fails_on_any() -> None:
    code, body = readiness([status(shard="A"), status("standby", replica="a", holder="x", lag=3, shard="B")])
    assert code == 200 and body["status"] == "ready"
    assert body["checks"]["shards"]["A"] == {
        "ok": True, "replica": "a", "role": "leader", "applied_seq": 120, "stream_seq": 40,
        "stream_last_seq": 40, "lag": 0, "lease_holder": "a", "lease_age_seconds": 12.5,
    }
    assert body["checks"]["shards"]["B"]["lag"] == 3
    code, body = readiness([status(shard="A"), status("starting", shard="B")])
    assert (code, body["status"], body["checks"]["shards"]["ok"]) == (503, "not_ready", False)
    assert readiness([])[0] == 503  # no replica running: nothing to serve


def test_metrics_per_shard_and_replica() -> None:
    registry = CollectorRegistry()
    watch_replica(lambda: status(lag=2, takeovers=3), registry)
    watch_replica(lambda: status("standby", replica="b", holder="a", shard="A", takeovers=0), registry)
    text = generate_latest(registry).decode()
    for line in (
        'tradehall_shard_role{replica="a",role="leader",shard="A"} 1.0',
        'tradehall_shard_role{replica="a",role="standby",shard="A"} 0.0',
        'tradehall_shard_role{replica="b",role="standby",shard="A"} 1.0',
        'tradehall_shard_applied_seq{replica="a",shard="A"} 120.0',
        'tradehall_shard_stream_seq{replica="a",shard="A"} 40.0',
        'tradehall_shard_lag{replica="a",shard="A"} 2.0',
        'tradehall_shard_lease_age_seconds{replica="a",shard="A"} 12.5',
        'tradehall_shard_takeovers_total{replica="a",shard="A"} 3.0',
        'tradehall_shard_takeovers_total{replica="b",shard="A"} 0.0',
    ):
        assert line in text, line


def test_a_replica_that_cannot_say_its_status_has_no_series_and_the_scrape_still_works() -> None:
    registry = CollectorRegistry()

    def broken() -> ReplicaStatus:
        raise RuntimeError("the replica has not started")

    watch_replica(broken, registry)
    watch_replica(lambda: status(replica="z"), registry)
    text = generate_latest(registry).decode()
    assert 'replica="z"' in text and text.count("tradehall_shard_applied_seq{") == 1


def test_answers() -> None:
    head, _, body = answer("GET", "/ready?verbose=1", [status]).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and json.loads(body)["status"] == "ready"
    head, _, body = answer("GET", "/ready", [lambda: status("starting")]).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable") and b"Content-Length: %d" % len(body) in head
    assert answer("GET", "/health", []).endswith(b'{"status":"ok"}')
    assert answer("GET", "/metrics", [], CollectorRegistry()).startswith(b"HTTP/1.1 200 OK")
    assert answer("GET", "/nope", []).startswith(b"HTTP/1.1 404 Not Found")
    assert answer("POST", "/ready", []).startswith(b"HTTP/1.1 405 Method Not Allowed")


@pytest.mark.parametrize(
    ("value", "expected"), [("0.0.0.0:9464", ("0.0.0.0", 9464)), (":9464", ("0.0.0.0", 9464)),
                            ("[::1]:80", ("::1", 80)), ("10.0.0.5:1", ("10.0.0.5", 1))],
)
def test_listen_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9464", "host:", "host:0", "host:65536", "host:http"])
def test_bad_listen_addresses(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(value)


async def test_the_endpoint_over_a_socket() -> None:
    server = await serve_ops([lambda: status("standby", holder="b")], "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert json.loads(body)["checks"]["shards"]["A"]["role"] == "standby"
        # a client that sends garbage or nothing is closed, the server keeps serving
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x00\x01garbage\r\n\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
