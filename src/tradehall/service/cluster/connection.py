"""The NATS connection of a replica or a gateway, and a flush that really orders subscriptions."""

from __future__ import annotations

from typing import Any

import nats


def server_urls(urls: str) -> list[str]:
    """`nats://a:4222,nats://b:4222` -> each server (nats-py takes a list; it does not split a string)."""
    servers = [url.strip() for url in urls.split(",") if url.strip()]
    if not servers:
        raise ValueError(f"no NATS server in {urls!r}")
    return servers


PING_INTERVAL_SECONDS = 1.0
"""How often the client pings its server: with `MAX_OUTSTANDING_PINGS` unanswered it takes the server
for lost and moves to another one of the cluster within about 3 s (nats-py's default is 2 minutes
each: a replica or gateway whose server is cut off would hang that long; tests/cluster shows it)."""
MAX_OUTSTANDING_PINGS = 2


async def connect(urls: str, name: str) -> Any:
    """A connection to any of `urls` (comma-separated: the servers of a NATS cluster) that reconnects
    for ever: a takeover must not end because one NATS server restarted or was cut off."""
    return await nats.connect(
        server_urls(urls),
        name=name,
        connect_timeout=2,
        reconnect_time_wait=0.2,
        max_reconnect_attempts=-1,
        allow_reconnect=True,
        ping_interval=PING_INTERVAL_SECONDS,
        max_outstanding_pings=MAX_OUTSTANDING_PINGS,
    )


async def flush_subscriptions(nc: Any) -> None:
    """Returns once the server has every subscription made so far on `nc`.

    nats-py (2.16) writes a flush's PING straight to the socket, ahead of commands still queued, so one
    `flush()` can return before the server saw a SUB queued just before it (a request sent then finds
    no responders). The first round trip lets the queued commands go out; the second one's PING follows
    them."""
    await nc.flush()
    await nc.flush()
