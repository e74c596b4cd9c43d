"""Order-entry latency while one client abuses the server, next to the same figure with no abuse.

Starts `tradehall serve` (fsync batch, SQLite read models) in a fresh data dir, creates a market and a
funded account, then for each workload runs a paced order-entry probe (limit order placed and cancelled,
`--rate` orders per second over HTTP keep-alive, in a process of its own) while an abuser process does:

- none:              nothing (the reference figure);
- login_flood:       30 concurrent wrong-password logins, over and over;
- ws_subscribe_4000: `{"op":"subscribe","channels":["book:X" x 4000]}` sent again and again;
- ws_non_reading:    10 WebSocket clients subscribed to the book (the probe changes it), never reading;
- slowloris:         300 sockets that send a request head one byte at a time, never finishing it.

The figure is the latency of POST /orders (request sent -> 201 read), p50 and p99. The target is that the
p99 under each abuse stays within 2x the p99 with none and under 50 ms.

Run: `python bench/abuse_bench.py [--quick] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_load import MARKET, free_port, http_worker, percentiles, setup, start_server

BENCH = "abuse"
WORKLOADS = ("none", "login_flood", "ws_subscribe_4000", "ws_non_reading", "slowloris")


# ---- the probe ---------------------------------------------------------------------------------------


def probe_process(url: str, identity: dict[str, str], seconds: float, rate: float, queue: Any) -> None:
    """api_load's paced place-then-cancel worker, alone in its process, recording POST /orders latency."""

    async def main() -> list[float]:
        latencies: list[float] = []
        await http_worker(url, identity, time.perf_counter() + seconds, rate, latencies)
        return latencies

    queue.put(asyncio.run(main()))


# ---- the abusers -------------------------------------------------------------------------------------


async def login_flood(url: str, stop: asyncio.Event) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one() -> None:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    await client.post("/auth/token", json={"username": "admin", "password": "wrong"})

        await asyncio.gather(*(one() for _ in range(30)))


async def ws_subscribe_4000(url: str, stop: asyncio.Event) -> None:
    import websockets

    message = json.dumps({"op": "subscribe", "channels": [f"book:{MARKET}"] * 4000})
    while not stop.is_set():
        with contextlib.suppress(Exception):
            async with websockets.connect(url.replace("http", "ws") + "/ws", max_size=2**24) as ws:
                while not stop.is_set():
                    await ws.send(message)
                    await asyncio.wait_for(ws.recv(), timeout=5)


async def ws_non_reading(url: str, stop: asyncio.Event) -> None:
    host, port = url.removeprefix("http://").split(":")
    sockets: list[socket.socket] = []
    for _ in range(10):
        sock = socket.create_connection((host, int(port)))
        # a tiny receive buffer so the server's sends back up quickly
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        handshake = (
            f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(handshake.encode())
        payload = json.dumps({"op": "subscribe", "channels": [f"book:{MARKET}", f"trades:{MARKET}"]}).encode()
        # a masked client text frame (mask of zeros keeps the payload as it is)
        header = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + b"\0\0\0\0"
        sock.sendall(header + payload)
        sockets.append(sock)
    await stop.wait()
    for sock in sockets:
        sock.close()


async def slowloris(url: str, stop: asyncio.Event) -> None:
    host, port = url.removeprefix("http://").split(":")
    head = f"GET /health HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode() + b"a" * 10_000
    writers: dict[int, tuple[asyncio.StreamWriter, int]] = {}

    async def open_one(slot: int) -> None:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(host, int(port))
            writers[slot] = (writer, 0)

    await asyncio.gather(*(open_one(slot) for slot in range(300)))
    while not stop.is_set():
        for slot in range(300):
            entry = writers.get(slot)
            if entry is None or entry[0].is_closing() or entry[1] >= len(head):
                if entry is not None:
                    entry[0].close()
                writers.pop(slot, None)
                await open_one(slot)
                continue
            writer, sent = entry
            try:
                writer.write(head[sent : sent + 1])
                writers[slot] = (writer, sent + 1)
            except OSError:
                writers.pop(slot, None)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)
    for writer, _ in writers.values():
        writer.close()


ABUSERS = {
    "login_flood": login_flood,
    "ws_subscribe_4000": ws_subscribe_4000,
    "ws_non_reading": ws_non_reading,
    "slowloris": slowloris,
}


def abuser_process(url: str, workload: str) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await ABUSERS[workload](url, stop)

    asyncio.run(main())


# ---- running -----------------------------------------------------------------------------------------


def run_workload(
    url: str, identity: dict[str, str], workload: str, seconds: float, rate: float
) -> dict[str, float]:
    abuser = None
    if workload != "none":
        abuser = multiprocessing.Process(target=abuser_process, args=(url, workload))
        abuser.start()
        time.sleep(1.0)  # let the abuse build up before the probe starts
    queue: Any = multiprocessing.Queue()
    probe = multiprocessing.Process(target=probe_process, args=(url, identity, seconds, rate, queue))
    probe.start()
    latencies: list[float] = queue.get()
    probe.join()
    if abuser is not None:
        abuser.terminate()
        abuser.join(10)
        if abuser.is_alive():
            abuser.kill()
    figures = percentiles(latencies)
    return {"orders": float(len(latencies)), "p50_us": figures["p50_us"], "p99_us": figures["p99_us"]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a run under 30 seconds")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    parser.add_argument("--seconds", type=float, default=None, help="probe duration per workload")
    parser.add_argument("--rate", type=float, default=50.0, help="probe orders per second")
    parser.add_argument("--only", default=",".join(WORKLOADS))
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    command = " ".join(["python", "bench/abuse_bench.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="tradehall-abuse-") as tmp:
        port = free_port()
        server = start_server(Path(tmp), port)
        url = f"http://127.0.0.1:{port}"
        try:
            identity = setup(url, 1)[0]
            results: dict[str, dict[str, float]] = {}
            for workload in args.only.split(","):
                results[workload] = run_workload(url, identity, workload, seconds, args.rate)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except Exception:
                server.kill()
    baseline = results.get("none", {}).get("p99_us")
    if args.json:
        for workload, figures in results.items():
            for metric, value in figures.items():
                unit = "us" if metric.endswith("_us") else "orders"
                print(
                    json.dumps(
                        {"bench": BENCH, "workload": workload, "metric": metric, "value": value, "unit": unit}
                    )
                )
    else:
        print(f"{command}\n")
        print(f"{'workload':<20}{'orders':>8}{'p50 ms':>10}{'p99 ms':>10}{'p99 / none':>12}  target")
        for workload, figures in results.items():
            ratio = figures["p99_us"] / baseline if baseline else float("nan")
            met = figures["p99_us"] <= 50_000 and (baseline is None or ratio <= 2.0)
            print(
                f"{workload:<20}{int(figures['orders']):>8}{figures['p50_us'] / 1000:>10.2f}"
                f"{figures['p99_us'] / 1000:>10.2f}{ratio:>12.2f}  {'met' if met else 'MISSED'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
