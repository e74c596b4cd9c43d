"""Decimal <-> integer conversions and the rounding rules, stated once.

Inside the engine a price is an integer number of ticks, a quantity an integer number of lots and
money an integer number of a currency's minor units (cents for USD, 1e-8 for BTC; configurable).
`Decimal` appears only at the edges, and only through this module.

Rounding rules:
- A price off the tick or a quantity off the lot is refused (`invalid_order`), never rounded.
- A fill's notional (price x quantity) is rounded down to the quote currency's minor unit;
  both sides of the trade use the same rounded amount, so no money is created or lost.
- Fees are rounded up (ceiling) to the minor unit once per order: each fill pays the increase of the
  ceiling of the order's exact accrued fee. A hold is always at least what its fills can cost.
- Every amount is rounded in the venue's favour in the currency's minor unit: credits to a user
  down, debits up; the residue accrues to `system:rounding`, which never goes negative. A spot
  buyer's cash is the notional rounded up, the seller's rounded down (once per order, on the order's
  exact notional so far); a binary opening cost up, closing proceeds and payouts down; funding paid
  up, received down.
- A position's cost is exact (a reduced fraction for average cost), so its average entry does not
  drift; its realised P&L is kept exact per life (flat to flat) and posted as the floor of the
  cumulative amount less what was already posted, so a life pays exactly the floor of its total.
- Funding rates have at most 8 decimals (1e-8 units); a finer rate is refused, never truncated.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from fractions import Fraction
from math import lcm
from typing import Final

from tradehall.domain.errors import TradehallError, invalid_order

PPM: Final = 1_000_000
MAX_UNITS: Final = 10**15
"""The largest count of ticks, lots or minor units one value may have: products of two such values
stay far from what the journal's 64-bit integers can hold for any realistic position."""


