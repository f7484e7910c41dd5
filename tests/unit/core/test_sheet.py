"""Formula injection: text cells of the reports are shown, never run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payrecon.core.sheet import safe_text
from payrecon.service.outputs import _cell


@pytest.mark.parametrize(
    "text", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
)
def test_formula_starts_are_quoted(text: str) -> None:
    assert safe_text(text) == "'" + text
    assert _cell(text) == "'" + text


@pytest.mark.parametrize("text", ["order-1", "4200001234", "", "'=already quoted", "a=b"])
def test_other_text_is_kept(text: str) -> None:
    assert safe_text(text) == text


def test_report_cells_keep_numbers_and_instants() -> None:
    assert _cell(-150) == -150  # a negative amount stays a number
    moment = datetime(2026, 11, 20, 1, 2, 3, tzinfo=UTC)
    assert _cell(moment) == "2026-11-20T01:02:03+00:00"
    assert _cell(None) is None
