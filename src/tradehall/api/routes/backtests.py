"""Backtests as background jobs: submit (202), follow the progress, read the report (JSON or HTML).

A job belongs to the user who submitted it (another user's is 403). `data.path` must name a file in
one of the directories `TRADEHALL_BACKTEST_DATA_DIRS` allows: the server reads it, and a request must
not make it read anything else.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from tradehall.api.errors import ApiError, forbidden
from tradehall.api.gateway import Gateway, GatewayDep, PrincipalDep
from tradehall.api.routes.common import ERRORS, json_response, page
from tradehall.api.schemas import BacktestCreate, BacktestOut, BacktestReportOut, BacktestsPage
from tradehall.domain.errors import Code, invalid_request
from tradehall.engine import views
from tradehall.strategies.backtest.job import BacktestRequest
from tradehall.strategies.backtest.jobs import DONE, Job

router = APIRouter(tags=["backtests"], responses=ERRORS)


def _data_dirs(gateway: Gateway) -> list[Path]:
    dirs = gateway.settings.backtest_data_dirs or [gateway.settings.data_dir / "backtest-data"]
    return [d.resolve() for d in dirs]


def _data_path(gateway: Gateway, given: str) -> Path:
    allowed = _data_dirs(gateway)
    candidate = Path(given)
    path = (candidate if candidate.is_absolute() else allowed[0] / candidate).resolve()
    if not any(path.is_relative_to(d) for d in allowed):
        raise invalid_request("data.path must name a file in one of the server's backtest data directories")
    if not path.exists():
        raise invalid_request(f"no data file {given!r} in the backtest data directories")
    return path


def _job_of(gateway: Gateway, job_id: str, user_id: str) -> Job:
    job = gateway.backtests.get(job_id)
    if job.owner != user_id:
        raise forbidden("this backtest belongs to another user")
    return job


@router.post(
    "/backtests",
    status_code=202,
    response_model=BacktestOut,
    summary="Run a backtest in the background",
    description="The same engine and fill model as paper trading, on a data file or the market's candles. "
    "Answers 202 with the job; follow it at `GET /backtests/{id}`. Unknown strategy 404, bad parameters or "
    "settings 400 `invalid_request`, all checked before the job exists.",
)
async def create_backtest(body: BacktestCreate, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    raw: dict[str, Any] = body.model_dump(exclude_none=True)
    request = BacktestRequest.parse(raw)
    spec = views.spec(gateway.engine, request.market)
    if spec is None:
        raise ApiError(Code.NOT_FOUND, f"no market {request.market!r}: a backtest takes its terms from it")
    data_path = _data_path(gateway, raw["data"]["path"]) if request.data_path is not None else None
    request = replace(request, spec=spec, data_path=data_path, strategies_dir=gateway.settings.strategies_dir)
    for choice in request.strategies:
        gateway.strategies.create(choice.name, choice.parameters)
    request.check()
    job = gateway.backtests.submit(principal.user_id, raw, request)
    return json_response(job.public(), status_code=202)


@router.get(
    "/backtests",
    response_model=BacktestsPage,
    summary="The caller's backtests, newest first",
    description="Every backtest job the caller submitted (kept across restarts), newest first.",
)
async def list_backtests(principal: PrincipalDep, gateway: GatewayDep) -> Response:
    return json_response(page([job.public() for job in gateway.backtests.owned_by(principal.user_id)]))


@router.get(
    "/backtests/{backtest_id}",
    response_model=BacktestOut,
    summary="A backtest: status, progress",
    description="`status` queued, running, done or failed (with `status_reason`); `progress` a decimal "
    "fraction. Another user's backtest is 403.",
)
async def get_backtest(backtest_id: str, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    return json_response(_job_of(gateway, backtest_id, principal.user_id).public())


def _finished(gateway: Gateway, backtest_id: str, user_id: str) -> Job:
    job = _job_of(gateway, backtest_id, user_id)
    if job.status != DONE:
        raise ApiError(Code.CONFLICT, f"backtest {backtest_id} is {job.status}, its report is not ready")
    return job


@router.get(
    "/backtests/{backtest_id}/report",
    response_model=BacktestReportOut,
    summary="A finished backtest's report",
    description="`{metrics, trades, equity, drawdown}` (and the run's terms under `run`); 409 `conflict` "
    "until the job is done.",
)
async def get_report(backtest_id: str, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    job = _finished(gateway, backtest_id, principal.user_id)
    data = gateway.backtests.report_path(job, "report.json").read_bytes()
    return Response(data, media_type="application/json")


@router.get(
    "/backtests/{backtest_id}/report.html",
    response_class=Response,
    summary="A finished backtest's report as one self-contained page",
    description="The metrics, the equity, drawdown and trades-on-price plots (inlined PNGs) and the trade "
    "list as one HTML page with no script and no external asset; 409 `conflict` until the job is done.",
)
async def get_report_html(backtest_id: str, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    job = _finished(gateway, backtest_id, principal.user_id)
    data = gateway.backtests.report_path(job, "report.html").read_bytes()
    return Response(data, media_type="text/html; charset=utf-8")
