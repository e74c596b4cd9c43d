"""The gateway -> engine command round trip: ZeroMQ (what `serve --workers N` uses) against NATS
request/reply, with the same msgspec framing and the same payloads.

A server process stands in for the engine process: it decodes each request (a `PlaceOrder`) and
answers with a fixed durable result (seq, ts and an `OrderAccepted` event), without an engine, so
the figure is the transport alone. A client process (the gateway) keeps `--window` requests in
flight and times each one (sent -> answered):

- zmq:  the product's own `EngineEndpoint` (ROUTER, in the server) and `EngineClient` (DEALER), over
        an `ipc://` socket: the requests of one loop turn share a frame, the replies of one batch too.
- nats: nats-py request/reply through the NATS server on 127.0.0.1:4222 (`--nats-url`); one message
        per request and per reply (NATS has no notion of a batch of requests), the server replying
        from its subscription callback.

`--window 1` gives the unloaded round trip, a larger window the throughput. Prints a table, and with
`--json` one JSON object per figure: {"bench": "transport", "workload": "zmq_window_64", ...}.
Run: `python bench/transport_bench.py [--quick] [--json]` (NATS skipped, and said so, when it is not
reachable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from tradehall.domain.commands import AnyCommand, PlaceOrder
from tradehall.domain.enums import OrderSide, OrderStatus, OrderType, Side, TimeInForce
from tradehall.domain.events import OrderAccepted
from tradehall.service.runner import CommandResult
from tradehall.service.transport import CommandReply, CommandRequest, EngineClient, EngineEndpoint

BENCH = "transport"
SUBJECT = "tradehall.bench.commands"

_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(CommandRequest)


def command(index: int) -> PlaceOrder:
    return PlaceOrder(
        account_id="acc_0123456789abcdef0123",
        market="BTC-USD",
        side=OrderSide.BUY,
        quantity=Decimal("0.010"),
        type=OrderType.LIMIT,
        price=Decimal(f"{10000 + index % 100}.5"),
        time_in_force=TimeInForce.GTC,
        correlation_id=f"bench-{index}",
    )


def result(seq: int, placed: AnyCommand | None) -> CommandResult:
    accepted = OrderAccepted(
        order_id=seq,
        account_id="acc_0123456789abcdef0123",
        market="BTC-USD",
        side=Side.BUY,
        requested_side=OrderSide.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        quantity=10,
        price=20001,
        stop_price=None,
        expire_at=None,
        post_only=False,
        reduce_only=False,
        client_order_id=None,
        status=OrderStatus.OPEN,
        ts=time.time_ns(),
    )
    return CommandResult(seq=seq, ts=accepted.ts, events=(accepted,))


# ---- servers ------------------------------------------------------------------------------------------


async def zmq_server(address: str, ready: Any) -> None:
    seq = 0

    async def submit_many(commands: Sequence[AnyCommand]) -> list[CommandResult]:
        nonlocal seq
        answers = []
        for placed in commands:
            seq += 1
            answers.append(result(seq, placed))
        return answers

    endpoint = EngineEndpoint(address, submit_many, lambda: seq)
    await endpoint.start()
    ready.set()
    await asyncio.Event().wait()


async def nats_server(url: str, ready: Any) -> None:
    import nats

    connection = await nats.connect(url)
    seq = 0

    async def answer(message: Any) -> None:
        nonlocal seq
        request = _request_decoder.decode(message.data)
        seq += 1
        done = result(seq, request.command)
        reply = CommandReply(id=request.id, seq=done.seq, ts=done.ts, events=done.events)
        await message.respond(_encoder.encode(reply))

    await connection.subscribe(SUBJECT, cb=answer)
    await connection.flush()
    ready.set()
    await asyncio.Event().wait()


def serve(kind: str, where: str, ready: Any) -> None:
    runner = zmq_server if kind == "zmq" else nats_server
    asyncio.run(runner(where, ready))


# ---- clients ------------------------------------------------------------------------------------------


async def drive(send: Any, count: int, window: int) -> tuple[float, list[float]]:
    """`count` round trips, `window` in flight; (elapsed seconds, each round trip in seconds)."""
    latencies: list[float] = []
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            await send(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(window)))
    return time.perf_counter() - started, latencies


async def zmq_client(address: str, count: int, window: int) -> tuple[float, list[float], float]:
    client = EngineClient(address, timeout=30.0)
    await client.start()

    async def send(index: int) -> None:
        await client.submit(command(index))

    await drive(send, min(count, 2000), window)  # warm-up
    cpu = time.process_time()
    elapsed, latencies = await drive(send, count, window)
    cpu = time.process_time() - cpu
    await client.stop()
    return elapsed, latencies, cpu


async def nats_client(url: str, count: int, window: int) -> tuple[float, list[float], float]:
    import nats

    connection = await nats.connect(url)
    reply_decoder = msgspec.msgpack.Decoder(CommandReply)

    async def send(index: int) -> None:
        payload = _encoder.encode(CommandRequest(id=index, command=command(index)))
        message = await connection.request(SUBJECT, payload, timeout=30.0)
        reply_decoder.decode(message.data)

    await drive(send, min(count, 2000), window)
    cpu = time.process_time()
    elapsed, latencies = await drive(send, count, window)
    cpu = time.process_time() - cpu
    await connection.close()
    return elapsed, latencies, cpu


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(kind: str, where: str, count: int, window: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    server = context.Process(target=serve, args=(kind, where, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(120):
            raise RuntimeError(f"the {kind} server did not start")
        assert server.pid is not None
        before = server_cpu(server.pid)
        client = zmq_client if kind == "zmq" else nats_client
        elapsed, latencies, client_cpu = asyncio.run(client(where, count, window))
        spent = server_cpu(server.pid) - before
    finally:
        server.terminate()
        server.join(10)
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6

    return {
        "ops_per_s": count / elapsed,
        "p50_us": at(0.50),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "cpu_us_per_op": (client_cpu + spent) / count * 1e6,
    }


def nats_reachable(url: str) -> bool:
    async def probe() -> bool:
        import nats

        try:
            connection = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        except Exception:
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer round trips (under 30 s in all).")
    parser.add_argument("--json", action="store_true", help="One JSON object per figure.")
    parser.add_argument("--count", type=int, default=None, help="Round trips per workload.")
    parser.add_argument("--window", type=int, action="append", help="Requests in flight (1 and 64).")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--rounds", type=int, default=2, help="Alternating rounds (zmq, nats, nats, zmq...).")
    args = parser.parse_args()
    count = args.count or (5_000 if args.quick else 50_000)
    windows = args.window or [1, 64]
    kinds = ["zmq", "nats"] if nats_reachable(args.nats_url) else ["zmq"]
    if "nats" not in kinds:
        print(f"NATS not reachable at {args.nats_url}: zmq only", file=sys.stderr)
    figures: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="tradehall-transport-") as directory:
        for window in windows:
            runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
            for round_index in range(args.rounds):
                for kind in kinds if round_index % 2 == 0 else kinds[::-1]:
                    where = f"ipc://{directory}/engine-{round_index}.sock" if kind == "zmq" else args.nats_url
                    runs[kind].append(run(kind, where, count, window))
            for kind in kinds:
                done = runs[kind]
                figures.append(
                    (
                        f"{kind}_window_{window}",
                        {key: sum(r[key] for r in done) / len(done) for key in done[0]},  # mean of rounds
                    )
                )
    units = {"ops_per_s": "ops/s", "p50_us": "us", "p99_us": "us", "p999_us": "us", "cpu_us_per_op": "us"}
    if args.json:
        for workload, result_of in figures:
            for metric, value in result_of.items():
                print(
                    json.dumps(
                        {"bench": BENCH, "workload": workload, "metric": metric, "value": round(value, 1),
                         "unit": units[metric]}
                    )
                )
        return
    print(
        f"{'workload':<18} {'round trips/s':>14} {'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9}"
        f" {'CPU us/op':>10}"
    )
    for workload, r in figures:
        print(
            f"{workload:<18} {r['ops_per_s']:>14.0f} {r['p50_us']:>9.0f} {r['p99_us']:>9.0f}"
            f" {r['p999_us']:>9.0f} {r['cpu_us_per_op']:>10.1f}"
        )


if __name__ == "__main__":
    main()
