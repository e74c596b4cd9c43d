"""Backtests as background jobs of the service: each runs in its own process (a backtest is CPU work
that must not slow the event loop or hold the GIL), at most `workers` at a time, the others queued.

A job lives in a directory `<root>/<id>/`: `job.json` (owner, request, status, progress, times),
and once done the report files. So a job outlives the process that ran it: after a restart, a job
that was queued or running is `failed` with `status_reason` "interrupted by a restart".
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import pickle
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from tradehall.domain.errors import not_found
from tradehall.strategies.backtest.job import BacktestRequest, candles, execute
from tradehall.strategies.backtest.render import write_report

log = structlog.get_logger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class Job:
    id: str
    owner: str
    request: dict[str, Any]
    status: str = QUEUED
    status_reason: str | None = None
    progress: float = 0.0
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "progress": format(Decimal(repr(round(self.progress, 4))).normalize(), "f"),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "strategies": self.request.get("strategies"),
            "markets": self.request.get("markets"),
        }
        if self.status_reason is not None:
            out["status_reason"] = self.status_reason
        return out


if TYPE_CHECKING:
    Progress = Synchronized[float]
else:
    Progress = Synchronized
"""A shared float (`multiprocessing.Value("d")`) the job's process writes its progress to."""


def _child(request_bytes: bytes, database_url: str | None, directory: str, progress: Progress) -> None:
    """The job's process: load, run, write the report; failures end up in `error.txt`."""
    out = Path(directory)
    try:
        request: BacktestRequest = pickle.loads(request_bytes)
        ohlcv = None
        if request.data_path is None:
            from tradehall.store.db import Store

            if database_url is None:
                raise ValueError("no database to read candles from")
            store = Store.from_url(database_url)
            try:
                interval = request.settings.interval or "1m"
                ohlcv = store.call_sync(candles, request.market, interval, request.start, request.end)
            finally:
                store.close()

        def report_progress(value: float) -> None:
            progress.value = value

        result, report = execute(request, ohlcv=ohlcv, progress=report_progress)
        write_report(out, report, result.prices)
        progress.value = 1.0
    except BaseException as error:  # the parent reads the reason; the process must still end
        detail = getattr(error, "detail", None) or str(error) or type(error).__name__
        (out / "error.txt").write_text(detail)
        raise SystemExit(1) from None


class BacktestJobs:
    def __init__(self, root: Path, *, workers: int = 1, database_url: str | None = None) -> None:
        self.root = root
        self.workers = max(1, workers)
        self.database_url = database_url
        self.jobs: dict[str, Job] = {}
        self._queue: asyncio.Queue[tuple[Job, BacktestRequest]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._progress: dict[str, Progress] = {}
        self._processes: dict[str, Any] = {}
        self._load()

    def _load(self) -> None:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*/job.json")):
            try:
                job = Job(**orjson.loads(path.read_bytes()))
            except (OSError, TypeError, ValueError):
                continue
            if job.status in (QUEUED, RUNNING):
                job.status, job.status_reason = FAILED, "interrupted by a restart"
                job.updated_at = _now()
                self._save(job)
            self.jobs[job.id] = job

    def _save(self, job: Job) -> None:
        directory = self.root / job.id
        directory.mkdir(parents=True, exist_ok=True)
        data = {name: getattr(job, name) for name in Job.__dataclass_fields__}
        temporary = directory / "job.json.tmp"
        temporary.write_bytes(orjson.dumps(data))
        temporary.replace(directory / "job.json")

    def submit(self, owner: str, body: dict[str, Any], request: BacktestRequest) -> Job:
        job = Job(id="bt_" + secrets.token_hex(8), owner=owner, request=body)
        self.jobs[job.id] = job
        self._save(job)
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        self._queue.put_nowait((job, request))
        return job

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found(f"no backtest {job_id!r}")
        if job.status == RUNNING and job_id in self._progress:
            job.progress = float(self._progress[job_id].value)
        return job

    def owned_by(self, owner: str) -> list[Job]:
        return sorted((j for j in self.jobs.values() if j.owner == owner), key=lambda j: j.created_at,
                      reverse=True)

    def report_path(self, job: Job, name: str) -> Path:
        return self.root / job.id / name

    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            job, request = await self._queue.get()
            try:
                await self._run(job, request)
            except Exception as error:  # a job's failure never ends the worker
                log.exception("backtest_job_failed", job=job.id)
                job.status, job.status_reason = FAILED, f"internal: {error}"
                job.updated_at = _now()
                self._save(job)

    async def _run(self, job: Job, request: BacktestRequest) -> None:
        context = multiprocessing.get_context("spawn")
        progress = context.Value("d", 0.0)
        directory = self.root / job.id
        process = context.Process(
            target=_child,
            args=(pickle.dumps(request), self.database_url, str(directory), progress),
            daemon=True,
            name=f"backtest-{job.id}",
        )
        job.status, job.updated_at = RUNNING, _now()
        self._save(job)
        self._progress[job.id] = progress
        self._processes[job.id] = process
        started = time.monotonic()
        process.start()
        try:
            await asyncio.to_thread(process.join)
        finally:
            self._processes.pop(job.id, None)
            self._progress.pop(job.id, None)
        error = directory / "error.txt"
        if process.exitcode == 0 and (directory / "report.json").is_file():
            job.status, job.progress = DONE, 1.0
        else:
            job.status = FAILED
            job.status_reason = error.read_text() if error.is_file() else f"exit code {process.exitcode}"
        job.updated_at = _now()
        self._save(job)
        log.info("backtest_job", job=job.id, status=job.status, seconds=round(time.monotonic() - started, 3))

    async def close(self) -> None:
        for process in list(self._processes.values()):
            process.terminate()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

