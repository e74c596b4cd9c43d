"""The `vs_fastapi` workload of bench/api_load.py: order placement beside a trivial FastAPI route.

Issue 18 measures `POST /orders` against the ceiling of the framework it is built on: a trivial
FastAPI + pydantic route (validate a small JSON body, answer a small JSON object) served by the same
uvicorn configuration as `tradehall serve` (`tradehall.api.server.uvicorn_config`: the same HTTP
protocol class with its read deadlines, httptools when installed, uvicorn's `auto` loop, uvloop when
installed), in one process. The same load generator drives both: `wrk` (a C program, so it takes
little of the shared cores) when installed, else the Python closed loop of api_load.py.

The order workload is the issue's: orders that alternately rest and fill, no cancels. Each wrk
thread alternates a buy and a sell at one price from two accounts of its own, so a buy rests and the
next sell fills it (two accounts: self-trade prevention would cancel a sell against its own buy).

Run the trivial server alone: `python bench/fastapi_peer.py PORT`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

WRK_SCRIPT = r"""
local identities = {IDENTITIES}
local counter = 0
local thread_index = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  counter = 0
end

function request()
  counter = counter + 1
  local pair = identities[(thread_index % #identities) + 1]
  local side = counter % 2 == 0 and "sell" or "buy"
  local who = counter % 2 == 0 and pair[2] or pair[1]
  local body = '{"account_id":"' .. who[1] .. '","market":"{MARKET}","side":"' .. side ..
    '","type":"limit","quantity":"0.001","price":"10000.0"}'
  return wrk.format("POST", "{PATH}", {["x-api-key"] = who[2], ["content-type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.mean))
end
"""


class TrivialOrder(BaseModel):
    account_id: str
    market: str
    side: str
    type: str
    quantity: str
    price: str | None = None


class TrivialAnswer(BaseModel):
    id: int
    account_id: str
    market: str
    status: str


def trivial_app() -> FastAPI:
    """A FastAPI app with one pydantic-validated POST route: the framework's floor for a request."""
    app = FastAPI()
    counter = iter(range(1, 1 << 62))

    @app.post("/orders", status_code=201)
    async def create(body: TrivialOrder) -> TrivialAnswer:
        return TrivialAnswer(id=next(counter), account_id=body.account_id, market=body.market, status="open")

    return app


def serve_trivial(port: int) -> None:
    """Serve the trivial app with tradehall's own uvicorn configuration (the same server stack)."""
    import uvicorn

    from tradehall.api.server import uvicorn_config
    from tradehall.service.settings import Settings

    settings = Settings(local=True)
    uvicorn.Server(uvicorn_config(trivial_app(), settings, host="127.0.0.1", port=port, lifespan="off")).run()


def start_trivial(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, __file__, str(port)], stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180  # a loaded machine imports slowly
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the trivial FastAPI server did not start")


def process_tree_cpu(pid: int) -> float:
    """User + system CPU seconds of `pid` and all its live descendants (a supervisor's children)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str,
    pairs: list[tuple[dict[str, str], dict[str, str]]],
    market: str,
    seconds: float,
    connections: int,
    threads: int,
) -> dict[str, float]:
    """`wrk` against `POST /orders` of `url`; one (buyer, seller) pair of identities per thread."""

    def lua(identity: dict[str, str]) -> str:
        return "{" + json.dumps(identity["account_id"]) + ", " + json.dumps(identity["api_key"]) + "}"

    identities = ", ".join("{" + lua(buyer) + ", " + lua(seller) + "}" for buyer, seller in pairs)
    script = (
        WRK_SCRIPT.replace("{IDENTITIES}", "{" + identities + "}")
        .replace("{MARKET}", market)
        .replace("{PATH}", "/orders")
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:.0f}s", "-s", file.name]
    try:
        output = subprocess.run(
            [*command, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(file.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", output)
    if match is None:
        raise RuntimeError(f"wrk printed no result: {output}")
    requests, duration_us, bad_status, socket_errors, p50, p99, p999, _mean = (int(x) for x in match.groups())
    if bad_status or socket_errors:
        raise RuntimeError(f"wrk: {bad_status} non-2xx answers, {socket_errors} socket errors: {output}")
    return {
        "ops_per_s": requests / (duration_us / 1e6),
        "orders": float(requests),
        "p50_us": float(p50),
        "p99_us": float(p99),
        "p999_us": float(p999),
    }


def dummy_pairs(count: int) -> list[tuple[dict[str, str], dict[str, str]]]:
    """Identities for the trivial route (it checks nothing): the same body shapes as the real ones."""
    return [
        (
            {"account_id": f"acc_buyer{n}", "api_key": "th_x"},
            {"account_id": f"acc_seller{n}", "api_key": "th_x"},
        )
        for n in range(count)
    ]


if __name__ == "__main__":
    serve_trivial(int(sys.argv[1]))
