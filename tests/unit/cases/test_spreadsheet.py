"""The spreadsheet round trip: export cases, an operator fills in actions, import checks
every row and applies all or nothing. Pure parsing on its own; the round trip on SQLite
and (integration) PostgreSQL; formula injection kept out of the export."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from payrecon.cases import audit
from payrecon.cases.ingest import open_cases
from payrecon.cases.service import CaseFilter, CaseService
from payrecon.cases.spreadsheet import (
    HEADER,
    Formula,
    SheetError,
    export_cases,
    export_row,
    import_decisions,
    parse_rows,
    safe_text,
)
from payrecon.core.workflow import ActionKind
from tests.conftest import DAY, record
from tests.unit.cases.conftest import Outcomes, standard_day

# -- pure ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_text_a_spreadsheet_would_run_gets_a_quote(text: str) -> None:
    assert safe_text(text) == "'" + text


@pytest.mark.parametrize("text", ["o-1", "补单", "", "1=1", " =x"])
def test_other_text_is_left_alone(text: str) -> None:
    assert safe_text(text) == text


def a_case(**change: Any) -> dict[str, Any]:
    base = {
        "id": 7,
        "version": 3,
        "channel": "wechat",
        "merchant_id": None,
        "run_day": "2026-11-20",
        "order_id": '=HYPERLINK("http://x")',
        "kind": "PAY",
        "outcome": "AMOUNT_MISMATCH",
        "side": None,
        "diff_fields": "amount",
        "state": "OPEN",
        "assignee": None,
        "severity": "low",
        "due_at": "2026-11-24T02:00:00+00:00",
        "currency": "CNY",
        "ledger_amount": 10_000,
        "channel_amount": 9_000,
        "amount_diff": -1_000,
        "stake": 1_000,
    }
    return base | change


def test_an_exported_row_keeps_money_as_numbers_and_neutralises_text() -> None:
    row = dict(zip(HEADER, export_row(a_case()), strict=True))
    assert (row["id"], row["version"]) == (7, 3)
    assert row["order_id"] == '\'=HYPERLINK("http://x")'
    assert row["amount_diff"] == -1_000 and isinstance(row["amount_diff"], int)
    assert row["amount_diff_yuan"] == Decimal("-10.00")
    assert row["merchant_id"] is None
    assert [row[c] for c in ("action", "amount_yuan", "note", "days")] == [None] * 4


def rows_of(*filled: dict[str, object]) -> list[tuple[int, list[object]]]:
    """Sheet rows (numbered from 2) with the given cells, the rest empty."""
    made = []
    for number, cells in enumerate(filled, start=2):
        made.append((number, [cells.get(column) for column in HEADER]))
    return made


def test_parsing_accepts_values_labels_and_excel_numbers() -> None:
    found, errors = parse_rows(
        HEADER,
        rows_of(
            {"id": 1, "version": 2, "action": "补单", "note": "paid", "amount_yuan": 12.34},
            {"id": 2.0, "version": "4", "action": "Park", "note": "wait", "days": 3},
            {"id": 3, "version": 1},  # no action: skipped
            {"id": 4, "version": 1, "action": "write_off", "note": "x", "amount_yuan": "0.01"},
        ),
    )
    assert errors == []
    assert [(i.row, i.case_id, i.version, i.action, i.amount, i.days) for i in found] == [
        (2, 1, 2, ActionKind.SUPPLEMENT_ORDER, 1234, None),
        (3, 2, 4, ActionKind.PARK, None, 3),
        (5, 4, 1, ActionKind.WRITE_OFF, 1, None),
    ]


def test_parsing_names_row_and_column_of_every_bad_cell() -> None:
    _, errors = parse_rows(
        HEADER,
        rows_of(
            {"id": 1, "version": 1, "action": "pay them", "note": "x"},
            {"id": 2, "version": 1, "action": "refund"},
            {"id": 3, "version": 1, "action": "refund", "note": "x", "amount_yuan": "12.345"},
            {"id": 4, "version": 1, "action": "refund", "note": "x", "days": 2},
            {"id": 5, "action": "refund", "note": "x"},
            {"id": 6, "version": 1, "action": "refund", "note": Formula("=A1")},
            {"id": 7, "version": 1, "amount_yuan": 3},
            {"id": 1, "version": 1, "action": "park", "note": "again"},
            {"id": 1.5, "version": 1, "action": "park", "note": "x"},
        ),
    )
    assert [(e.row, e.column) for e in errors] == [
        (2, "action"),
        (3, "note"),
        (4, "amount_yuan"),
        (5, "days"),
        (6, "version"),
        (7, "note"),
        (8, "amount_yuan"),
        (10, "id"),
    ]
    assert "not an action; one of accept_platform (以平台为准)" in errors[0].reason
    assert "formula" in errors[5].reason and "no action" in errors[6].reason
    # Row 9 (a second decision on case 1) is caught only when row 2 parsed; row 2 did not.
    assert str(errors[0]).startswith("row 2, column action: ")


def test_a_sheet_without_the_input_columns_is_refused_whole() -> None:
    _, errors = parse_rows(["id", "version", "action"], [(2, [1, 1, "park"])])
    assert {(e.row, e.column) for e in errors} == {(1, "amount_yuan"), (1, "note"), (1, "days")}


def test_a_case_decided_twice_is_refused() -> None:
    _, errors = parse_rows(
        HEADER,
        rows_of(
            {"id": 1, "version": 1, "action": "park", "note": "a"},
            {"id": 1, "version": 1, "action": "refund", "note": "b"},
        ),
    )
    assert [(e.row, e.column) for e in errors] == [(3, "id")]
    assert "already decided in row 2" in errors[0].reason


# -- the round trip on a real store ---------------------------------------------------------


@pytest.fixture
def cases(service: CaseService, outcomes: Outcomes) -> dict[str, int]:
    ledger, channel = standard_day()
    ledger.append(record("=1+1", 700))  # order ids a spreadsheet would run
    channel.append(record("@SUM(A1)", 800))
    open_cases(service, outcomes(ledger, channel), run_id="r1", channel="wechat", day=DAY)
    return {row["order_id"]: row["id"] for row in service.query(limit=100)[1]}


def fill(source: Path, target: Path, decisions: dict[int, dict[str, object]]) -> dict[int, int]:
    """What an operator does in Excel; returns each case's row number."""
    book = load_workbook(source)
    sheet = book["cases"]
    header = [c.value for c in sheet[1]]
    rows = {}
    for row in sheet.iter_rows(min_row=2):
        case_id = int(row[0].value)  # type: ignore[arg-type]
        rows[case_id] = row[0].row
        for column, value in decisions.get(case_id, {}).items():
            row[header.index(column)].value = value
    book.save(target)
    return rows


