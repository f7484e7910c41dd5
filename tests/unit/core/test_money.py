from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from payrecon.core.money import (
    FEE_SCALE,
    MoneyRowError,
    arrow_to_minor,
    format_minor,
    parse_minor,
)
from payrecon.errors import MoneyError


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("0.01", 2, 1),
        ("-1.56000", 2, -156),
        ("-1.56000", FEE_SCALE, -156000),
        ("0.74070", FEE_SCALE, 74070),
        ("¥1,234.56", 2, 123456),
        ("￥ 12", 2, 1200),
        ("-¥0.10", 2, -10),
        ("`88.80", 2, 8880),
        (" 1,000,000.00 ", 2, 100000000),
        ("0", 2, 0),
    ],
)
def test_parses_channel_text_to_minor_units(text: str, scale: int, expected: int) -> None:
    assert parse_minor(text, scale=scale) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.015", "more than 2 decimals"),
        ("1,23.40", "not an amount"),
        ("1.2.3", "not an amount"),
        ("1e3", "not an amount"),
        ("", "not an amount"),
        ("abc", "not an amount"),
        ("NaN", "not an amount"),
        ("12,34", "not an amount"),
    ],
)
def test_rejects_ambiguous_or_inexact_text(text: str, reason: str) -> None:
    with pytest.raises(MoneyError, match=reason):
        parse_minor(text)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_format_and_parse_round_trip(amount: int) -> None:
    assert parse_minor(format_minor(amount)) == amount
    assert Decimal(format_minor(amount)) * 100 == amount


def test_vectorised_parse_matches_scalar_and_keeps_nulls() -> None:
    texts = ["0.01", "-1.56000", "12", None, " 3.10"]
    result = arrow_to_minor(pa.array(texts)).to_pylist()
    assert result == [1, -156, 1200, None, 310]


@pytest.mark.parametrize(
    ("texts", "row", "reason"),
    [
        (["1.00", "0.015"], 1, "more than 2 decimals"),
        (["1.00", "2.00", "x"], 2, "not an amount"),
        (["1e3"], 0, "not an amount"),
    ],
)
def test_vectorised_parse_names_the_bad_row(texts: list[str], row: int, reason: str) -> None:
    with pytest.raises(MoneyRowError, match=reason) as caught:
        arrow_to_minor(pa.array(texts))
    assert caught.value.row == row


def test_fee_scale_keeps_thousandths_of_a_fen() -> None:
    result = arrow_to_minor(pa.array(["0.00020", "-0.02000"]), scale=FEE_SCALE)
    assert result.to_pylist() == [20, -2000]
