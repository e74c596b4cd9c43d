"""Load on `tradehall serve` over 127.0.0.1: HTTP and WebSocket order entry, throughput and latency.

Starts `tradehall serve` (fsync batch, SQLite read models) in a fresh data dir, creates a market and
funded accounts, then runs load-generator processes (the generator shares the machine):

- http_peak:  closed loop, each worker places a limit order then cancels it, as fast as it can;
              latency of the POST /orders (request sent -> 201 read).
              `projector_lag`, sampled every 20 ms meanwhile: how long after a seq was durable (the
              engine's status page, or `/ready` in one process) the read models' file showed it.
- http_paced: open loop at a fixed rate (default 1000 orders/s), same place/cancel pairs.
- ws_peak:    WebSocket order entry, one `order` per frame, each connection keeps a window of orders in
              flight and cancels each order as soon as it is answered (one `cancel` per frame).
- ws_batch:   the same with `batch` frames of `--ws-batch` orders (then one `batch` of their cancels).
- ws_paced:   open loop over WebSocket at a fixed rate (default 1000 orders/s), one order per frame.
              The WebSocket workloads report the server's CPU per order (every process of it) and the
              load generator's, beside the client's figures.
- alpaca:     the Alpaca surface beside the native API, on a spot market: the same closed loop with the
              placement sent as native `POST /orders` (workload `place_native_post_orders`) and as
              `POST /alpaca/v2/orders` (`place_alpaca_v2_orders`), in alternating rounds in one run
              (the cancel is the native `DELETE /orders/{id}` in both); `alpaca_overhead` is the Alpaca
              route's server CPU time per order over the native one (what the route costs the server,
              whatever else loads the machine), and its p50 latency and throughput ratios (few clients,
              `--alpaca-workers`, so the latency is the service time rather than queueing).
- vs_fastapi: issue 18's side by side (bench/fastapi_peer.py): a trivial FastAPI + pydantic route on
              the same server stack, `tradehall serve --workers 1` and `--workers 2`, each driven by the
              same load generator (wrk when installed) with orders that alternately rest and fill, in
              alternating rounds in one run; `vs_fastapi` prints each layout's requests/s over the
              trivial route's, and the server CPU seconds per request (all of a layout's processes).

- reads:      `GET /trades` (first and a deep page of `--fills` stored fills) and `GET /positions`, one
              client; with `--reads-workers 1,2` each layout is started and read in alternating rounds
              in one run, with the server CPU per request (issue 18: `--workers 2` no worse).

Run: `python bench/api_load.py [--quick] [--json]`. Prints a table, and with --json one JSON object
per figure: {"bench": "api_load", "workload": ..., "metric": ..., "value": ..., "unit": ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = "api_load"
MARKET = "BENCH-PERP"
SPOT = "BENCH-USD"
"""The spot market of the Alpaca workload: the Alpaca asset `BENCH/USD`."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: Path, port: int, workers: int = 1, source: str | None = None
) -> subprocess.Popen[bytes]:
    """`tradehall serve` from this checkout, or from the `source` directory (another commit's `src`)."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([source, *filter(None, [env.get("PYTHONPATH")])])
    env.update(
        {
            "TRADEHALL_DATA_DIR": str(data_dir),
            "TRADEHALL_FSYNC": "batch",
            "TRADEHALL_RATE_LIMIT_PER_SECOND": "0",
            "TRADEHALL_ADMIN_PASSWORD": "bench-admin",
            "TRADEHALL_JWT_SECRET": "bench-secret-" + "x" * 32,
            "TRADEHALL_WS_SEND_QUEUE": "100000",
        }
    )
    # `tradehall serve`, run by this interpreter so the same virtualenv is used
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tradehall.cli.main import app; app()",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # a loaded machine starts --workers N slowly (146 s at load 20)
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=10).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("tradehall serve did not start")


def setup(url: str, workers: int) -> list[dict[str, str]]:
    """A perp market and one funded account (with its API key) per worker."""
    from tradehall.client import Client

    admin = Client(url, timeout=120).login("admin", "bench-admin")  # argon2 on a loaded machine
    admin.create_market(
        symbol=MARKET,
        kind="perp",
        base="BTC",
        quote="USD",
        tick_size="0.5",
        lot_size="0.001",
        max_leverage="10",
    )
    admin.create_market(
        symbol=SPOT, kind="spot", base="BENCH", quote="USD", tick_size="0.5", lot_size="0.001"
    )
    identities = []
    for index in range(workers):
        name = f"bench{index}"
        admin.create_user(name, "pw-" + name)
        client = Client(url, timeout=120).login(name, "pw-" + name)
        account = client.create_account("USD")
        admin.deposit(account["id"], "1000000000")
        key = client.create_api_key("bench")
        identities.append({"account_id": account["id"], "api_key": key["api_key"], "key_id": key["key_id"]})
        client.close()
    admin.close()
    return identities


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50_us": 0.0, "p99_us": 0.0, "p999_us": 0.0}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6

    return {"p50_us": at(0.50), "p99_us": at(0.99), "p999_us": at(0.999)}


def order_body(identity: dict[str, str], index: int, route: str = "perp") -> dict[str, Any]:
    # bids far below any ask: they rest, never match, and are cancelled right after
    price = f"{10000 + (index % 2000) * 0.5:.1f}"
    if route == "alpaca":
        return {
            "symbol": "BENCH/USD",
            "side": "buy",
            "type": "limit",
            "qty": "0.001",
            "limit_price": price,
            "time_in_force": "gtc",
        }
    return {
        "account_id": identity["account_id"],
        "market": SPOT if route == "native" else MARKET,
        "side": "buy",
        "type": "limit",
        "quantity": "0.001",
        "price": price,
    }


ORDER_PATH = {"perp": "/orders", "native": "/orders", "alpaca": "/alpaca/v2/orders"}
PLACED_STATUS = {"perp": 201, "native": 201, "alpaca": 200}
ALPACA_ORDER_MASK = (1 << 62) - 1
"""The tradehall order number inside an Alpaca order UUID (`tradehall.api.alpaca.ids`)."""


def placed_order_id(route: str, payload: bytes) -> str:
    order_id = json.loads(payload)["id"]
    if route == "alpaca":
        return str(int(order_id.replace("-", ""), 16) & ALPACA_ORDER_MASK)
    return str(order_id)


# ---- HTTP ---------------------------------------------------------------------------------------------


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator shares the machine,
    and httpx costs several times what the server spends on a request."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host = host
        self.port = port
        self.extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\n{self.extra}"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def http_worker(
    url: str,
    identity: dict[str, str],
    deadline: float,
    rate: float | None,
    latencies: list[float],
    route: str = "perp",
) -> int:
    host, port = url.removeprefix("http://").split(":")
    headers = {"x-api-key": identity["api_key"]}
    if route == "alpaca":
        headers.update({"apca-api-key-id": identity["key_id"], "apca-api-secret-key": identity["api_key"]})
    client = RawHttp(host, int(port), headers)
    await client.connect()
    placed = 0
    next_at = time.perf_counter()
    index = 0
    try:
        while time.perf_counter() < deadline:
            if rate is not None:
                now = time.perf_counter()
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at += 1.0 / rate
            body = json.dumps(order_body(identity, index, route)).encode()
            index += 1
            sent = time.perf_counter()
            status, payload = await client.request("POST", ORDER_PATH[route], body)
            latencies.append(time.perf_counter() - sent)
            if status != PLACED_STATUS[route]:
                raise RuntimeError(f"order refused: {status} {payload[:200]!r}")
            placed += 1
            order_id = placed_order_id(route, payload)
            status, payload = await client.request("DELETE", f"/orders/{order_id}")
            if status != 200:
                raise RuntimeError(f"cancel refused: {status} {payload[:200]!r}")
    finally:
        client.close()
    return placed


def http_process(
    url: str,
    identities: list[dict[str, str]],
    seconds: float,
    rate: float | None,
    queue: Any,
    route: str = "perp",
) -> None:
    async def main() -> tuple[int, list[float]]:
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        per_worker = None if rate is None else rate / len(identities)
        counts = await asyncio.gather(
            *(http_worker(url, identity, deadline, per_worker, latencies, route) for identity in identities)
        )
        return sum(counts), latencies

    placed, latencies = asyncio.run(main())
    queue.put((placed, latencies))


def run_http(
    url: str,
    identities: list[dict[str, str]],
    processes: int,
    seconds: float,
    rate: float | None,
    route: str = "perp",
) -> dict[str, float]:
    queue: Any = multiprocessing.Queue()
    chunks = [identities[i::processes] for i in range(processes)]
    started = time.perf_counter()
    workers = [
        multiprocessing.Process(
            target=http_process,
            args=(url, chunk, seconds, None if rate is None else rate / processes, queue, route),
        )
        for chunk in chunks
    ]
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    placed = sum(r[0] for r in results)
    latencies = [x for r in results for x in r[1]]
    # each placement is followed by a cancel: requests/s is twice the orders/s
    return {"ops_per_s": placed / elapsed, "orders": placed, **percentiles(latencies)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_alpaca(
    url: str, identities: list[dict[str, str]], processes: int, seconds: float, rounds: int, server_pid: int
) -> dict[str, dict[str, float]]:
    """Native and Alpaca placement in alternating rounds (native, alpaca, alpaca, native, ...), so drift
    of the shared machine falls on both; figures over all rounds of each. Besides the client's view
    (throughput, latency), the server's own CPU time per order (place + cancel), which other load on the
    machine does not inflate: the cost the 15 % target is about."""
    totals: dict[str, list[dict[str, float]]] = {"native": [], "alpaca": []}
    cpu: dict[str, float] = {"native": 0.0, "alpaca": 0.0}
    order = ["native", "alpaca"]
    for round_index in range(rounds):
        for route in order if round_index % 2 == 0 else order[::-1]:
            before = cpu_seconds(server_pid)
            totals[route].append(run_http(url, identities, processes, seconds / rounds, None, route))
            cpu[route] += cpu_seconds(server_pid) - before
    figures: dict[str, dict[str, float]] = {}
    for route, runs in totals.items():
        orders = sum(run["orders"] for run in runs)
        figures[route] = {
            "ops_per_s": sum(run["ops_per_s"] for run in runs) / len(runs),
            "orders": orders,
            "cpu_us_per_order": cpu[route] / orders * 1e6,
            **{
                key: sorted(run[key] for run in runs)[len(runs) // 2]
                for key in ("p50_us", "p99_us", "p999_us")
            },
        }
    native, alpaca = figures["native"], figures["alpaca"]
    return {
        "place_native_post_orders": native,
        "place_alpaca_v2_orders": alpaca,
        "alpaca_overhead": {
            "cpu_ratio": alpaca["cpu_us_per_order"] / native["cpu_us_per_order"],
            "p50_ratio": alpaca["p50_us"] / native["p50_us"],
            "ops_ratio": native["ops_per_s"] / alpaca["ops_per_s"],
        },
    }


# ---- WebSocket ----------------------------------------------------------------------------------------


def ws_order(identity: dict[str, str], index: int) -> dict[str, Any]:
    return {"op": "order", **order_body(identity, index)}


async def ws_connection(
    url: str,
    identity: dict[str, str],
    deadline: float,
    window: int,
    latencies: list[float],
    batch: int = 1,
    rate: float | None = None,
) -> int:
    """One socket placing orders and cancelling each as soon as it is answered.

    `batch` 1: one `order` per frame, `window` orders in flight (closed loop), or with `rate` one
    order every 1/rate s (open loop). `batch` K > 1: `batch` frames of K orders, then one `batch` of
    their K cancels, `window` orders in flight in all. Latency: from the frame's send to its reply.
    Encoding with orjson, so the generator (which shares the machine) costs less than the server."""
    import orjson
    import websockets

    dumps, loads, now = orjson.dumps, orjson.loads, time.perf_counter
    placed = 0
    async with websockets.connect(
        url.replace("http", "ws") + "/ws", max_size=2**24, compression=None
    ) as socket_:
        await socket_.send(dumps({"op": "auth", "api_key": identity["api_key"]}).decode())
        reply = loads(await socket_.recv())
        if reply.get("op") != "authenticated":
            raise RuntimeError(f"ws auth failed: {reply}")
        sent_at: dict[int, float] = {}
        next_id = 0
        in_flight = 0  # orders and cancels not answered yet
        wake = asyncio.Event()
        done = asyncio.Event()

        def refused(message: dict[str, Any]) -> None:
            if message.get("op") == "error" and message.get("request") != "cancel":
                raise RuntimeError(f"ws order refused: {message}")

        async def reader() -> None:
            nonlocal placed, in_flight
            async for raw in socket_:
                message = loads(raw)
                ref = message.get("id")
                if ref is None:
                    continue
                started = sent_at.pop(ref, None)
                op = message.get("op")
                if op == "batch":
                    replies = message["replies"]
                    in_flight -= len(replies)
                    if ref > 0 and started is not None:
                        cancels = []
                        elapsed = now() - started
                        for item in replies:
                            refused(item)
                            latencies.append(elapsed)
                            cancels.append({"op": "cancel", "order_id": item["data"]["id"]})
                        placed += len(replies)
                        sent_at[-ref] = now()
                        in_flight += len(cancels)
                        await socket_.send(dumps({"op": "batch", "id": -ref, "requests": cancels}).decode())
                else:
                    in_flight -= 1
                    refused(message)
                    if op == "order" and started is not None:
                        latencies.append(now() - started)
                        placed += 1
                        in_flight += 1
                        await socket_.send(
                            dumps({"op": "cancel", "id": -ref, "order_id": message["data"]["id"]}).decode()
                        )
                if now() >= deadline and in_flight == 0:
                    done.set()
                    return
                wake.set()

        task = asyncio.create_task(reader())
        index = 0
        next_at = now()
        while now() < deadline and not task.done():
            if rate is not None:  # open loop: one order every 1/rate s, whatever is in flight
                if next_at > now():
                    await asyncio.sleep(next_at - now())
                next_at += 1.0 / rate
                next_id += 1
                text = dumps({**ws_order(identity, index), "id": next_id}).decode()
                index += 1
                sent_at[next_id] = now()
                in_flight += 1
                await socket_.send(text)
                continue
            while in_flight + batch <= max(window, batch) and now() < deadline:
                next_id += 1
                if batch == 1:
                    text = dumps({**ws_order(identity, index), "id": next_id}).decode()
                else:
                    orders = [ws_order(identity, index + k) for k in range(batch)]
                    text = dumps({"op": "batch", "id": next_id, "requests": orders}).decode()
                index += batch
                sent_at[next_id] = now()
                in_flight += batch
                await socket_.send(text)
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 1.0)
        if task.done():
            task.result()  # the reader's failure, if it failed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 10.0)
        task.cancel()
    return placed


def ws_process(
    url: str,
    identities: list[dict[str, str]],
    seconds: float,
    window: int,
    batch: int,
    rate: float | None,
    queue: Any,
) -> None:
    async def main() -> tuple[int, list[float]]:
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        per_connection = None if rate is None else rate / len(identities)
        counts = await asyncio.gather(
            *(
                ws_connection(url, identity, deadline, window, latencies, batch, per_connection)
                for identity in identities
            )
        )
        return sum(counts), latencies

    try:
        placed, latencies = asyncio.run(main())
    except Exception as exc:  # told to the parent, which would otherwise wait for this result forever
        queue.put((0, [], repr(exc)))
        raise
    queue.put((placed, latencies, ""))


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and of every process below it (`serve --workers N`: the supervisor's children)."""
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            total += cpu_seconds(current)
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(child) for child in (task / "children").read_text().split())
    return total


