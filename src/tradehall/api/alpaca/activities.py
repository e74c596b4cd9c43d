"""Alpaca's account activities (FILL) and portfolio history, from the read models' fills and equity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from tradehall.api import convert
from tradehall.api.alpaca.context import AlpacaSurface, bad_request
from tradehall.api.alpaca.errors import AlpacaRoute
from tradehall.api.alpaca.shapes import activity_out, fill_of_activity
from tradehall.api.alpaca.trading import CallerDep, SurfaceDep, _now, _time
from tradehall.api.routes.common import json_response
from tradehall.store import models

router = APIRouter(
    prefix="/alpaca/v2/account", route_class=AlpacaRoute, tags=["alpaca"], include_in_schema=False
)


def _fills_query(
    session: Session,
    account_id: str,
    after: datetime | None,
    until: datetime | None,
    before_id: int | None,
    after_id: int | None,
    ascending: bool,
    limit: int,
) -> list[tuple[models.Fill, models.Order | None, Decimal]]:
    """Fills with their order and the order's filled quantity up to and including each fill."""
    conditions = [models.Fill.account_id == account_id]
    if after is not None:
        conditions.append(models.Fill.executed_at > after)
    if until is not None:
        conditions.append(models.Fill.executed_at < until)
    if before_id is not None:
        conditions.append(models.Fill.id < before_id)
    if after_id is not None:
        conditions.append(models.Fill.id > after_id)
    key = models.Fill.id if ascending else models.Fill.id.desc()
    fills = list(session.scalars(select(models.Fill).where(*conditions).order_by(key).limit(limit)))
    found = []
    for fill in fills:
        order = session.get(models.Order, fill.order_id)
        earlier = select(models.Fill.quantity).where(
            models.Fill.order_id == fill.order_id, models.Fill.id <= fill.id
        )
        cumulative = sum(session.scalars(earlier), Decimal(0))
        found.append((fill, order, cumulative))
    return found


async def _activities(
    surface: AlpacaSurface,
    account_id: str,
    after: str | None,
    until: str | None,
    direction: str,
    page_size: int,
    page_token: str | None,
) -> list[dict[str, Any]]:
    gateway = surface.gateway
    token = None
    if page_token:
        token = fill_of_activity(page_token)
        if token is None:
            raise bad_request("invalid page_token")
    ascending = direction == "asc"
    await gateway.service.read_barrier()
    rows = await gateway.service.store.call(
        _fills_query,
        account_id,
        _time(after, "after"),
        _time(until, "until"),
        None if ascending else token,
        token if ascending else None,
        ascending,
        page_size,
    )
    items = []
    for fill, order, cumulative in rows:
        asset = surface.assets.of_market(gateway, fill.market)
        if asset is None or order is None:
            continue
        items.append(
            activity_out(
                convert.fill_from_row(fill), asset, account_id, cumulative, order.quantity, order.status
            )
        )
    return items


@router.get("/activities", summary="Alpaca: account activities (fills)")
async def list_activities(
    surface: SurfaceDep,
    principal: CallerDep,
    activity_types: Annotated[str | None, Query(max_length=256)] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    direction: Literal["asc", "desc"] = "desc",
    page_size: Annotated[int, Query(ge=1, le=100)] = 100,
    page_token: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    account_id = await surface.account_id(principal)
    wanted = {kind.strip().upper() for kind in (activity_types or "FILL").split(",")}
    if "FILL" not in wanted:
        return json_response([])
    return json_response(
        await _activities(surface, account_id, after, until, direction, page_size, page_token)
    )


@router.get("/activities/{activity_type}", summary="Alpaca: account activities of one type")
async def list_activities_of_type(
    activity_type: str,
    surface: SurfaceDep,
    principal: CallerDep,
    after: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    direction: Literal["asc", "desc"] = "desc",
    page_size: Annotated[int, Query(ge=1, le=100)] = 100,
    page_token: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    account_id = await surface.account_id(principal)
    if activity_type.upper() != "FILL":
        return json_response([])
    return json_response(
        await _activities(surface, account_id, after, until, direction, page_size, page_token)
    )


_PERIOD_UNITS = {"D": 1, "W": 7, "M": 30, "A": 365}
_TIMEFRAMES = {"1Min": 60, "5Min": 300, "15Min": 900, "1H": 3600, "1D": 86_400}


@router.get("/portfolio/history", summary="Alpaca: equity over time")
async def portfolio_history(
    surface: SurfaceDep,
    principal: CallerDep,
    period: Annotated[str | None, Query(max_length=8)] = None,
    timeframe: Annotated[str | None, Query(max_length=8)] = None,
    start: Annotated[str | None, Query(max_length=64)] = None,
    end: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The last equity of each `timeframe` bucket within `period` (or [start, end)) from the read models'
    equity history; `base_value` is the equity before the first bucket (else the first one)."""
    gateway = surface.gateway
    account_id = await surface.account_id(principal)
    frame = timeframe or "1D"
    if frame not in _TIMEFRAMES:
        raise bad_request(f"timeframe must be one of {', '.join(_TIMEFRAMES)}")
    width = _TIMEFRAMES[frame]
    end_at = _time(end, "end") or _now(surface)
    start_at = _time(start, "start")
    if start_at is None:
        text = period or "1M"
        unit = text[-1:].upper()
        if unit not in _PERIOD_UNITS or not text[:-1].isdigit():
            raise bad_request("period must be like 1D, 2W, 1M or 1A")
        start_at = end_at - timedelta(days=int(text[:-1]) * _PERIOD_UNITS[unit])

    def read(session: Session) -> tuple[list[models.EquityPoint], models.EquityPoint | None]:
        base = models.EquityPoint.account_id == account_id
        points = select(models.EquityPoint).where(
            base, models.EquityPoint.at >= start_at, models.EquityPoint.at < end_at
        )
        before = select(models.EquityPoint).where(base, models.EquityPoint.at < start_at)
        latest_before = session.scalars(
            before.order_by(models.EquityPoint.at.desc(), models.EquityPoint.seq.desc()).limit(1)
        ).first()
        ordered = points.order_by(models.EquityPoint.at, models.EquityPoint.seq)
        return list(session.scalars(ordered)), latest_before

    await gateway.service.read_barrier()
    points, before = await gateway.service.store.call(read)
    buckets: dict[int, Decimal] = {}
    for point in points:
        seconds = int(point.at.replace(tzinfo=point.at.tzinfo or UTC).timestamp())
        buckets[seconds - seconds % width] = point.equity
    base_value = before.equity if before is not None else (points[0].equity if points else Decimal(0))
    stamps = sorted(buckets)
    equity = [buckets[stamp] for stamp in stamps]
    return json_response(
        {
            "timestamp": stamps,
            "equity": [float(value) for value in equity],
            "profit_loss": [float(value - base_value) for value in equity],
            "profit_loss_pct": [
                float((value - base_value) / base_value) if base_value else None for value in equity
            ],
            "base_value": float(base_value),
            "base_value_asof": convert.rfc3339(start_at)[:10],
            "timeframe": frame,
            "cashflow": {},
        }
    )
