from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.fixedpoint import (
    Ratio,
    amount_of,
    ceil_div,
    decimal_of,
    decimal_places,
    decimal_str,
    div_round_half_even,
    floor_amount,
    minor_of,
    parse_decimal,
    ppm_of,
    units_of,
    units_of_places,
)


def test_units_of_exact_multiple() -> None:
    assert units_of(Decimal("64000.50"), Decimal("0.01"), "price") == 6_400_050


def test_units_of_off_step_is_invalid_order_not_rounded() -> None:
    with pytest.raises(TradehallError) as caught:
        units_of(Decimal("64000.505"), Decimal("0.01"), "price")
    assert caught.value.code is Code.INVALID_ORDER


def test_decimal_of_round_trips() -> None:
    assert decimal_of(6_400_050, Decimal("0.01")) == Decimal("64000.5")
    assert str(decimal_of(100, Decimal("100"))) == "10000"


def test_minor_units_refuse_excess_precision() -> None:
    assert minor_of(Decimal("12.34"), 2) == 1234
    with pytest.raises(TradehallError):
        minor_of(Decimal("12.345"), 2)
    assert str(amount_of(1234, 2)) == "12.34"
    assert decimal_str(amount_of(5, 8)) == "0.00000005"
    assert decimal_str(decimal_of(5, Decimal("0.00000001"))) == "0.00000005"


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(5, 2, 2), (7, 2, 4), (-5, 2, -2), (-7, 2, -4), (10, 4, 2), (11, 4, 3)],
)
def test_half_even_rounding(numerator: int, denominator: int, expected: int) -> None:
    assert div_round_half_even(numerator, denominator) == expected


def test_ceil_div() -> None:
    assert ceil_div(7, 2) == 4
    assert ceil_div(-7, 2) == -3
    assert ceil_div(6, 2) == 3


def test_ratio_conversions() -> None:
    ratio = Ratio.of(Decimal("0.0001"))
    assert ratio.round(15_000) == 2
    assert ratio.ceil(1) == 1
    assert ratio.floor(19_999) == 1


def test_ppm_and_parse() -> None:
    assert ppm_of(Decimal("0.001"), "fee") == 1000
    with pytest.raises(TradehallError):
        ppm_of(Decimal("0.0000001"), "fee")
    assert parse_decimal("1.5", "x") == Decimal("1.5")
    assert parse_decimal(0.1, "x") == Decimal("0.1")
    for bad in ("nan", "abc", True, None, "Infinity"):
        with pytest.raises(TradehallError):
            parse_decimal(bad, "x")


def test_floor_amount_rounds_exact_amounts_down_to_the_minor_unit() -> None:
    assert str(floor_amount(Decimal("5179.165"), 2)) == "5179.16"
    assert str(floor_amount(Decimal("-146.475"), 2)) == "-146.48"  # a loss shown in full
    assert str(floor_amount(Fraction(1, 3), 2)) == "0.33"
    assert str(floor_amount(Fraction(-1, 3), 8)) == "-0.33333334"
    assert str(floor_amount(Decimal(7), 2)) == "7.00"


def test_decimal_places_of_powers_of_ten_only() -> None:
    steps = ["0.01", "0.010", "1", "1E+1", "0.0001", "0.25", "5", "0.5"]
    assert [decimal_places(Decimal(step)) for step in steps] == [2, 2, 0, -1, 4, None, None, None]


def _outcome(call: Callable[[], int]) -> object:
    try:
        return call()
    except TradehallError as error:
        return (error.code, error.detail)


EDGE_VALUES = [
    "64000.505", "1E+20", "1E-30", "12345678901234567.89", "0.0100000000000000000000000000001",
    "9999999999999.99", "10000000000000.00", "-0", "-5.00", "1e2", "NaN", "Infinity", "-Infinity",
]  # fmt: skip


@given(
    st.one_of(
        st.sampled_from(EDGE_VALUES).map(Decimal),
        st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**16), max_value=10**16),
        st.decimals(allow_nan=False, allow_infinity=False),
    ),
    st.sampled_from(["0.01", "1", "0.0001", "1E+1", "0.25"]).map(Decimal),
)
def test_units_of_places_answers_as_units_of(value: Decimal, step: Decimal) -> None:
    """The fast path for power-of-ten steps gives the same count, or the same refusal, as the division."""
    fast = _outcome(lambda: units_of_places(value, decimal_places(step), step, "price"))
    assert fast == _outcome(lambda: units_of(value, step, "price"))
