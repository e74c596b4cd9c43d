"""Records normalised feed events to gzip JSON-lines files, one per UTC day, source and instrument:
`<root>/<YYYY-MM-DD>/<source>/<instrument>.jsonl.gz`. The replay feed and the backtester read them.
"""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

import orjson

from tradehall.domain.fixedpoint import decimal_str
from tradehall.marketdata.breaker import Clock
from tradehall.marketdata.models import (
    BookDelta,
    BookSide,
    BookSnapshot,
    Candle,
    FeedEvent,
    Level,
    MarketState,
    MarketStatusUpdate,
    Quote,
    TradeTick,
)
from tradehall.marketdata.parsing import NS_PER_S, ErrorKind, FeedError, dec


def _d(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


def _levels(levels: tuple[Level, ...]) -> list[list[str]]:
    return [[decimal_str(price), decimal_str(size)] for price, size in levels]


def event_to_dict(event: FeedEvent) -> dict[str, Any]:
    """A JSON-ready dict with a `type` tag; decimals as strings."""
    if isinstance(event, Quote):
        row = {
            "type": "quote",
            "source": event.source,
            "instrument": event.instrument,
            "bid": _d(event.bid),
            "ask": _d(event.ask),
            "bid_size": _d(event.bid_size),
            "ask_size": _d(event.ask_size),
            "last": _d(event.last),
            "exchange_ts": event.exchange_ts,
            "receive_ts": event.receive_ts,
        }
        if event.volume_24h is not None:
            row["volume_24h"] = decimal_str(event.volume_24h)
        return row
    if isinstance(event, Candle):
        return {
            "type": "candle",
            "source": event.source,
            "instrument": event.instrument,
            "interval": event.interval,
            "open_ts": event.open_ts,
            "close_ts": event.close_ts,
            "ohlcv": [decimal_str(v) for v in (event.open, event.high, event.low, event.close, event.volume)],
            "closed": event.closed,
            "trades": event.trades,
            "exchange_ts": event.exchange_ts,
            "receive_ts": event.receive_ts,
        }
    if isinstance(event, TradeTick):
        return {
            "type": "trade",
            "source": event.source,
            "instrument": event.instrument,
            "price": decimal_str(event.price),
            "size": decimal_str(event.size),
            "side": event.side,
            "trade_id": event.trade_id,
            "exchange_ts": event.exchange_ts,
            "receive_ts": event.receive_ts,
        }
    if isinstance(event, BookSnapshot):
        return {
            "type": "book",
            "source": event.source,
            "instrument": event.instrument,
            "bids": _levels(event.bids),
            "asks": _levels(event.asks),
            "sequence": event.sequence,
            "exchange_ts": event.exchange_ts,
            "receive_ts": event.receive_ts,
        }
    if isinstance(event, BookDelta):
        return {
            "type": "delta",
            "source": event.source,
            "instrument": event.instrument,
            "side": event.side.value,
            "price": decimal_str(event.price),
            "size": decimal_str(event.size),
            "sequence": event.sequence,
            "exchange_ts": event.exchange_ts,
            "receive_ts": event.receive_ts,
        }
    return {
        "type": "status",
        "source": event.source,
        "instrument": event.instrument,
        "state": event.state.value,
        "detail": event.detail,
        "exchange_ts": event.exchange_ts,
        "receive_ts": event.receive_ts,
    }


def _od(value: Any) -> Decimal | None:
    return None if value is None else dec(value)


def _parse_levels(rows: list[list[str]]) -> tuple[Level, ...]:
    return tuple((dec(price), dec(size)) for price, size in rows)


def event_from_dict(row: dict[str, Any]) -> FeedEvent:
    kind = row.get("type")
    common = {
        "source": row["source"],
        "instrument": row["instrument"],
        "exchange_ts": row.get("exchange_ts"),
        "receive_ts": row.get("receive_ts", 0),
    }
    if kind == "quote":
        return Quote(
            bid=_od(row.get("bid")),
            ask=_od(row.get("ask")),
            bid_size=_od(row.get("bid_size")),
            ask_size=_od(row.get("ask_size")),
            last=_od(row.get("last")),
            volume_24h=_od(row.get("volume_24h")),
            **common,
        )
    if kind == "candle":
        o, h, low, c, v = (dec(x) for x in row["ohlcv"])
        return Candle(
            interval=row["interval"],
            open_ts=row["open_ts"],
            close_ts=row["close_ts"],
            open=o,
            high=h,
            low=low,
            close=c,
            volume=v,
            closed=row["closed"],
            trades=row.get("trades"),
            **common,
        )
    if kind == "trade":
        return TradeTick(
            price=dec(row["price"]),
            size=dec(row["size"]),
            side=row.get("side"),
            trade_id=row.get("trade_id"),
            **common,
        )
    if kind == "book":
        return BookSnapshot(
            bids=_parse_levels(row["bids"]),
            asks=_parse_levels(row["asks"]),
            sequence=row.get("sequence"),
            **common,
        )
    if kind == "delta":
        return BookDelta(
            side=BookSide(row["side"]),
            price=dec(row["price"]),
            size=dec(row["size"]),
            sequence=row.get("sequence"),
            **common,
        )
    if kind == "status":
        return MarketStatusUpdate(state=MarketState(row["state"]), detail=row.get("detail", ""), **common)
    raise FeedError(ErrorKind.PARSE, f"unknown record type {kind!r}")


def day_of(ts: int) -> str:
    return datetime.fromtimestamp(ts // NS_PER_S, UTC).strftime("%Y-%m-%d")


def path_for(root: Path, day: str, source: str, instrument: str) -> Path:
    return root / day / url_quote(source, safe="") / f"{url_quote(instrument, safe='')}.jsonl.gz"


class Recorder:
    """A feed sink that appends every event to its day's file; call `close()` to finish the files.

    Open files are flushed (a gzip sync point: readable up to there after a crash) every
    `flush_interval` seconds, and a market's file is closed when its next day's file opens, so a
    long-running recorder holds one file per market, not one per market and day.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        compresslevel: int = 6,
        flush_interval: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.root = Path(root)
        self.compresslevel = compresslevel
        self.flush_interval = flush_interval
        self._clock = clock
        self._last_flush = clock()
        self._files: dict[tuple[str, str], tuple[str, gzip.GzipFile]] = {}
        self.records = 0

    def __call__(self, event: FeedEvent) -> None:
        self.record(event)

    def record(self, event: FeedEvent) -> None:
        key = (event.source, event.instrument)
        day = day_of(event.receive_ts)
        current = self._files.get(key)
        if current is None or current[0] != day:
            if current is not None:
                current[1].close()
            path = path_for(self.root, day, event.source, event.instrument)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Appending adds a gzip member; readers see one stream, so restarts never lose a day.
            current = (day, gzip.open(path, "ab", compresslevel=self.compresslevel))  # noqa: SIM115 (kept open)
            self._files[key] = current
        current[1].write(orjson.dumps(event_to_dict(event)) + b"\n")
        self.records += 1
        if self._clock() - self._last_flush >= self.flush_interval:
            self.flush()

    @property
    def open_files(self) -> int:
        return len(self._files)

    def flush(self) -> None:
        self._last_flush = self._clock()
        for _, handle in self._files.values():
            handle.flush()

    def close(self) -> None:
        for _, handle in self._files.values():
            handle.close()
        self._files.clear()
