"""Resource quantities ("10Gi", "500M", "1e3"), parsed exactly and printed as the API
server and the kubelet print them.

Modelled on k8s.io/apimachinery/pkg/api/resource/quantity.go: ParseQuantity keeps the
format the text was written in (BinarySI for Ki..Ei, DecimalExponent for 1e3, DecimalSI
otherwise), and String() is the canonical form of that format (CanonicalizeBytes): a
binary quantity is the largest power of 1024 that divides it ("1536Mi" for "1.5Gi"),
unless it is under 1024 or fractional, when it falls back to decimal; a decimal one has
an exponent that is a multiple of three ("1500M", "1G", "500m").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_SUFFIX = {power: suffix for suffix, power in _BINARY.items()}

BINARY_SI = "BinarySI"
DECIMAL_SI = "DecimalSI"
DECIMAL_EXPONENT = "DecimalExponent"


class QuantityError(ValueError):
    """Text that is not a quantity; the message is apimachinery's ErrFormatWrong."""

    def __init__(self) -> None:
        super().__init__(f"quantities must match the regular expression '{PATTERN}'")


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: str

    def __str__(self) -> str:
        return canonical(self.value, self.format)

    def __add__(self, other: Quantity) -> Quantity:
        """As Quantity.Add: the sum keeps the format of the left operand."""
        return Quantity(self.value + other.value, self.format)


def parse(text: object) -> Quantity:
    """A quantity from its text (or a JSON number, which the API accepts too)."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise QuantityError()
    raw = str(text).strip()
    match = re.fullmatch(PATTERN, raw)
    if match is None:
        raise QuantityError()
    number, suffix = match.groups()
    if number.count(".") > 1 or number.strip("+-") in ("", "."):
        raise QuantityError()
    try:
        value = Fraction(number)
    except (ValueError, ZeroDivisionError) as error:
        raise QuantityError() from error
    if suffix in _BINARY:
        return Quantity(value * 1024 ** _BINARY[suffix], BINARY_SI)
    if suffix in _DECIMAL:
        return Quantity(value * Fraction(10) ** _DECIMAL[suffix], DECIMAL_SI)
    exponent = re.fullmatch(r"[eE]([-+]?[0-9]+)", suffix)
    if exponent is None:
        raise QuantityError()
    return Quantity(value * Fraction(10) ** int(exponent.group(1)), DECIMAL_EXPONENT)


def _decimal_parts(value: Fraction) -> tuple[int, int]:
    """(mantissa, exponent) with value == mantissa * 10**exponent, exponent a multiple of 3,
    rounded up to nano units as the API server rounds."""
    if value == 0:
        return 0, 0
    exponent = 0
    while value.denominator != 1 and exponent > -9:
        value *= 10
        exponent -= 1
    mantissa = value.numerator // value.denominator
    if value.denominator != 1:
        mantissa += 1 if value > 0 else 0  # round up, away from the fraction
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    while exponent % 3:
        mantissa *= 10
        exponent -= 1
    while exponent > 18:
        mantissa *= 1000
        exponent -= 3
    return mantissa, exponent


def canonical(value: Fraction, fmt: str) -> str:
    if fmt == BINARY_SI and value.denominator == 1 and abs(value) >= 1024:
        whole = int(value)
        power = 0
        while power < 6 and whole % 1024 ** (power + 1) == 0:
            power += 1
        return f"{whole // 1024**power}{_BINARY_SUFFIX.get(power, '')}"
    mantissa, exponent = _decimal_parts(value)
    if fmt == DECIMAL_EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"
