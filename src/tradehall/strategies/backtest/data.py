"""Backtest data: OHLCV bars from CSV or Parquet, recorded feed events, or the read models' candles.

CSV and Parquet have the columns `t,open,high,low,close,volume`, one row per bar, oldest first; `t` is
RFC 3339 (a zone is required unless it is UTC) or epoch milliseconds. Bad data is an
`invalid_request` naming the row, never a half-run backtest.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tradehall.domain.errors import invalid_request
from tradehall.marketdata.models import FeedEvent, Quote, TradeTick
from tradehall.marketdata.replay import merged, recorded_files

COLUMNS = ("t", "open", "high", "low", "close", "volume")
NS_PER_MS = 1_000_000


@dataclass(slots=True)
class Ohlcv:
    """Bars as parallel columns (times in ns, prices and volumes as floats)."""

    ts: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]

    def __len__(self) -> int:
        return len(self.ts)

    def interval_ns(self) -> int | None:
        """The smallest gap between bars (the bar length when none is given)."""
        ts = self.ts
        gaps = [b - a for a, b in itertools.pairwise(ts)]
        return min(gaps) if gaps else None

    def between(self, start: int | None, end: int | None) -> Ohlcv:
        keep = [
            i for i, t in enumerate(self.ts) if (start is None or t >= start) and (end is None or t < end)
        ]
        return Ohlcv(
            [self.ts[i] for i in keep],
            [self.open[i] for i in keep],
            [self.high[i] for i in keep],
            [self.low[i] for i in keep],
            [self.close[i] for i in keep],
            [self.volume[i] for i in keep],
        )


def _time_ns(value: Any, row: int) -> int:
    if isinstance(value, bool):
        raise invalid_request(f"row {row}: t must be RFC 3339 or epoch milliseconds")
    if isinstance(value, int):
        return value * NS_PER_MS
    if isinstance(value, float) and value.is_integer():
        return int(value) * NS_PER_MS
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return _datetime_ns(moment)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text) * NS_PER_MS
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise invalid_request(
                f"row {row}: t {value!r} is neither RFC 3339 nor epoch milliseconds"
            ) from None
        if moment.tzinfo is None:
            raise invalid_request(f"row {row}: t {value!r} has no time zone")
        return _datetime_ns(moment)
    raise invalid_request(f"row {row}: t {value!r} is neither RFC 3339 nor epoch milliseconds")


def _datetime_ns(moment: datetime) -> int:
    whole = int(moment.timestamp())
    return whole * 1_000_000_000 + moment.microsecond * 1000


def _number(value: Any, column: str, row: int) -> float:
    if isinstance(value, bool) or value is None:
        raise invalid_request(f"row {row}: {column} is missing or not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise invalid_request(f"row {row}: {column} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise invalid_request(f"row {row}: {column} is not finite")
    return number


def ohlcv_from_rows(rows: Iterable[Sequence[Any]]) -> Ohlcv:
    """Rows of (t, open, high, low, close, volume), checked: prices positive, low <= open/close <=
    high, volume >= 0, times strictly increasing. Row numbers count the header as row 1."""
    data = Ohlcv([], [], [], [], [], [])
    previous = None
    for number, row in enumerate(rows, start=2):
        t = _time_ns(row[0], number)
        o, h, lo, c = (_number(row[i], COLUMNS[i], number) for i in range(1, 5))
        v = _number(row[5], "volume", number)
        if min(o, h, lo, c) <= 0:
            raise invalid_request(f"row {number}: prices must be positive")
        if not (lo <= o <= h and lo <= c <= h):
            raise invalid_request(f"row {number}: open and close must lie within [low, high]")
        if v < 0:
            raise invalid_request(f"row {number}: volume is negative")
        if previous is not None and t <= previous:
            raise invalid_request(f"row {number}: t is not after the previous row's (oldest first)")
        previous = t
        data.ts.append(t)
        data.open.append(o)
        data.high.append(h)
        data.low.append(lo)
        data.close.append(c)
        data.volume.append(v)
    if not data.ts:
        raise invalid_request("the data has no bars")
    return data


def _table_rows(table: Any) -> list[tuple[Any, ...]]:
    names = [name.lower() for name in table.column_names]
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise invalid_request(f"the data lacks the column(s) {missing}; it needs {','.join(COLUMNS)}")
    columns = [table.column(names.index(column)).to_pylist() for column in COLUMNS]
    return list(zip(*columns, strict=True))


def load_ohlcv(path: Path) -> Ohlcv:
    """CSV (`.csv`, `.csv.gz`) or Parquet (`.parquet`, `.pq`) OHLCV."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise invalid_request(f"no data file at {path}")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            table = pq.read_table(path)
        elif name.endswith((".csv", ".csv.gz")):
            # t stays text (RFC 3339 or digits) so that both forms are parsed the same way
            options = pa_csv.ConvertOptions(column_types={"t": pa.string()})
            table = pa_csv.read_csv(path, convert_options=options)
        else:
            raise invalid_request(
                f"{path.name}: data files are .csv, .csv.gz, .parquet or recorder .jsonl.gz"
            )
    except (pa.ArrowInvalid, OSError) as error:
        raise invalid_request(f"{path.name}: {error}") from None
    return ohlcv_from_rows(_table_rows(table))


def is_recording(path: Path) -> bool:
    return path.is_dir() or path.name.endswith(".jsonl.gz")


def load_recording(path: Path, instrument: str | None = None) -> list[Quote | TradeTick]:
    """Quotes and trades of a feed-recorder file (or a recorder directory), in receive order; with
    `instrument`, only that instrument's (a directory may hold several)."""
    files = recorded_files(path) if path.is_dir() else [path]
    if not files:
        raise invalid_request(f"no recorder files under {path}")
    events: list[Quote | TradeTick] = []
    try:
        for event in merged(files):
            wanted = instrument is None or event.instrument == instrument
            if wanted and isinstance(event, Quote | TradeTick):
                events.append(event)
    except (OSError, ValueError, KeyError) as error:
        raise invalid_request(f"{path.name}: unreadable recording: {error}") from None
    instruments = {event.instrument for event in events}
    if len(instruments) > 1:
        raise invalid_request(f"the recording holds several instruments {sorted(instruments)}: name one")
    if not events:
        raise invalid_request(f"{path.name}: no quotes or trades recorded")
    return events


def feed_event_time(event: FeedEvent) -> int:
    return event.receive_ts
