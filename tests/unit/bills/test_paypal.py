"""PaypalBillParser: STL record types, hundredths, event codes and the SF/SC/RF/RC checks."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from payrecon.bills.paypal import PaypalBillParser
from payrecon.bills.registry import bill_parser
from payrecon.config import Settings
from payrecon.core.schema import CANONICAL
from payrecon.errors import BillFooterMismatch, BillFormatError, BillTruncatedError, MoneyError

FIXTURES = Path(__file__).parents[2] / "fixtures/bills/paypal"
STL = FIXTURES / "STL-20240305.01.009.CSV"
WRONG_SF = FIXTURES / "STL-20240305.01.009_wrong_SF_total.CSV"


def parse(path: Path, **kwargs: Any) -> tuple[PaypalBillParser, list[dict[str, Any]]]:
    parser = PaypalBillParser(path, **kwargs)
    return parser, pa.Table.from_batches(list(parser.batches()), schema=CANONICAL).to_pylist()


def variant(tmp_path: Path, old: str, new: str, *, encoding: str = "utf-8") -> Path:
    text = STL.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / STL.name
    path.write_bytes(text.replace(old, new).encode(encoding))
    return path


def location(error: Exception) -> tuple[int | None, str | None]:
    place = getattr(error, "location", None)
    assert place is not None
    return place.line, place.field


# --------------------------------------------------------------------------- the fixture


def test_fixture_records() -> None:
    parser, rows = parse(STL)
    assert [
        (r["kind"], r["order_id"], r["amount"], r["fee"], r["currency"], r["line_no"]) for r in rows
    ] == [
        ("PAY", "S1001", 3000, 117_000, "USD", 5),
        ("REFUND", "R2001", 1000, -39_000, "USD", 6),  # fee credited back: negative
        ("PAY", "S1002", 1000, 36_000, "JPY", 7),  # 100000 hundredths of yen = 1000 yen
        ("PAY", "3MN45678GH9012345", 500, 45_000, "USD", 8),  # no Invoice ID: PayPal's id
    ]
    assert [r["channel_txn_id"] for r in rows][:2] == ["0V83282A1P3766625", "1AB23456CD7890123"]
    assert {r["merchant_id"] for r in rows} == {"ABCDEFGHJKLMN"}
    assert {r["origin_order_id"] for r in rows} == {None}
    # Completion dates carry their own offset: -0800 (the A window) and +0800.
    assert rows[0]["txn_time"] == datetime(2024, 3, 5, 2, 30, 2, tzinfo=UTC)
    assert rows[1]["txn_time"] == datetime(2024, 3, 5, 3, 0, 1, tzinfo=UTC)
    assert {r["bill_date"] for r in rows} == {date(2024, 3, 5)}
    assert parser.footer is not None and parser.footer.status == "ok"
    assert parser.footer.declared == {
        "count": 5,
        "fee_credit:JPY": 0,
        "fee_credit:USD": 39,
        "fee_debit:JPY": 3600,
        "fee_debit:USD": 162,
        "gross_credit:JPY": 100000,
        "gross_credit:USD": 3500,
        "gross_debit:JPY": 0,
        "gross_debit:USD": 2500,
    }
    assert parser.footer.counted["count"] == 5
    assert parser.footer.counted["skipped:T0400"] == 1  # the withdrawal counts, is no order


def test_only_customer_payments_and_refunds_become_records(tmp_path: Path) -> None:
    # A bank deposit into PayPal (T0300) is a credit too, but no customer's order.
    path = variant(tmp_path, '"T0400",2024/03/05 23:00:00 +0800,2024/03/05 23:00:00 +0800,"DR"',
                   '"T0300",2024/03/05 23:00:00 +0800,2024/03/05 23:00:00 +0800,"CR"')  # fmt: skip
    text = path.read_text(encoding="utf-8").replace('"USD",3500,2500,', '"USD",5000,1000,')
    path.write_text(text, encoding="utf-8")
    parser, rows = parse(path)
    assert [r["order_id"] for r in rows] == ["S1001", "R2001", "S1002", "3MN45678GH9012345"]
    assert parser.footer is not None and parser.footer.counted["skipped:T0300"] == 1


def test_registered() -> None:
    assert isinstance(bill_parser("paypal", STL, Settings()), PaypalBillParser)


def test_wrong_section_total_is_a_footer_mismatch() -> None:
    with pytest.raises(BillFooterMismatch, match="SF says gross_credit 3501 USD") as caught:
        parse(WRONG_SF)
    assert location(caught.value) == (10, "gross_credit")


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ('"SC",5', '"SC",4', 12, "SC"),
        ('"RF","JPY",100000,0,0,3600', '"RF","JPY",100000,0,0,3500', 14, "fee_debit"),
        ('"RC",5', '"RC",6', 15, "RC"),
    ],
)
def test_wrong_counts_and_report_totals(
    tmp_path: Path, old: str, new: str, line: int, field: str
) -> None:
    with pytest.raises(BillFooterMismatch) as caught:
        parse(variant(tmp_path, old, new))
    assert location(caught.value) == (line, field)


def test_a_row_in_a_currency_without_totals(tmp_path: Path) -> None:
    path = variant(tmp_path, '"SF","JPY",100000,0,0,3600\n', "")
    with pytest.raises(BillFooterMismatch, match="JPY rows but no SF totals"):
        parse(path)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ('"FF",5\n', "", "without its FF"),
        ('"SC",5\n"RF"', '"RF"', "ends without its SC"),
    ],
)
def test_truncated_files(tmp_path: Path, old: str, new: str, match: str) -> None:
    with pytest.raises(BillTruncatedError, match=match):
        parse(variant(tmp_path, old, new))


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("old", "new", "field", "match"),
    [
        ('"CR",3000,"USD"', '"CR",30.00,"USD"', "Gross Transaction Amount", "not an amount"),
        ('"CR",3000,"USD"', '"CR",-3000,"USD"', "Gross Transaction Amount", "not an amount"),
        ('"CR",100000,"JPY"', '"CR",100050,"JPY"', "Gross Transaction Amount", "not a whole"),
        ('"DR",117,"USD"', '"DR",1.17,"USD"', "Fee Amount", "not an amount"),
    ],
)
def test_bad_amounts_are_money_errors_naming_line_and_field(
    tmp_path: Path, old: str, new: str, field: str, match: str
) -> None:
    with pytest.raises(MoneyError, match=match) as caught:
        parse(variant(tmp_path, old, new))
    line = 7 if "JPY" in old else 5
    assert location(caught.value) == (line, field)


def test_bad_footer_amount_is_a_money_error(tmp_path: Path) -> None:
    with pytest.raises(MoneyError) as caught:
        parse(variant(tmp_path, '"SF","USD",3500,', '"SF","USD",35.00,'))
    assert location(caught.value) == (10, "gross_credit")


@pytest.mark.parametrize(
    ("old", "new", "line", "match"),
    [
        ('"CR",3000', '"XX",3000', 5, "not CR or DR"),
        ("2024/03/04 18:30:02 -0800", "2024/02/30 18:30:02 -0800", 5, "not a time"),
        ('"FH",01', '"ZZ",01', 2, "unknown record type 'ZZ'"),
        ('"SH",2024/03/04', '"XH",2024/03/04', 3, "unknown record type"),
    ],
)
def test_bad_records_name_their_line(
    tmp_path: Path, old: str, new: str, line: int, match: str
) -> None:
    with pytest.raises(BillFormatError, match=match) as caught:
        parse(variant(tmp_path, old, new))
    assert location(caught.value)[0] == line


def test_body_rows_need_a_section_and_its_column_header(tmp_path: Path) -> None:
    text = STL.read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith('"CH"'))
    path = variant(tmp_path, header + "\n", "")
    with pytest.raises(BillFormatError, match="before any CH column header"):
        parse(path)


def test_bom_crlf_and_squeezed_column_names(tmp_path: Path) -> None:
    text = STL.read_text(encoding="utf-8").replace('"Transaction ID"', '"TransactionID"')
    path = tmp_path / STL.name
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    _, rows = parse(path)
    assert [r["order_id"] for r in rows][:3] == ["S1001", "R2001", "S1002"]


def test_utf16_files_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / STL.name
    path.write_bytes(STL.read_text(encoding="utf-8").encode("utf-16"))
    with pytest.raises(BillFormatError, match="UTF-16"):
        parse(path)