def ceil_div(numerator: int, denominator: int) -> int:
    """Ceiling of numerator / denominator for a positive denominator."""
    return -((-numerator) // denominator)


def div_round_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even, for a positive denominator."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def parse_decimal(value: object, what: str) -> Decimal:
    """A finite Decimal from a string, int or Decimal (floats go through `str` first)."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise invalid_order(f"{what} must be a decimal, got a boolean")
    elif isinstance(value, int | str | float):
        try:
            result = Decimal(str(value).strip()) if not isinstance(value, int) else Decimal(value)
        except InvalidOperation:
            raise invalid_order(f"{what} is not a decimal number: {value!r}") from None
    else:
        raise invalid_order(f"{what} must be a decimal, got {type(value).__name__}")
    if not result.is_finite():
        raise invalid_order(f"{what} must be finite")
    return result


def units_of(value: Decimal, step: Decimal, what: str, error: type[TradehallError] | None = None) -> int:
    """The exact number of `step`s in `value`; a remainder is refused, never rounded."""
    if not value.is_finite():
        raise invalid_order(f"{what} must be finite")
    try:
        count, remainder = divmod(value, step)
    except InvalidOperation:  # the quotient has more digits than the context's precision
        raise invalid_order(f"{what} {value} is too large") from None
    if remainder != 0:
        raise invalid_order(f"{what} {value} is not a multiple of {step}")
    if abs(count) > MAX_UNITS:
        raise invalid_order(f"{what} {value} is too large")
    return int(count)


_EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
"""A context that never rounds: `scaleb` under it only moves the exponent."""


def decimal_places(step: Decimal) -> int | None:
    """k when `step` is 10**-k (0.01 -> 2, 1 -> 0, 1E+1 -> -1); None for any other step (0.25, 5)."""
    sign, digits, exponent = step.normalize().as_tuple()
    if sign or digits != (1,) or not isinstance(exponent, int):
        return None
    return -exponent


def units_of_places(value: Decimal, places: int | None, step: Decimal, what: str) -> int:
    """`units_of` for a `step` of 10**-`places` (`decimal_places`): the exponent moved instead of a
    Decimal divmod, about a tenth of the instructions (two per placement on the hot path). Anything
    but a small exact multiple goes through `units_of`, which refuses it with its own message."""
    if places is not None and value.is_finite():
        scaled = value.scaleb(places, _EXACT)
        if scaled.adjusted() < 16:  # |scaled| < 10**16: int() stays small
            count = int(scaled)
            if count == scaled and -MAX_UNITS <= count <= MAX_UNITS:
                return count
    return units_of(value, step, what)


def decimal_of(units: int, step: Decimal) -> Decimal:
    """The decimal value of `units` steps, normalised without an exponent."""
    return _plain(units * step)


def minor_of(amount: Decimal, decimals: int, what: str = "amount") -> int:
    """An amount in a currency's minor units; finer precision than the currency has is refused."""
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise invalid_order(f"{what} {amount} has more than {decimals} decimal places")
    if abs(scaled) > MAX_UNITS:
        raise invalid_order(f"{what} {amount} is too large")
    return int(scaled)


def average_of(
    cost: int, remainder: int, denominator: int, lots: int, tick_lot: Decimal, lot: Decimal
) -> Decimal:
    """The average entry price of `lots` whose entry value is `cost + remainder / denominator`
    tick-lots (28 significant digits; the callers quantize for display)."""
    value = Decimal(cost * denominator + remainder) * tick_lot
    return value / (Decimal(lots * denominator) * lot)


def amount_of(minor: int, decimals: int) -> Decimal:
    """The decimal amount of `minor` units of a currency with `decimals` places."""
    return Decimal(minor).scaleb(-decimals).quantize(Decimal(1).scaleb(-decimals))


def add_fractions(num: int, den: int, term_num: int, term_den: int) -> tuple[int, int]:
    """num/den + term_num/term_den, exactly, over the lcm of the denominators (the common cases, equal
    or dividing denominators, need none): how exact money is summed (`engine.valuation`, read models)."""
    if term_den == den:
        return num + term_num, den
    if den == 1:
        return num * term_den + term_num, term_den
    if den % term_den == 0:
        return num + term_num * (den // term_den), den
    common = lcm(den, term_den)
    return num * (common // den) + term_num * (common // term_den), common


def floor_amount(value: Decimal | Fraction, decimals: int) -> Decimal:
    """An exact amount rounded down to the currency's minor unit: how money the venue owes no one yet
    (equity, unrealised P&L) is shown, in the venue's favour (`engine.valuation`)."""
    exact = Fraction(value)
    return amount_of((exact.numerator * 10**decimals) // exact.denominator, decimals)


def format_money(minor: int, currency: str, decimals: int) -> str:
    """Money in a message for people: "3,030.00 USD" (the currency's places, thousands grouped).

    Every error or log text that names an amount goes through here, never raw minor units."""
    return f"{amount_of(minor, decimals):,.{decimals}f} {currency}"


def ppm_of(rate: Decimal, what: str) -> int:
    """A rate given as a decimal fraction ("0.001") in parts per million, exactly."""
    scaled = rate * PPM
    if scaled != scaled.to_integral_value():
        raise invalid_order(f"{what} {rate} is finer than one part per million")
    return int(scaled)


PERCENT_PER_PPM = Decimal("0.0001")


def trail_percent_of(ppm: int) -> Decimal:
    """A trailing stop's trail, kept in parts per million of the price, as the percentage the API
    shows ("1.5" = 1.5 %): `_percent` fields are percentages, every other ratio a fraction."""
    return decimal_of(ppm, PERCENT_PER_PPM)


FUNDING_RATE_PLACES = 8
"""Exchanges publish funding rates to 8 decimals (0.00019999); a finer rate is refused, never cut."""
RATE_SCALE = 10**FUNDING_RATE_PLACES
"""A funding rate inside the engine: an integer count of 1e-8."""


def check_funding_rate(rate: Decimal, what: str = "funding_rate") -> Decimal:
    """`rate` unchanged if it has at most 8 decimals; else a refusal (`invalid_order`, HTTP 422)."""
    exponent = rate.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -FUNDING_RATE_PLACES:
        raise invalid_order(f"{what} {rate} has more than {FUNDING_RATE_PLACES} decimals")
    return rate


def rate_units_of(rate: Decimal, what: str = "funding_rate") -> int:
    """A funding rate in 1e-8 units, exactly; more than 8 decimals is refused (`invalid_order`)."""
    return int(check_funding_rate(rate, what) * RATE_SCALE)


def _plain(value: Decimal) -> Decimal:
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return normal.quantize(Decimal(1))
    return normal


@dataclass(frozen=True, slots=True)
class Ratio:
    """An exact rational conversion factor num/den (den > 0)."""

    num: int
    den: int

    @staticmethod
    def of(value: Decimal) -> Ratio:
        num, den = value.as_integer_ratio()
        return Ratio(num, den)

    def round(self, units: int) -> int:
        return div_round_half_even(units * self.num, self.den)

    def ceil(self, units: int) -> int:
        return ceil_div(units * self.num, self.den)

    def floor(self, units: int) -> int:
        return (units * self.num) // self.den


def decimal_str(value: Decimal) -> str:
    """The wire form of a decimal: plain notation, never an exponent ("0.00000005", not "5E-8")."""
    return format(value, "f")
