"""One backtest from a request (the API's body, the CLI's options): load the data, build the market,
run, report. Also the parameter grid, run across processes and ranked by a metric."""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from tradehall.domain.errors import invalid_request
from tradehall.domain.market import MarketSpec
from tradehall.store.models import Candle, Market
from tradehall.store.types import ns_of_utc, utc_of_ns
from tradehall.strategies.backtest.config import BacktestSettings, FillModel, StrategyChoice, spec_for_data
from tradehall.strategies.backtest.data import Ohlcv, is_recording, load_ohlcv, load_recording
from tradehall.strategies.backtest.report import METRIC_NAMES, build_report
from tradehall.strategies.backtest.runner import Backtest, BacktestResult
from tradehall.strategies.registry import default_registry

LOWER_IS_BETTER = frozenset(
    {"max_drawdown", "max_drawdown_duration", "var_95", "cvar_95", "fees", "max_consecutive_losses"}
)


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    strategies: tuple[StrategyChoice, ...]
    market: str
    settings: BacktestSettings = field(default_factory=BacktestSettings)
    fill_model: FillModel = field(default_factory=FillModel)
    seed: int = 0
    data_path: Path | None = None
    start: int | None = None
    end: int | None = None
    spec: MarketSpec | None = None
    tick_size: Decimal | None = None
    lot_size: Decimal | None = None
    strategies_dir: Path | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> BacktestRequest:
        """`POST /backtests`' body: `{strategies, markets: [one], start?, end?, data?: {path}, settings,
        fill_model?, seed?}`; everything checked here, before a job exists."""
        allowed = {"strategies", "markets", "start", "end", "data", "settings", "fill_model", "seed"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise invalid_request(f"unknown field(s) {unknown}")
        strategies = body.get("strategies")
        if not isinstance(strategies, list) or not strategies:
            raise invalid_request("strategies is a non-empty list of {name, weight?, parameters?}")
        markets = body.get("markets")
        if not isinstance(markets, list) or len(markets) != 1 or not isinstance(markets[0], str):
            raise invalid_request("markets is a list of exactly one market symbol")
        data = body.get("data")
        path = None
        if data is not None:
            if not isinstance(data, dict) or not isinstance(data.get("path"), str) or set(data) - {"path"}:
                raise invalid_request("data is {path}")
            path = Path(data["path"])
        seed = body.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise invalid_request("seed is a non-negative integer")
        settings = body.get("settings") or {}
        if not isinstance(settings, dict):
            raise invalid_request("settings is an object")
        return cls(
            strategies=tuple(StrategyChoice.parse(s) for s in strategies),
            market=markets[0],
            settings=BacktestSettings.parse(settings),
            fill_model=FillModel.parse(body.get("fill_model")),
            seed=seed,
            data_path=path,
            start=_time(body.get("start"), "start"),
            end=_time(body.get("end"), "end"),
        )

    def check(self) -> None:
        """Strategies and parameters exist and validate (404 / 400 before any work)."""
        registry = default_registry(self.strategies_dir)
        for choice in self.strategies:
            registry.create(choice.name, choice.parameters)
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise invalid_request("end must be after start")
        if self.data_path is None and self.spec is None:
            raise invalid_request(f"no data given and no market {self.market!r} to read candles of")


def _time(value: object, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_request(f"{name} is an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_request(f"{name} {value!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise invalid_request(f"{name} needs a time zone")
    return ns_of_utc(moment)


def market_spec(session: Session, symbol: str) -> MarketSpec | None:
    row = session.get(Market, symbol)
    return None if row is None else msgspec.json.decode(row.spec_json, type=MarketSpec)


def candles(session: Session, symbol: str, interval: str, start: int | None, end: int | None) -> Ohlcv:
    """The read models' candles of `symbol` in [start, end), oldest first."""
    query = select(Candle).where(Candle.market == symbol, Candle.interval == interval)
    if start is not None:
        query = query.where(Candle.start >= utc_of_ns(start))
    if end is not None:
        query = query.where(Candle.start < utc_of_ns(end))
    data = Ohlcv([], [], [], [], [], [])
    for row in session.scalars(query.order_by(Candle.start)):
        data.ts.append(ns_of_utc(row.start))
        data.open.append(float(row.open))
        data.high.append(float(row.high))
        data.low.append(float(row.low))
        data.close.append(float(row.close))
        data.volume.append(float(row.volume))
    if not data.ts:
        raise invalid_request(f"no {interval} candles of {symbol} in that range")
    return data


def execute(
    request: BacktestRequest,
    *,
    ohlcv: Ohlcv | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[BacktestResult, dict[str, Any]]:
    """Run the request (on `ohlcv` when the caller loaded the bars) and build its report."""
    registry = default_registry(request.strategies_dir)
    recording = None
    if ohlcv is None and request.data_path is not None:
        if is_recording(request.data_path):
            recording = load_recording(request.data_path)
            if request.start is not None or request.end is not None:
                recording = [
                    e for e in recording
                    if (request.start is None or e.receive_ts >= request.start)
                    and (request.end is None or e.receive_ts < request.end)
                ]
        else:
            ohlcv = load_ohlcv(request.data_path)
    if ohlcv is not None and (request.start is not None or request.end is not None):
        ohlcv = ohlcv.between(request.start, request.end)
        if not len(ohlcv):
            raise invalid_request("no bars between start and end")
    if ohlcv is None and recording is None:
        raise invalid_request("no data: give data.path, or a market with candles")
    spec = request.spec or spec_for_data(request.market, ohlcv, request.tick_size, request.lot_size)
    if request.spec is not None and (request.tick_size or request.lot_size):
        spec = msgspec.structs.replace(
            spec, tick_size=request.tick_size or spec.tick_size, lot_size=request.lot_size or spec.lot_size
        )
    backtest = Backtest(
        request.strategies,
        spec,
        request.settings,
        request.fill_model,
        seed=request.seed,
        registry=registry,
        progress=progress,
    )
    result = backtest.run_ohlcv(ohlcv) if ohlcv is not None else backtest.run_events(recording or [])
    return result, build_report(result)


# --- the parameter grid -----------------------------------------------------------------------------


def grid_points(grid: Mapping[str, Sequence[object]]) -> list[dict[str, object]]:
    names = sorted(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]


def _grid_worker(args: tuple[BacktestRequest, dict[str, object], Ohlcv | None]) -> dict[str, Any]:
    request, point, ohlcv = args
    first = request.strategies[0]
    choice = replace(first, parameters={**first.parameters, **point})
    try:
        _, report = execute(replace(request, strategies=(choice, *request.strategies[1:])), ohlcv=ohlcv)
    except Exception as error:  # one bad point is a row of the ranking, not the end of the grid
        return {"parameters": point, "error": str(error)}
    return {"parameters": point, "metrics": report["metrics"]}


def rank_key(metric: str) -> Callable[[dict[str, Any]], tuple[int, float]]:
    if metric not in METRIC_NAMES:
        raise invalid_request(f"rank by one of {list(METRIC_NAMES)}, not {metric!r}")
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0

    def key(row: dict[str, Any]) -> tuple[int, float]:
        value = row.get("metrics", {}).get(metric)
        if value is None:
            return (1, 0.0)
        return (0, sign * float(value))

    return key


def run_grid(
    request: BacktestRequest,
    grid: Mapping[str, Sequence[object]],
    *,
    rank_by: str = "sharpe",
    workers: int | None = None,
    ohlcv: Ohlcv | None = None,
) -> list[dict[str, Any]]:
    """Every combination of the grid's values for the first strategy, across processes, best first
    (ties keep the grid's order, so the ranking is deterministic)."""
    key = rank_key(rank_by)
    points = grid_points(grid)
    if request.data_path is not None and ohlcv is None and not is_recording(request.data_path):
        ohlcv = load_ohlcv(request.data_path)  # once, not once per process
    tasks = [(request, point, ohlcv) for point in points]
    count = max(1, min(workers or multiprocessing.cpu_count(), len(points)))
    if count == 1:
        rows = [_grid_worker(task) for task in tasks]
    else:
        with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(_grid_worker, tasks))
    return sorted(rows, key=key)