def state_of(service: CaseService) -> list[tuple[Any, ...]]:
    rows = service.query(limit=100)[1]
    with service.store.session() as session:
        entries = len(audit.entries(session))
    return [(r["id"], r["state"], r["assignee"], r["version"]) for r in rows] + [(entries,)]


def test_export_writes_numbers_as_numbers_and_no_formulas(
    service: CaseService, cases: dict[str, int], tmp_path: Path
) -> None:
    target = tmp_path / "cases.xlsx"
    assert export_cases(service, CaseFilter(states=("OPEN",)), target) == 6
    sheet = load_workbook(target)["cases"]
    header = [c.value for c in sheet[1]]
    assert tuple(header) == HEADER
    cells = {int(r[0].value): r for r in sheet.iter_rows(min_row=2)}  # type: ignore[arg-type]
    assert all(c.data_type != "f" for row in cells.values() for c in row)
    col = header.index
    assert cells[cases["=1+1"]][col("order_id")].value == "'=1+1"
    assert cells[cases["@SUM(A1)"]][col("order_id")].value == "'@SUM(A1)"
    mismatch = cells[cases["o2"]]
    assert mismatch[col("amount_diff")].value == -1_000  # a number, not "'-1000"
    assert mismatch[col("amount_diff")].data_type == "n"
    assert mismatch[col("amount_diff_yuan")].value == -10
    assert mismatch[col("amount_diff_yuan")].number_format == "#,##0.00"
    assert mismatch[col("version")].value == 1 and mismatch[col("state")].value == "OPEN"


