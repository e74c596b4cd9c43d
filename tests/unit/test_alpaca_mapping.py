"""The Alpaca surface's pure mappings: UUIDs of orders and executions, timeframes, bar buckets, numbers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradehall.api.alpaca.errors import ALPACA_OF
from tradehall.api.alpaca.ids import (
    EXECUTION,
    ORDER,
    account_uuid,
    asset_uuid,
    execution_uuid,
    number_of,
    order_number,
    order_uuid,
)
from tradehall.api.alpaca.marketdata import aggregate, timeframe_seconds
from tradehall.api.alpaca.orders import decimal_field
from tradehall.api.alpaca.shapes import activity_id, fill_of_activity
from tradehall.api.errors import ApiError
from tradehall.domain.errors import Code


@given(st.integers(min_value=0, max_value=2**62 - 1))
def test_an_order_id_round_trips_through_its_uuid(number: int) -> None:
    text = order_uuid(number)
    parsed = uuid.UUID(text)
    assert (parsed.version, parsed.variant) == (8, uuid.RFC_4122)
    assert order_number(text) == number
    assert number_of(EXECUTION, text) is None  # an order's UUID is no execution's


def test_order_uuids_are_stable_and_distinct_from_execution_uuids() -> None:
    assert order_uuid(17) == "74686c6c-0001-8000-8000-000000000011"
    assert execution_uuid(17) == "74686c6c-0002-8000-8000-000000000011"
    assert number_of(ORDER, execution_uuid(17)) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "17",
        "not-a-uuid",
        "5b7d8f3e-2c1a-4e9b-8d6f-0a1b2c3d4e5f",  # a UUID of another kind
        "74686c6c-0001-8000-0000-000000000011",
        "74686c6c-0001-8000-8000-00000000011",
    ],
)
def test_anything_else_names_no_order(text: str) -> None:
    assert order_number(text) is None


def test_assets_and_accounts_have_name_based_uuids() -> None:
    assert asset_uuid("BTC-USD") == asset_uuid("BTC-USD") != asset_uuid("ETH-USD")
    assert uuid.UUID(account_uuid("acc_1")).version == 5


def test_an_activity_id_carries_its_fill() -> None:
    activity = activity_id("2035-01-02T03:04:05.678901Z", 41)
    assert activity == f"20350102030405678::{execution_uuid(41)}"
    assert fill_of_activity(activity) == 41
    assert fill_of_activity("20350102030405678::garbage") is None


@pytest.mark.parametrize(
    ("timeframe", "expected"),
    [
        ("1Min", (60, "1m")),
        ("1min", (60, "1m")),
        ("1T", (60, "1m")),
        ("3Min", (180, "1m")),
        ("5Min", (300, "5m")),
        ("30min", (1800, "15m")),
        ("45Min", (2700, "15m")),
        ("1Hour", (3600, "1h")),
        ("1H", (3600, "1h")),
        ("4h", (14_400, "1h")),
        ("1Day", (86_400, "1d")),
        ("1D", (86_400, "1d")),
        ("1Week", (604_800, "1d")),
    ],
)
def test_alpaca_timeframes(timeframe: str, expected: tuple[int, str]) -> None:
    assert timeframe_seconds(timeframe) == expected


@pytest.mark.parametrize("timeframe", ["0Min", "60Min", "24Hour", "2Day", "1Month", "1M", "x", "1 Min"])
def test_other_timeframes_are_refused(timeframe: str) -> None:
    with pytest.raises(ApiError) as refused:
        timeframe_seconds(timeframe)
    assert refused.value.code is Code.INVALID_REQUEST


def candle(start: datetime, o: str, h: str, low: str, c: str, v: str, n: int) -> SimpleNamespace:
    return SimpleNamespace(
        start=start,
        open=Decimal(o),
        high=Decimal(h),
        low=Decimal(low),
        close=Decimal(c),
        volume=Decimal(v),
        trades=n,
    )


def test_candles_merge_into_wider_bars() -> None:
    start = datetime(2035, 1, 1, 0, 0, tzinfo=UTC)
    candles = [
        candle(start, "10", "12", "9", "11", "1", 2),
        candle(start + timedelta(minutes=1), "11", "15", "10.5", "14", "0.5", 1),
        candle(start + timedelta(minutes=3), "14", "14", "13", "13.5", "2", 3),
    ]
    assert aggregate(candles, 180) == [  # type: ignore[arg-type]
        {"t": "2035-01-01T00:00:00Z", "o": 10, "h": 15, "l": 9, "c": 14, "v": 1.5, "n": 3, "vw": None},
        {"t": "2035-01-01T00:03:00Z", "o": 14, "h": 14, "l": 13, "c": 13.5, "v": 2, "n": 3, "vw": None},
    ]


def test_weeks_start_on_mondays() -> None:
    thursday = datetime(2035, 1, 4, tzinfo=UTC)  # 2035-01-01 is a Monday
    [bar] = aggregate([candle(thursday, "1", "1", "1", "1", "1", 1)], 7 * 86_400)  # type: ignore[list-item]
    assert bar["t"] == "2035-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.01", "0.01"),
        (0.01, "0.01"),
        (2, "2"),
        ("64000.5", "64000.5"),
        (64000.5, "64000.5"),
        (1e-05, "0.00001"),
    ],
)
def test_numbers_may_be_json_numbers_or_strings(value: object, expected: str) -> None:
    assert decimal_field(value, "qty") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["-1", "0", 0, True, "1e3", "abc", "1.", float("nan"), float("inf")])
def test_bad_numbers_are_unprocessable(value: object) -> None:
    with pytest.raises(ApiError) as refused:
        decimal_field(value, "qty")  # type: ignore[arg-type]
    assert refused.value.code is Code.INVALID_ORDER


def test_every_code_has_an_alpaca_status_and_code() -> None:
    assert set(ALPACA_OF) == set(Code)
    assert ALPACA_OF[Code.UNAUTHORIZED] == (401, 40110000)
    assert ALPACA_OF[Code.INSUFFICIENT_BALANCE] == (403, 40310000)
    assert ALPACA_OF[Code.NOT_FOUND] == (404, 40410000)
    assert ALPACA_OF[Code.INVALID_ORDER] == (422, 42210000)