def run_ws(
    url: str,
    identities: list[dict[str, str]],
    processes: int,
    seconds: float,
    window: int,
    batch: int = 1,
    rate: float | None = None,
    server_pid: int | None = None,
) -> dict[str, float]:
    """Server CPU per order (place + cancel, every process of the server) and the generator's own CPU
    per order beside the client's figures: on a shared machine the CPU figures are the ones that other
    load does not distort."""
    queue: Any = multiprocessing.Queue()
    processes = min(processes, len(identities))
    chunks = [identities[i::processes] for i in range(processes)]
    per_process = None if rate is None else rate / processes
    server_before = tree_cpu_seconds(server_pid) if server_pid is not None else 0.0
    children_before = os.times()
    started = time.perf_counter()
    workers = [
        multiprocessing.Process(
            target=ws_process, args=(url, chunk, seconds, window, batch, per_process, queue)
        )
        for chunk in chunks
    ]
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    children_after = os.times()
    failures = [r[2] for r in results if r[2]]
    if failures:  # e.g. a paced rate above what the server sustains: the open orders reach their limit
        raise RuntimeError(f"a WebSocket load generator failed: {failures[0]}")
    placed = sum(r[0] for r in results)
    latencies = [x for r in results for x in r[1]]
    figures = {"ops_per_s": placed / elapsed, "orders": placed, **percentiles(latencies)}
    if server_pid is not None and placed:
        figures["cpu_us_per_order"] = (tree_cpu_seconds(server_pid) - server_before) / placed * 1e6
        generator = (children_after.children_user + children_after.children_system) - (
            children_before.children_user + children_before.children_system
        )
        figures["generator_cpu_us_per_order"] = generator / placed * 1e6
    return figures


