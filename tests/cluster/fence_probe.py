"""A deposed leader's append, tried for real: run inside that replica's namespace after a takeover.

`fence_probe.py NATS_URLS PREFIX SHARD EXPECTED_LAST LEADER` appends an empty message (an epoch
marker, harmless if it were ever stored) to the shard's stream as LEADER would, fenced on the stream
ending at EXPECTED_LAST, and prints {"fenced": true, "error": ..., "last_seq": n} when JetStream refuses
it, or {"fenced": false, "seq": n} when it was stored.
"""

from __future__ import annotations

import asyncio
import json
import sys

import nats

from tradehall.service.cluster.log import LEADER_HEADER, LogFencedError, ShardLog
from tradehall.service.cluster.names import ShardNames


async def main(
    servers: list[str], prefix: str, shard: str, expected_last: int, leader: str
) -> dict[str, object]:
    nc = await nats.connect(servers, connect_timeout=2)
    try:
        shard_log = ShardLog(nc.jetstream(timeout=5), ShardNames(shard, prefix))
        try:
            seq = await shard_log.append(b"", expected_last, {LEADER_HEADER: leader})
        except LogFencedError as error:
            return {"fenced": True, "error": str(error), "last_seq": await shard_log.last_seq()}
        return {"fenced": False, "seq": seq}
    finally:
        await nc.close()


if __name__ == "__main__":
    urls, prefix_arg, shard_arg, expected_arg, leader_arg = sys.argv[1:6]
    answer = asyncio.run(main(urls.split(","), prefix_arg, shard_arg, int(expected_arg), leader_arg))
    print(json.dumps(answer))
