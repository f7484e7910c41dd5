"""Money: channel text to integer minor units, exactly, or a clear error.

Channel bills write yuan with two decimals (``0.01``), fees with five (``-1.56000``),
and hand-made exports add currency signs and grouping (``¥1,234.56``). Everything is
converted through :class:`~decimal.Decimal` or Arrow's decimal type, never a float, and
anything that would lose a digit or could be read two ways is rejected.

>>> parse_minor("0.01")
1
>>> parse_minor("¥1,234.56")
123456
>>> parse_minor("-1.56000", scale=5)
-156000
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.errors import MoneyError

# Fen per yuan; fees are kept in thousandths of a fen, i.e. 10**5 per yuan.
MINOR_SCALE = 2
FEE_SCALE = 5

_CURRENCY_SIGNS = "¥￥$€£"
# Strict shape: optional sign, digits with optional well-formed thousands groups, optional
# fraction. "1,23.4" or "1.2.3" are ambiguous and rejected.
_PLAIN = re.compile(r"[+-]?\d+(?:\.\d+)?")
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_ARROW_PLAIN = r"^[+-]?[0-9]+(\.[0-9]+)?$"


def _normalize(text: str) -> str:
    value = text.strip().lstrip("`").strip()
    sign = ""
    if value.startswith(("+", "-")):  # value[:1] in "+-" was also true for ""
        sign, value = value[0], value[1:].lstrip()
    if value[:1] and value[0] in _CURRENCY_SIGNS:
        value = value[1:].lstrip()
    return sign + value


def parse_minor(text: str, *, scale: int = MINOR_SCALE) -> int:
    """Parse a decimal amount written in major units into ``10**-scale`` units.

    Raises :class:`MoneyError` for empty text, non-numbers, exponents, malformed thousands
    groups and any value with more significant decimals than ``scale`` allows.
    """
    value = _normalize(text)
    if _GROUPED.fullmatch(value):
        value = value.replace(",", "")
    elif not _PLAIN.fullmatch(value):
        raise MoneyError(f"{text!r} is not an amount")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise MoneyError(f"{text!r} is not an amount") from exc
    scaled = number.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{text!r} has more than {scale} decimals")
    return int(scaled)


def format_minor(amount: int, *, scale: int = MINOR_SCALE) -> str:
    """Render minor units as a plain decimal string (``-156`` -> ``-1.56``).

    >>> format_minor(-156)
    '-1.56'
    """
    return str(Decimal(amount).scaleb(-scale).quantize(Decimal(1).scaleb(-scale)))


def first_invalid(values: pa.Array, *, scale: int = MINOR_SCALE) -> int | None:
    """Index of the first non-null value that :func:`arrow_to_minor` would reject."""
    strings = pc.utf8_trim_whitespace(values.cast(pa.string()))
    shape_ok = pc.match_substring_regex(strings, _ARROW_PLAIN)
    bad = pc.invert(pc.fill_null(shape_ok, True))
    for index in pc.indices_nonzero(bad).to_pylist():
        return int(index)
    for index, text in enumerate(strings.to_pylist()):
        if text is None:
            continue
        try:
            parse_minor(text, scale=scale)
        except MoneyError:
            return index
    return None


def arrow_to_minor(values: pa.Array, *, scale: int = MINOR_SCALE) -> pa.Array:
    """Vectorised :func:`parse_minor` for a string column (nulls stay null).

    Accepts the plain shape only (bill columns carry no signs or grouping). On a bad value
    it raises :class:`MoneyError` whose ``row`` attribute is the offending index, so the
    caller can name the file line.
    """
    strings = pc.utf8_trim_whitespace(values.cast(pa.string()))
    shape_ok = pc.match_substring_regex(strings, _ARROW_PLAIN)
    # min_count=0: an empty column is valid (by default `all` of nothing is null).
    if not pc.all(pc.fill_null(shape_ok, True), min_count=0).as_py():
        raise _row_error(strings, scale)
    try:
        decimals = pc.cast(strings, pa.decimal128(18, scale))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _row_error(strings, scale) from None
    # decimal(18, scale) stores the amount in 10**-scale units as its unscaled integer:
    # reading it at scale 0 converts exactly, without a multiply.
    try:
        return pc.cast(decimals.view(pa.decimal128(18, 0)), pa.int64())
    except pa.ArrowInvalid:
        raise _row_error(strings, scale) from None


class MoneyRowError(MoneyError):
    """A :class:`MoneyError` that knows the index of the bad value in its column."""

    def __init__(self, message: str, row: int) -> None:
        self.row = row
        super().__init__(message)


def _row_error(strings: pa.Array, scale: int) -> MoneyRowError:
    row = first_invalid(strings, scale=scale)
    if row is None:  # every value parses alone: one is too large for Arrow's decimal128(18)
        row = _first_out_of_range(strings, scale)
    text = strings[row].as_py()
    try:
        parse_minor(text, scale=scale)
    except MoneyError as exc:
        return MoneyRowError(exc.reason, row)
    return MoneyRowError(f"{text!r} is out of range", row)


def _first_out_of_range(strings: pa.Array, scale: int) -> int:
    """Index of the first value with more integer digits than decimal128(18, scale) holds."""
    limit = 10**18
    for index, text in enumerate(strings.to_pylist()):
        if text is not None and abs(parse_minor(text, scale=scale)) >= limit:
            return index
    return 0
