"""Alpaca's crypto market data (v1beta3) under `/alpaca/v1beta3/crypto/{loc}`, from tradehall's books,
trades and candles. Public like tradehall's `/markets` (ccxt calls it without credentials).

Numbers are JSON numbers, as Alpaca sends them. Bars come from the read models' candles (the projector's
candles of the engine's trades, or a feed's): Alpaca timeframes `nMin`/`nT` (1-59), `nHour`/`nH` (1-23),
`1Day`/`1D` and `1Week`/`1W`, matched case-insensitively, are built from the 1m, 5m, 15m, 1h and 1d
candles (a bucket starts at a multiple of its width since the epoch; weeks on Mondays). Without `start`
the bars start at the beginning of the current UTC day, as at Alpaca. A bar's `n` is its trade count;
`vw` (VWAP) is not kept by tradehall and is null.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from tradehall.api import convert
from tradehall.api.alpaca.context import AlpacaSurface, Asset, bad_request
from tradehall.api.alpaca.errors import AlpacaRoute
from tradehall.api.alpaca.trading import SurfaceDep, _now, _time
from tradehall.api.errors import ApiError
from tradehall.api.routes.common import json_response
from tradehall.domain.errors import Code
from tradehall.domain.fixedpoint import decimal_of
from tradehall.engine.views import BookView
from tradehall.store import models, queries

router = APIRouter(
    prefix="/alpaca/v1beta3/crypto/{loc}", route_class=AlpacaRoute, tags=["alpaca"], include_in_schema=False
)

_TIMEFRAME = re.compile(r"^([0-9]{1,2})(min|t|hour|h|day|d|week|w)$", re.IGNORECASE)
_WEEK_OFFSET = 3 * 86_400  # 1970-01-01 was a Thursday: Monday 1969-12-29 starts the weeks
Symbols = Annotated[str, Query(min_length=1, max_length=4096)]


def timeframe_seconds(text: str) -> tuple[int, str]:
    """(bucket width in seconds, the stored candle interval it is built from); 400 when not Alpaca's."""
    match = _TIMEFRAME.match(text.strip())
    if match is None:
        raise bad_request(f"invalid timeframe {text!r}")
    amount, unit = int(match.group(1)), match.group(2).lower()
    if unit in ("min", "t") and 1 <= amount <= 59:
        base = "15m" if amount % 15 == 0 else "5m" if amount % 5 == 0 else "1m"
        return amount * 60, base
    if unit in ("hour", "h") and 1 <= amount <= 23:
        return amount * 3600, "1h"
    if unit in ("day", "d") and amount == 1:
        return 86_400, "1d"
    if unit in ("week", "w") and amount == 1:
        return 7 * 86_400, "1d"
    raise bad_request(f"invalid timeframe {text!r}")


def _bucket(seconds: int, width: int) -> int:
    if width == 7 * 86_400:
        return seconds - (seconds + _WEEK_OFFSET) % width
    return seconds - seconds % width


def _assets(surface: AlpacaSurface, symbols: str) -> list[Asset]:
    """The assets named (unknown symbols are left out, as Alpaca does)."""
    found = []
    for name in symbols.split(","):
        asset = surface.assets.find(surface.gateway, name.strip())
        if asset is not None and asset not in found:
            found.append(asset)
    return found