# ---- projector lag -------------------------------------------------------------------------------------


class LagSampler:
    """The projector's lag during a workload, sampled every `interval` s (20 ms): the engine's durable
    seq and the read models' stored seq (`projection_state`, read from the SQLite file: what a GET
    sees). The durable seq comes from the engine's status page (`engine.status`, `--workers N > 1`)
    or, with no such page (one process), from `/ready`, whose journal figure is the runner's own;
    `/ready`'s store figure is not used: it is cached for 1 s. A sample's lag is the time until a
    later sample shows its durable seq projected (resolution: `interval`)."""

    def __init__(self, url: str, data_dir: Path, interval: float = 0.02) -> None:
        import sqlite3
        import threading

        self.url = url
        self.data_dir = data_dir
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []
        self.database = sqlite3.connect(
            f"file:{data_dir / 'tradehall.sqlite3'}?mode=ro", uri=True, check_same_thread=False
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _projected(self) -> int:
        row = self.database.execute(
            "SELECT last_seq FROM projection_state WHERE name = 'read_models'"
        ).fetchone()
        return int(row[0]) if row else 0

    def _run(self) -> None:
        from tradehall.service.status_page import EngineStatus, status_path

        page = status_path(self.data_dir)
        status = EngineStatus(page) if page.exists() else None  # never create it for one process
        with httpx.Client(base_url=self.url, timeout=5.0) as client:

            def sample() -> tuple[int, int] | None:
                at = time.perf_counter()  # a /ready answer's seq was durable by its end: lags err long
                if status is not None:
                    durable = status.durable_seq
                else:
                    try:
                        durable = int(client.get("/ready").json()["checks"]["journal"]["durable_seq"])
                    except (httpx.HTTPError, ValueError, KeyError):
                        return None
                projected = self._projected()
                self.samples.append((at, durable, projected))
                return durable, projected

            while not self._stop.is_set():
                sample()
                self._stop.wait(self.interval)
            deadline = time.monotonic() + 60  # after the load: until the read models caught up
            while time.monotonic() < deadline:
                seqs = sample()
                if seqs is not None and seqs[1] >= seqs[0]:
                    break
                time.sleep(self.interval)
        if status is not None:
            status.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.database.close()
        lags = lags_of(self.samples)
        return {"samples": float(len(lags)), **percentiles(lags)}


def lags_of(samples: list[tuple[float, int, int]]) -> list[float]:
    """Each (time, durable seq, projected seq) sample's lag: the time until the first sample from it on
    whose projected seq reaches its durable seq; none does: until the last sample (a lower bound)."""
    lags = []
    later = 0
    for index, (at, durable, _) in enumerate(samples):
        later = max(later, index)  # both seqs only grow: the answer never moves back
        while later < len(samples) - 1 and samples[later][2] < durable:
            later += 1
        lags.append(samples[later][0] - at)
    return lags


# ---- reads with many fills stored --------------------------------------------------------------------


def store_fills(data_dir: Path, account_id: str, count: int) -> None:
    """Writes `count` fills of `account_id` straight into the SQLite read model (the read path under test
    is the same whichever way the rows got there; producing a million through the engine takes too long)."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from sqlalchemy import insert

    from tradehall.store import create_store_engine
    from tradehall.store.models import Fill, table_of

    engine = create_store_engine(f"sqlite:///{data_dir / 'tradehall.sqlite3'}")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    table = table_of(Fill)
    chunk = 50_000
    with engine.begin() as connection:
        for first in range(0, count, chunk):
            rows = [
                {
                    "id": 10**12 + n,
                    "executed_at": start + timedelta(milliseconds=n),
                    "trade_id": 10**11 + n,
                    "order_id": str(10**11 + n),
                    "account_id": account_id,
                    "market": MARKET,
                    "side": "buy" if n % 2 else "sell",
                    "price": Decimal("64000.5"),
                    "quantity": Decimal("0.001"),
                    "fee": Decimal("0.03"),
                    "liquidity": "maker",
                    "realized_pnl": Decimal("0"),
                }
                for n in range(first, min(count, first + chunk))
            ]
            connection.execute(insert(table), rows)
    engine.dispose()


async def timed_gets(url: str, identity: dict[str, str], paths: list[str]) -> list[float]:
    host, port = url.removeprefix("http://").split(":")
    client = RawHttp(host, int(port), {"x-api-key": identity["api_key"]})
    await client.connect()
    latencies = []
    try:
        for path in paths:
            sent = time.perf_counter()
            status, payload = await client.request("GET", path)
            latencies.append(time.perf_counter() - sent)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {payload[:200]!r}")
    finally:
        client.close()
    return latencies


def run_reads(
    url: str, data_dir: Path, identity: dict[str, str], fills: int, requests: int
) -> dict[str, dict[str, float]]:
    store_fills(data_dir, identity["account_id"], fills)
    account = identity["account_id"]
    first_page = f"/trades?account_id={account}&limit=100"
    page = httpx.get(url + first_page, headers={"x-api-key": identity["api_key"]}).json()
    cursor = page["next_cursor"]
    deep = f"{first_page}&cursor={cursor}" if cursor else first_page
    trades = asyncio.run(timed_gets(url, identity, [first_page, deep] * (requests // 2)))
    positions = asyncio.run(timed_gets(url, identity, [f"/positions?account_id={account}"] * requests))
    return {
        "get_trades": {
            "ops_per_s": len(trades) / sum(trades),
            "fills_stored": float(fills),
            **percentiles(trades),
        },
        "get_positions": {"ops_per_s": len(positions) / sum(positions), **percentiles(positions)},
    }


def run_reads_side_by_side(
    args: argparse.Namespace, fills: int, requests: int
) -> list[tuple[str, dict[str, float]]]:
    """`GET /trades` and `GET /positions` of `serve --workers N` for each N of `--reads-workers` (and
    from `--baseline-src` too, when given), all started and filled alike, then read in alternating
    rounds (1, 2, 2, 1, ...) so the shared machine's drift falls on each; one client, so a latency is
    the service time. The server CPU per request counts all of a layout's processes; `marginal_` takes
    out what they spend idle (timers, polling: one client's slow requests leave much idle time)."""
    import fastapi_peer

    layouts = [(f"workers_{n}", int(n), None) for n in args.reads_workers.split(",")]
    if args.baseline_src:
        layouts += [(f"{name}_baseline", n, args.baseline_src) for name, n, _ in layouts]
    rounds = max(1, args.rounds)
    per_round = max(2, requests // rounds // 2 * 2)
    servers: dict[str, subprocess.Popen[bytes]] = {}
    targets: dict[str, tuple[str, dict[str, str], list[str], str]] = {}
    keys = [(name, kind) for name, _, _ in layouts for kind in ("trades", "positions")]
    latencies: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    cpu = dict.fromkeys(keys, 0.0)
    with contextlib.ExitStack() as stack:
        for name, workers, source in layouts:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tradehall-bench-")))
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            servers[name] = start_server(data_dir, port, workers, source)
            stack.callback(stop_server, servers[name])
            identity = setup(url, 1)[0]
            store_fills(data_dir, identity["account_id"], fills)
            first_page = f"/trades?account_id={identity['account_id']}&limit=100"
            cursor = httpx.get(url + first_page, headers={"x-api-key": identity["api_key"]}).json()
            deep = f"{first_page}&cursor={cursor['next_cursor']}" if cursor["next_cursor"] else first_page
            positions = f"/positions?account_id={identity['account_id']}"
            targets[name] = (url, identity, [first_page, deep], positions)
        for url, identity, pages, positions in targets.values():  # warm up
            asyncio.run(timed_gets(url, identity, pages * 10 + [positions] * 20))
        names = [name for name, _, _ in layouts]
        idle_before = {name: fastapi_peer.process_tree_cpu(servers[name].pid) for name in names}
        idle_started = time.monotonic()
        time.sleep(5.0)  # every layout idle at once: its timers' CPU rate, taken out of the rounds
        idle_elapsed = time.monotonic() - idle_started
        idle_rate = {
            name: (fastapi_peer.process_tree_cpu(servers[name].pid) - idle_before[name]) / idle_elapsed
            for name in names
        }
        busy = dict.fromkeys(keys, 0.0)
        for round_index in range(rounds):
            for name in names if round_index % 2 == 0 else names[::-1]:
                url, identity, pages, positions = targets[name]
                for kind, paths in (
                    ("trades", pages * (per_round // 2)),
                    ("positions", [positions] * per_round),
                ):
                    before = fastapi_peer.process_tree_cpu(servers[name].pid)
                    started = time.monotonic()
                    latencies[name, kind] += asyncio.run(timed_gets(url, identity, paths))
                    busy[name, kind] += time.monotonic() - started
                    cpu[name, kind] += fastapi_peer.process_tree_cpu(servers[name].pid) - before
    figures: list[tuple[str, dict[str, float]]] = []
    for name, kind in keys:
        done = latencies[name, kind]
        figures.append(
            (
                f"get_{kind}_{name}",
                {
                    "ops_per_s": len(done) / sum(done),
                    "orders": float(len(done)),
                    "cpu_us_per_request": cpu[name, kind] / len(done) * 1e6,
                    "marginal_cpu_us_per_request": (cpu[name, kind] - idle_rate[name] * busy[name, kind])
                    / len(done)
                    * 1e6,
                    **percentiles(done),
                },
            )
        )
    return figures


# ---- side by side with a trivial FastAPI route (issue 18) -------------------------------------------


def run_vs_fastapi(args: argparse.Namespace, seconds: float) -> list[tuple[str, dict[str, float]]]:
    """The trivial route, `--workers 1` and `--workers 2`, all started, then driven in alternating
    rounds (trivial, w1, w2, w2, w1, trivial, ...) so the shared machine's drift falls on each."""
    import fastapi_peer

    threads = max(1, args.wrk_threads)
    layouts = ["fastapi_trivial", "orders_workers_1", f"orders_workers_{args.vs_workers}"]
    if args.baseline_src:  # the same layouts from another checkout, for a before/after in the same run
        layouts += ["orders_workers_1_baseline", f"orders_workers_{args.vs_workers}_baseline"]
    servers: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    pairs: dict[str, list[tuple[dict[str, str], dict[str, str]]]] = {}
    with contextlib.ExitStack() as stack:
        for layout in layouts:
            port = free_port()
            urls[layout] = f"http://127.0.0.1:{port}"
            if layout == "fastapi_trivial":
                servers[layout] = fastapi_peer.start_trivial(port)
                stack.callback(stop_server, servers[layout])
                pairs[layout] = fastapi_peer.dummy_pairs(threads)
            else:
                data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="tradehall-bench-"))
                workers = 1 if layout.startswith("orders_workers_1") else args.vs_workers
                source = args.baseline_src if layout.endswith("_baseline") else None
                servers[layout] = start_server(Path(data_dir), port, workers, source)
                stack.callback(stop_server, servers[layout])  # before the set-up, which may fail
                made = setup(urls[layout], 2 * threads)
                pairs[layout] = [(made[2 * n], made[2 * n + 1]) for n in range(threads)]
        runs: dict[str, list[dict[str, float]]] = {layout: [] for layout in layouts}
        cpu: dict[str, float] = dict.fromkeys(layouts, 0.0)
        for round_index in range(args.rounds):
            for layout in layouts if round_index % 2 == 0 else layouts[::-1]:
                before = fastapi_peer.process_tree_cpu(servers[layout].pid)
                if fastapi_peer.have_wrk():
                    result = fastapi_peer.run_wrk(
                        urls[layout], pairs[layout], MARKET, seconds / args.rounds, args.http_workers, threads
                    )
                else:
                    result = run_http(urls[layout], [p[0] for p in pairs[layout]], args.processes,
                                      seconds / args.rounds, None)
                cpu[layout] += fastapi_peer.process_tree_cpu(servers[layout].pid) - before
                runs[layout].append(result)
    figures: list[tuple[str, dict[str, float]]] = []
    rates: dict[str, float] = {}
    for layout in layouts:
        done = runs[layout]
        requests = sum(run["orders"] for run in done)
        rates[layout] = sum(run["ops_per_s"] for run in done) / len(done)
        figures.append(
            (
                layout,
                {
                    "ops_per_s": rates[layout],
                    "orders": requests,
                    "cpu_us_per_request": cpu[layout] / requests * 1e6,
                    **{
                        key: sorted(run[key] for run in done)[len(done) // 2]
                        for key in ("p50_us", "p99_us", "p999_us")
                    },
                },
            )
        )
    trivial = rates["fastapi_trivial"]
    figures.append(
        (
            "vs_fastapi",
            {
                f"{layout.removeprefix('orders_')}_ratio": rates[layout] / trivial
                for layout in layouts
                if layout != "fastapi_trivial"
            },
        )
    )
    return figures


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGINT)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# ---- main ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Short runs (under 30 s in all).")
    parser.add_argument(
        "--workers", type=int, default=1, help="`tradehall serve --workers N` (N > 1: N gateway processes)."
    )
    parser.add_argument("--json", action="store_true", help="One JSON object per figure.")
    parser.add_argument("--seconds", type=float, default=None, help="Seconds per workload.")
    parser.add_argument("--paced-seconds", type=float, default=None, help="Seconds of the paced run (60).")
    parser.add_argument("--rate", type=float, default=1000.0, help="Orders/s of the paced HTTP run.")
    parser.add_argument("--processes", type=int, default=2, help="Load-generator processes.")
    parser.add_argument("--http-workers", type=int, default=16, help="Concurrent HTTP clients in all.")
    parser.add_argument("--ws-connections", type=int, default=4, help="WebSocket connections in all.")
    parser.add_argument("--ws-window", type=int, default=64, help="Orders in flight per connection.")
    parser.add_argument("--ws-batch", type=int, default=50, help="Orders per frame of the ws_batch workload.")
    parser.add_argument(
        "--ws-batch-window", type=int, default=400, help="Orders in flight per connection (ws_batch)."
    )
    parser.add_argument("--ws-rate", type=float, default=1000.0, help="Orders/s of the paced WebSocket run.")
    parser.add_argument("--fills", type=int, default=None, help="Fills stored for the read workload (1e6).")
    parser.add_argument(
        "--only",
        choices=[
            "http_peak", "http_paced", "ws_peak", "ws_batch", "ws_paced", "reads", "alpaca", "vs_fastapi"
        ],
        action="append",
    )
    parser.add_argument("--vs-workers", type=int, default=2, help="Gateways of vs_fastapi's second layout.")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads of vs_fastapi.")
    parser.add_argument(
        "--baseline-src", default=None, help="vs_fastapi, reads: also serve this `src` dir (before/after)."
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="Alternating rounds of the alpaca and side-by-side workloads."
    )
    parser.add_argument(
        "--reads-workers",
        default=None,
        help="reads: `serve --workers N` for each N of this list (e.g. 1,2), side by side in one run.",
    )
    parser.add_argument(
        "--alpaca-workers", type=int, default=4, help="Concurrent clients of the alpaca workload (1 process)."
    )
    args = parser.parse_args()
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    paced_seconds = args.paced_seconds or (5.0 if args.quick else 60.0)
    workloads = args.only or ["http_paced", "http_peak", "ws_paced", "ws_peak", "ws_batch", "reads", "alpaca"]
    fills = args.fills or (50_000 if args.quick else 1_000_000)
    vs_fastapi = "vs_fastapi" in workloads
    workloads = [workload for workload in workloads if workload != "vs_fastapi"]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    figures: list[tuple[str, dict[str, float]]] = []
    if vs_fastapi:
        figures.extend(run_vs_fastapi(args, 3 * seconds))
    if args.reads_workers and "reads" in workloads:  # its own servers, one per layout
        figures.extend(run_reads_side_by_side(args, fills, 200 if args.quick else 1000))
        workloads = [workload for workload in workloads if workload != "reads"]
    with tempfile.TemporaryDirectory(prefix="tradehall-bench-") as data_dir:
        server = start_server(Path(data_dir), port, args.workers) if workloads else None
        try:
            identities = setup(url, max(args.http_workers, args.ws_connections)) if workloads else []
            for workload in workloads:
                assert server is not None
                if workload == "alpaca":
                    figures.extend(
                        run_alpaca(
                            url, identities[: args.alpaca_workers], 1, 2 * seconds, args.rounds, server.pid
                        ).items()
                    )
                    continue
                if workload == "reads":
                    for name, figures_of in run_reads(
                        url, Path(data_dir), identities[-1], fills, 200 if args.quick else 1000
                    ).items():
                        figures.append((name, figures_of))
                    continue
                if workload == "http_peak":  # the projector's lag at the peak rate, beside it
                    sampler = LagSampler(url, Path(data_dir))
                    sampler.start()
                    result = run_http(url, identities[: args.http_workers], args.processes, seconds, None)
                    figures.append(("projector_lag", sampler.stop()))
                elif workload == "http_paced":
                    result = run_http(
                        url, identities[: args.http_workers], args.processes, paced_seconds, args.rate
                    )
                else:
                    ws_identities = identities[: args.ws_connections]
                    batch, window = (
                        (args.ws_batch, args.ws_batch_window)
                        if workload == "ws_batch"
                        else (1, args.ws_window)
                    )
                    rate = args.ws_rate if workload == "ws_paced" else None
                    result = run_ws(
                        url,
                        ws_identities,
                        args.processes,
                        paced_seconds if rate else seconds,
                        window,
                        batch,
                        rate,
                        server.pid,
                    )
                figures.append((workload, result))
        finally:
            if server is not None:
                stop_server(server)
    units = {
        "ops_per_s": "ops/s",
        "orders": "orders",
        "fills_stored": "fills",
        "samples": "samples",
        "p50_us": "us",
        "p99_us": "us",
        "p999_us": "us",
        "p50_ratio": "x",
        "cpu_ratio": "x",
        "cpu_us_per_order": "us",
        "generator_cpu_us_per_order": "us",
        "ops_ratio": "x",
        "cpu_us_per_request": "us",
        "marginal_cpu_us_per_request": "us",
    }
    if args.json:
        for workload, result in figures:
            for metric, value in result.items():
                print(
                    json.dumps(
                        {
                            "bench": BENCH,
                            "workload": workload,
                            "metric": metric,
                            "value": round(value, 3 if metric.endswith("_ratio") else 1),
                            "unit": "x" if metric.endswith("_ratio") else units[metric],
                        }
                    )
                )
        return
    print(f"{'workload':<26} {'ops/s':>10} {'orders':>9} {'p50 ms':>9} {'p99 ms':>9} {'p99.9 ms':>9}")
    for workload, result in figures:
        if workload == "projector_lag":
            print(f"{workload:<26} read models behind the journal: p50 {result['p50_us'] / 1000:.0f} ms,"
                  f" p99 {result['p99_us'] / 1000:.0f} ms ({result['samples']:.0f} samples)")
            continue
        if workload == "vs_fastapi":
            print(
                f"{workload:<26} requests/s over the trivial FastAPI route's: "
                + ", ".join(f"{name.removesuffix('_ratio')} {value:.2f}x" for name, value in result.items())
            )
            continue
        if "p50_ratio" in result:
            print(
                f"{workload:<26} Alpaca / native: server CPU per order {result['cpu_ratio']:.3f}x,"
                f" p50 {result['p50_ratio']:.3f}x, native ops/s / Alpaca {result['ops_ratio']:.3f}x"
            )
            continue
        p50, p99, p999 = (result[key] / 1000 for key in ("p50_us", "p99_us", "p999_us"))
        print(
            f"{workload:<26} {result['ops_per_s']:>10.0f} {result.get('orders', 0):>9.0f}"
            f" {p50:>9.2f} {p99:>9.2f} {p999:>9.2f}"
            + (
                f"  server CPU {result['cpu_us_per_order']:.0f} us/order"
                if "cpu_us_per_order" in result
                else f"  server CPU {result['cpu_us_per_request']:.0f} us/request"
                + (
                    f" ({result['marginal_cpu_us_per_request']:.0f} less idle)"
                    if "marginal_cpu_us_per_request" in result
                    else ""
                )
                if "cpu_us_per_request" in result
                else ""
            )
            + (
                f", generator {result['generator_cpu_us_per_order']:.0f} us/order"
                if "generator_cpu_us_per_order" in result
                else ""
            )
        )


if __name__ == "__main__":
    main()
