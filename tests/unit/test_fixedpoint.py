from decimal import Decimal
from fractions import Fraction

import pytest

from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.fixedpoint import (
    Ratio,
    amount_of,
    ceil_div,
    decimal_of,
    decimal_str,
    div_round_half_even,
    floor_amount,
    minor_of,
    parse_decimal,
    ppm_of,
    units_of,
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