def _f(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def _stamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _candles(
    session: Session, market: str, interval: str, start: datetime, end: datetime
) -> list[models.Candle]:
    query = select(models.Candle).where(
        models.Candle.market == market,
        models.Candle.interval == interval,
        models.Candle.start >= start,
        models.Candle.start < end,
    )
    return list(session.scalars(query.order_by(models.Candle.start)))


def aggregate(candles: list[models.Candle], width: int) -> list[dict[str, Any]]:
    """Candles (oldest first) into bars of `width` seconds."""
    bars: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for candle in candles:
        seconds = int(candle.start.replace(tzinfo=candle.start.tzinfo or UTC).timestamp())
        start = _bucket(seconds, width)
        if current is None or current["_start"] != start:
            current = {
                "_start": start,
                "o": candle.open,
                "h": candle.high,
                "l": candle.low,
                "c": candle.close,
                "v": candle.volume,
                "n": candle.trades,
            }
            bars.append(current)
        else:
            current["h"] = max(current["h"], candle.high)
            current["l"] = min(current["l"], candle.low)
            current["c"] = candle.close
            current["v"] += candle.volume
            current["n"] += candle.trades
    return [
        {
            "t": _stamp(bar["_start"]),
            "o": _f(bar["o"]),
            "h": _f(bar["h"]),
            "l": _f(bar["l"]),
            "c": _f(bar["c"]),
            "v": _f(bar["v"]),
            "n": bar["n"],
            "vw": None,
        }
        for bar in bars
    ]


async def bars_of(
    surface: AlpacaSurface, asset: Asset, timeframe: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    width, interval = timeframe_seconds(timeframe)
    first = datetime.fromtimestamp(_bucket(int(start.timestamp()), width), UTC)
    await surface.gateway.service.read_barrier()
    candles = await surface.gateway.service.store.call(_candles, asset.market, interval, first, end)
    return [bar for bar in aggregate(candles, width) if bar["t"] >= _stamp(int(first.timestamp()))]


@router.get("/bars", summary="Alpaca: historical bars")
async def get_bars(
    loc: str,
    surface: SurfaceDep,
    symbols: Symbols,
    timeframe: Annotated[str, Query(max_length=16)] = "1Min",
    start: Annotated[str | None, Query(max_length=64)] = None,
    end: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    page_token: Annotated[str | None, Query(max_length=64)] = None,
    sort: Literal["asc", "desc"] = "asc",
) -> Response:
    now = _now(surface)
    timeframe_seconds(timeframe)
    start_at = _time(start, "start") or now.replace(hour=0, minute=0, second=0, microsecond=0)
    if page_token:
        if not page_token.isdigit():
            raise bad_request("invalid page_token")
        start_at = datetime.fromtimestamp(int(page_token), UTC)
    end_at = _time(end, "end") or now + timedelta(seconds=1)
    wanted = limit or 1000
    result: dict[str, list[dict[str, Any]]] = {}
    next_token: str | None = None
    for asset in _assets(surface, symbols):
        bars = await bars_of(surface, asset, timeframe, start_at, end_at)
        if len(bars) > wanted:
            following = bars[wanted]["t"]
            next_token = str(int(datetime.fromisoformat(following.replace("Z", "+00:00")).timestamp()))
            bars = bars[:wanted]
        result[asset.symbol] = bars if sort == "asc" else bars[::-1]
    return json_response({"bars": result, "next_page_token": next_token})


@router.get("/latest/bars", summary="Alpaca: the latest minute bar")
async def get_latest_bars(loc: str, surface: SurfaceDep, symbols: Symbols) -> Response:
    now = _now(surface)
    result = {}
    for asset in _assets(surface, symbols):
        bars = await bars_of(surface, asset, "1Min", now - timedelta(days=7), now + timedelta(seconds=1))
        if bars:
            result[asset.symbol] = bars[-1]
    return json_response({"bars": result})


def _quote(book: BookView, stamp: str) -> dict[str, Any]:
    spec = book.spec
    bid, ask = (book.bids[0] if book.bids else None), (book.asks[0] if book.asks else None)

    def level(entry: tuple[int, int | None] | None) -> tuple[float | int, float | int]:
        if entry is None:
            return 0, 0
        price, size = entry
        return _f(decimal_of(price, spec.tick_size)), _f(decimal_of(size or 0, spec.lot_size))

    bid_price, bid_size = level(bid)
    ask_price, ask_size = level(ask)
    return {"t": stamp, "bp": bid_price, "bs": bid_size, "ap": ask_price, "as": ask_size}


@router.get("/latest/quotes", summary="Alpaca: the best bid and ask")
async def get_latest_quotes(loc: str, surface: SurfaceDep, symbols: Symbols) -> Response:
    stamp = convert.rfc3339(_now(surface))
    quotes = {
        asset.symbol: _quote(surface.gateway.book(asset.market, 1), stamp)
        for asset in _assets(surface, symbols)
    }
    return json_response({"quotes": quotes})


@router.get("/latest/orderbooks", summary="Alpaca: the order book")
async def get_latest_orderbooks(loc: str, surface: SurfaceDep, symbols: Symbols) -> Response:
    stamp = convert.rfc3339(_now(surface))
    books = {}
    for asset in _assets(surface, symbols):
        book = surface.gateway.book(asset.market, 1000)
        spec = book.spec

        def side(
            levels: tuple[tuple[int, int | None], ...], tick: Decimal, lot: Decimal
        ) -> list[dict[str, Any]]:
            return [{"p": _f(decimal_of(p, tick)), "s": _f(decimal_of(s or 0, lot))} for p, s in levels]

        books[asset.symbol] = {
            "t": stamp,
            "b": side(book.bids, spec.tick_size, spec.lot_size),
            "a": side(book.asks, spec.tick_size, spec.lot_size),
        }
    return json_response({"orderbooks": books})


def _trade(row: models.Fill) -> dict[str, Any]:
    return {
        "t": convert.rfc3339(row.executed_at),
        "p": _f(row.price),
        "s": _f(row.quantity),
        "tks": "B" if row.side == "buy" else "S",
        "i": row.trade_id,
    }


async def _latest_trade(surface: AlpacaSurface, asset: Asset) -> dict[str, Any] | None:
    gateway = surface.gateway
    await gateway.service.read_barrier()
    page = await gateway.service.store.call(queries.list_market_trades, asset.market, limit=1)
    return _trade(page.items[0]) if page.items else None


@router.get("/latest/trades", summary="Alpaca: the last trade")
async def get_latest_trades(loc: str, surface: SurfaceDep, symbols: Symbols) -> Response:
    trades = {}
    for asset in _assets(surface, symbols):
        trade = await _latest_trade(surface, asset)
        if trade is not None:
            trades[asset.symbol] = trade
    return json_response({"trades": trades})


def _trades(session: Session, market: str, start: datetime, end: datetime, limit: int) -> list[models.Fill]:
    query = select(models.Fill).where(
        models.Fill.market == market,
        models.Fill.liquidity == "taker",
        models.Fill.executed_at >= start,
        models.Fill.executed_at < end,
    )
    return list(session.scalars(query.order_by(models.Fill.executed_at, models.Fill.id).limit(limit)))


@router.get("/trades", summary="Alpaca: historical trades")
async def get_trades(
    loc: str,
    surface: SurfaceDep,
    symbols: Symbols,
    start: Annotated[str | None, Query(max_length=64)] = None,
    end: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    sort: Literal["asc", "desc"] = "asc",
) -> Response:
    now = _now(surface)
    start_at = _time(start, "start") or now.replace(hour=0, minute=0, second=0, microsecond=0)
    end_at = _time(end, "end") or now + timedelta(seconds=1)
    gateway = surface.gateway
    await gateway.service.read_barrier()
    result = {}
    for asset in _assets(surface, symbols):
        rows = await gateway.service.store.call(_trades, asset.market, start_at, end_at, limit or 1000)
        items = [_trade(row) for row in rows]
        result[asset.symbol] = items if sort == "asc" else items[::-1]
    return json_response({"trades": result, "next_page_token": None})


NO_QUOTE_HISTORY = (
    "tradehall keeps no history of quotes: the best bid and ask now are at latest/quotes "
    "(the whole book at latest/orderbooks); trades and bars have history (trades, bars)"
)


@router.get("/quotes", summary="Alpaca: historical quotes (not kept: 404)")
async def get_quotes(loc: str, surface: SurfaceDep, symbols: Symbols) -> Response:
    """The book is not recorded tick by tick, so there is no past quote to answer with: a clear 404
    rather than an empty list a client would take for a market without quotes."""
    raise ApiError(Code.NOT_FOUND, NO_QUOTE_HISTORY)


@router.get("/snapshots", summary="Alpaca: latest trade, quote and bars in one")
async def get_snapshots(loc: str, surface: SurfaceDep, symbols: Symbols) -> Response:
    now = _now(surface)
    stamp = convert.rfc3339(now)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    snapshots = {}
    for asset in _assets(surface, symbols):
        minute = await bars_of(surface, asset, "1Min", now - timedelta(days=1), now + timedelta(seconds=1))
        daily = await bars_of(surface, asset, "1Day", day - timedelta(days=1), now + timedelta(seconds=1))
        today = [bar for bar in daily if bar["t"] >= _stamp(int(day.timestamp()))]
        before = [bar for bar in daily if bar["t"] < _stamp(int(day.timestamp()))]
        snapshots[asset.symbol] = {
            "latestTrade": await _latest_trade(surface, asset),
            "latestQuote": _quote(surface.gateway.book(asset.market, 1), stamp),
            "minuteBar": minute[-1] if minute else None,
            "dailyBar": today[-1] if today else None,
            "prevDailyBar": before[-1] if before else None,
        }
    return json_response({"snapshots": snapshots})
