"""A one-shot NATS client run inside a namespace (`ip netns exec`): prints one JSON line.

`probe.py publish <url> <subject> <timeout>`: {"ok": true, "seq": n} once JetStream stored it, else
{"ok": false, "error": "..."}; `probe.py get <url> <path>`: the local server's monitoring answer.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request


async def publish(url: str, subject: str, timeout: float) -> dict[str, object]:
    import nats

    try:
        client = await nats.connect(url, connect_timeout=timeout, allow_reconnect=False)
    except Exception as error:
        return {"ok": False, "error": f"connect: {type(error).__name__}: {error}"}
    try:
        ack = await client.jetstream().publish(subject, b"probe", timeout=timeout)
        return {"ok": True, "seq": ack.seq, "stream": ack.stream}
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    finally:
        await client.close()


def main(argv: list[str]) -> None:
    if argv[0] == "publish":
        print(json.dumps(asyncio.run(publish(argv[1], argv[2], float(argv[3])))))
    elif argv[0] == "get":
        with urllib.request.urlopen(f"{argv[1]}/{argv[2]}", timeout=2) as answer:
            print(answer.read().decode())
    else:
        raise SystemExit(f"unknown probe {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