def test_a_filled_export_is_applied_case_by_case(
    service: CaseService, cases: dict[str, int], tmp_path: Path
) -> None:
    exported = tmp_path / "cases.xlsx"
    export_cases(service, CaseFilter(open_only=True), exported)
    filled = tmp_path / "filled.xlsx"
    fill(
        exported,
        filled,
        {
            cases["o3"]: {"action": "补单", "note": "paid, callback lost"},
            cases["o4"]: {"action": "park", "note": "wait for T+1", "days": 5},
            cases["o2"]: {"action": "write_off", "note": "rounding", "amount_yuan": 10},
        },
    )
    results = import_decisions(service, filled, service.actor("alice"))
    assert all(r.ok for r in results) and len(results) == 3
    o3, o4, o2 = (service.get(cases[o]) for o in ("o3", "o4", "o2"))
    assert (o3["state"], o3["assignee"]) == ("PENDING_APPROVAL", "alice")
    assert (o3["actions"][-1]["kind"], o3["actions"][-1]["amount"]) == ("supplement_order", 500)
    assert o4["state"] == "PARKED" and o4["parked_until"] == "2026-11-26"
    assert o2["actions"][-1]["amount"] == 1_000 and o2["actions"][-1]["reason"] == "rounding"
    assert [e["event"] for e in o3["audit"]] == ["created", "assign", "propose"]
    untouched = service.get(cases["o5"])
    assert untouched["state"] == "OPEN" and len(untouched["audit"]) == 1
    with service.store.session() as session:
        assert audit.check(session).ok


def test_one_bad_row_and_nothing_is_applied(
    service: CaseService, cases: dict[str, int], tmp_path: Path
) -> None:
    exported = tmp_path / "cases.xlsx"
    export_cases(service, CaseFilter(open_only=True), exported)
    service.comment(cases["o5"], service.actor("bob"), "someone works on it meanwhile")
    filled = tmp_path / "filled.xlsx"
    rows = fill(
        exported,
        filled,
        {
            cases["o3"]: {"action": "supplement_order", "note": "fine on its own"},
            cases["o2"]: {"action": "supplement_order", "note": "does not fit"},
            cases["o4"]: {"action": "adjust", "note": "too much", "amount_yuan": "99999"},
            cases["o5"]: {"action": "accept_channel", "note": "stale"},
            cases["=1+1"]: {"action": "park", "note": "=1+1"},
        },
    )
    before = state_of(service)
    with pytest.raises(SheetError) as refused:
        import_decisions(service, filled, service.actor("alice"))
    assert state_of(service) == before  # not even the good row
    found = {(e.row, e.column) for e in refused.value.errors}
    assert found == {
        (rows[cases["o2"]], "action"),
        (rows[cases["o4"]], "amount_yuan"),
        (rows[cases["o5"]], "version"),
        (rows[cases["=1+1"]], "note"),
    }
    text = str(refused.value)
    assert "nothing was applied" in text and f"row {rows[cases['o2']]}, column action" in text
    assert "does not apply to AMOUNT_MISMATCH" in text
    assert "changed since the export (version 1, now 2)" in text


def test_an_operator_cannot_decide_cases_someone_else_holds(
    service: CaseService, cases: dict[str, int], tmp_path: Path
) -> None:
    service.assign(cases["o3"], service.actor("bob"), "carol")
    exported = tmp_path / "cases.xlsx"
    export_cases(service, CaseFilter(open_only=True), exported)
    filled = tmp_path / "filled.xlsx"
    rows = fill(exported, filled, {cases["o3"]: {"action": "refund", "note": "mine now"}})
    with pytest.raises(SheetError) as refused:
        import_decisions(service, filled, service.actor("alice"))
    (error,) = refused.value.errors
    assert (error.row, error.column) == (rows[cases["o3"]], "action")
    assert "only the assignee (carol)" in error.reason
