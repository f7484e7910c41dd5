"""Spreadsheet cells that are shown, never run (formula injection, CWE-1236).

Excel and LibreOffice treat text starting with ``=``, ``+``, ``-`` or ``@`` (and tab or CR
before one) as a formula; a bill or ledger value such as ``=HYPERLINK(…)`` must not become
one in a report an operator opens. Such text gets a leading ``'``; numbers stay numbers.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_text(text: str) -> str:
    """Text a spreadsheet will show, never run: ``=1+1`` -> ``'=1+1``.

    >>> safe_text("-5 yuan"), safe_text("o-17")
    ("'-5 yuan", 'o-17')
    """
    return "'" + text if text.startswith(FORMULA_STARTS) else text
