"""POST /backtests through a real server: a background job in its own process, its progress, its
report (the same as the same backtest run in-process), refusals before any job exists, ownership."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.domain.enums import MarketKind
from tradehall.domain.market import MarketSpec
from tradehall.strategies.backtest.data import Ohlcv
from tradehall.strategies.backtest.job import BacktestRequest, execute
from tradehall.strategies.backtest.report import report_bytes


def write_bars(path: Path, n: int = 600) -> Path:
    lines = ["t,open,high,low,close,volume"]
    price = 100.0
    for i in range(n):
        o = price
        step = 0.5 if (i // 25) % 2 == 0 else -0.5
        price = o + step
        high, low = max(o, price) + 0.5, min(o, price) - 0.5
        lines.append(f"{1704067200000 + i * 60000},{o},{high},{low},{price},10")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("backtest-data")
    write_bars(data / "btc.csv")
    (data / "broken.csv").write_text("t,open,high,low,close,volume\n1000,1,2,0.5,1,1\n1000,1,2,0.5,1,1\n")
    with running_server(tmp_path_factory.mktemp("server"), backtest_data_dirs=[data]) as running:
        create_demo_markets(running.admin())
        yield running


def headers(server: Server) -> dict[str, str]:
    name = "b" + uuid.uuid4().hex[:12]
    httpx.post(f"{server.url}/auth/register", json={"username": name, "password": "pw-" + name})
    token = httpx.post(f"{server.url}/auth/token", json={"username": name, "password": "pw-" + name})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


BODY: dict[str, Any] = {
    "strategies": [{"name": "sma_crossover", "parameters": {"fast": 5, "slow": 20}}],
    "markets": ["BTC-USD"],
    "data": {"path": "btc.csv"},
    "settings": {
        "initial_balance": "10000", "interval": "1m", "order_quantity": "1", "stop_loss_percent": "2"
    },
    "fill_model": {"slippage": "0.0005", "latency_ms": 1},
    "seed": 3,
}


def wait(server: Server, auth: dict[str, str], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        job = httpx.get(f"{server.url}/backtests/{job_id}", headers=auth).json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job  # type: ignore[no-any-return]
        time.sleep(0.1)


def test_a_backtest_runs_in_the_background_and_reports_what_it_would_in_process(server: Server) -> None:
    auth = headers(server)
    answer = httpx.post(f"{server.url}/backtests", json=BODY, headers=auth)
    assert answer.status_code == 202, answer.text
    created = answer.json()
    assert created["status"] in ("queued", "running")
    job = wait(server, auth, created["id"])
    assert job["status"] == "done", job
    assert job["progress"] == "1"
    report = httpx.get(f"{server.url}/backtests/{created['id']}/report", headers=auth)
    assert report.status_code == 200
    assert report.headers["content-type"] == "application/json"
    body = report.json()
    assert set(body) >= {"metrics", "trades", "equity", "drawdown"}
    assert body["metrics"]["trades"] == len(body["trades"]) > 0
    # the same request run here, on the market's spec as the server has it, gives the same bytes
    market = httpx.get(f"{server.url}/markets/BTC-USD").json()
    spec = MarketSpec(symbol="BTC-USD", kind=MarketKind.SPOT, base="BTC", quote="USD",
                      tick_size=Decimal(market["tick_size"]), lot_size=Decimal(market["lot_size"]),
                      taker_fee=Decimal(market["taker_fee"]), maker_fee=Decimal(market["maker_fee"]))
    request = BacktestRequest.parse({**BODY, "data": None})
    local = replace(request, spec=spec, data_path=Path(server.settings.backtest_data_dirs[0]) / "btc.csv")
    _, expected = execute(local)
    assert orjson.loads(report_bytes(expected))["metrics"] == body["metrics"]
    page = httpx.get(f"{server.url}/backtests/{created['id']}/report.html", headers=auth)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert b"data:image/png;base64," in page.content
    listed = httpx.get(f"{server.url}/backtests", headers=auth).json()["items"]
    assert [item["id"] for item in listed] == [created["id"]]
    other = headers(server)
    assert httpx.get(f"{server.url}/backtests/{created['id']}", headers=other).status_code == 403
    assert httpx.get(f"{server.url}/backtests/{created['id']}/report", headers=other).status_code == 403


@pytest.mark.parametrize(
    ("change", "status", "code", "fragment"),
    [
        ({"strategies": [{"name": "nope"}]}, 404, "not_found", "no strategy named 'nope'"),
        ({"strategies": [{"name": "sma_crossover", "parameters": {"fast": 50, "slow": 20}}]}, 400,
         "invalid_request", "'fast' must be below 'slow'"),
        ({"markets": ["NOPE-USD"]}, 404, "not_found", "no market 'NOPE-USD'"),
        ({"data": {"path": "/etc/passwd"}}, 400, "invalid_request", "backtest data directories"),
        ({"data": {"path": "../server/tradehall.sqlite3"}}, 400, "invalid_request",
         "backtest data directories"),
        ({"settings": {"max_drawdown": "2"}}, 400, "invalid_request", "max_drawdown"),
        ({"fill_model": {"slippage": "-1"}}, 400, "invalid_request", "slippage"),
        ({"start": "yesterday"}, 400, "invalid_request", "start"),
    ],
)
def test_bad_requests_are_refused_before_a_job_exists(
    server: Server, change: dict[str, Any], status: int, code: str, fragment: str
) -> None:
    auth = headers(server)
    answer = httpx.post(f"{server.url}/backtests", json={**BODY, **change}, headers=auth)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert fragment in answer.json()["detail"]
    assert httpx.get(f"{server.url}/backtests", headers=auth).json()["items"] == []


def test_bad_data_fails_the_job_with_its_reason_and_no_report(server: Server) -> None:
    auth = headers(server)
    body = {**BODY, "data": {"path": "broken.csv"}}
    created = httpx.post(f"{server.url}/backtests", json=body, headers=auth)
    assert created.status_code == 202
    job = wait(server, auth, created.json()["id"])
    assert job["status"] == "failed"
    assert job["status_reason"] == "row 3: t is not after the previous row's (oldest first)"
    report = httpx.get(f"{server.url}/backtests/{job['id']}/report", headers=auth)
    assert report.status_code == 409 and report.json()["code"] == "conflict"


def test_unauthenticated_is_401(server: Server) -> None:
    assert httpx.post(f"{server.url}/backtests", json=BODY).status_code == 401


def test_without_data_a_backtest_reads_the_markets_candles_from_the_read_models(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    def rfc3339(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    with running_server(tmp_path / "data", clock="manual", clock_tick_seconds=0) as server:
        admin = server.admin()
        admin.create_market(symbol="CAN-USD", kind="spot", base="CAN", quote="USD", tick_size="0.5",
                            lot_size="0.001")
        minute = (datetime.now(UTC) + timedelta(days=30)).replace(second=0, microsecond=0)
        admin.move_clock(set_to=rfc3339(minute + timedelta(seconds=10)))
        (buyer, buyer_id), (seller, seller_id) = server.trader(), server.trader()
        admin.deposit(seller_id, "100", currency="CAN")
        prices = [100 + (i % 8 if (i // 8) % 2 == 0 else 8 - i % 8) for i in range(40)]  # a zigzag
        for price in prices:
            seller.place_order(seller_id, "CAN-USD", "sell", "1", str(price))
            assert buyer.place_order(buyer_id, "CAN-USD", "buy", "1", str(price))["status"] == "filled"
            admin.move_clock(advance_seconds=60)
        deadline = time.monotonic() + 30
        while len(admin.candles("CAN-USD", "1m", limit=100)["items"]) < len(prices):
            assert time.monotonic() < deadline, "the candles did not reach the read models"
            time.sleep(0.1)
        auth = headers(server)
        body = {
            "strategies": [{"name": "sma_crossover", "parameters": {"fast": 2, "slow": 5}}],
            "markets": ["CAN-USD"],
            "start": rfc3339(minute),
            "end": rfc3339(minute + timedelta(minutes=len(prices))),
            "settings": {"initial_balance": "10000", "interval": "1m", "order_quantity": "1"},
        }
        created = httpx.post(f"{server.url}/backtests", json=body, headers=auth)
        assert created.status_code == 202, created.text
        job = wait(server, auth, created.json()["id"])
        assert job["status"] == "done", job
        report = httpx.get(f"{server.url}/backtests/{job['id']}/report", headers=auth).json()
        assert report["run"]["bars"] == len(prices)
        assert report["run"]["start"] == rfc3339(minute)
        assert report["equity"][0] == [rfc3339(minute), "10000.00"]
        assert report["metrics"]["trades"] >= 1
        # the same bars in-process (one trade a minute: open = high = low = close) give the same report
        starts = [int((minute + timedelta(minutes=i)).timestamp()) * 10**9 for i in range(len(prices))]
        floats = [float(p) for p in prices]
        bars = Ohlcv(starts, floats, floats, floats, floats, [1.0] * len(prices))
        spec = MarketSpec(symbol="CAN-USD", kind=MarketKind.SPOT, base="CAN", quote="USD",
                          tick_size=Decimal("0.5"), lot_size=Decimal("0.001"))
        request = replace(BacktestRequest.parse(body), spec=spec)
        _, expected = execute(request, ohlcv=bars.between(request.start, request.end))
        assert report["metrics"] == orjson.loads(report_bytes(expected))["metrics"]
        assert report["trades"] == orjson.loads(report_bytes(expected))["trades"]
