"""StripeBillParser: itemized balance reports, currency digits, keys and failure modes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from payrecon.bills.registry import bill_parser
from payrecon.bills.stripe import StripeBillParser
from payrecon.config import Settings
from payrecon.core.schema import CANONICAL
from payrecon.errors import BillFormatError, BillTruncatedError, MoneyError

FIXTURE = (
    Path(__file__).parents[2]
    / "fixtures/bills/stripe/Itemized_balance_change_from_activity_USD_2024-03-05_to_2024-03-05.csv"
)
HEADER = "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id"


def parse(path: Path, **kwargs: Any) -> tuple[StripeBillParser, list[dict[str, Any]]]:
    parser = StripeBillParser(path, **kwargs)
    return parser, pa.Table.from_batches(list(parser.batches()), schema=CANONICAL).to_pylist()


def write(folder: Path, *lines: str, header: str = HEADER) -> Path:
    path = folder / "report.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def test_fixture_records() -> None:
    parser, rows = parse(FIXTURE)
    assert [
        (r["kind"], r["order_id"], r["origin_order_id"], r["amount"], r["fee"], r["currency"])
        for r in rows
    ] == [
        ("PAY", "S1001", None, 2500, 103_000, "USD"),
        ("PAY", "S1002", None, 1000, 36_000, "JPY"),  # zero-decimal: 1000 is 1000 yen
        ("REFUND", "R2001", "S1001", 1000, -30_000, "USD"),  # fee returned: negative
        # no metadata: keyed by Stripe's own id, so it cannot silently match a ledger row
        ("PAY", "py_3OqAbf2eZvKYlo2C4x5y6z7w", None, 1250, 66_000, "USD"),
    ]
    assert [r["channel_txn_id"][:3] for r in rows] == ["ch_", "ch_", "re_", "py_"]
    assert rows[0]["txn_time"] == datetime(2024, 3, 5, 2, 15, 7, tzinfo=UTC)
    assert {r["bill_date"] for r in rows} == {date(2024, 3, 5)}  # 10:15 … 18:00 in Shanghai
    assert [r["line_no"] for r in rows] == [2, 3, 4, 5]
    assert {r["merchant_id"] for r in rows} == {None}
    assert parser.footer is not None and parser.footer.status == "none"
    assert parser.footer.counted == {
        "rows": 6,
        "charges": 3,
        "refunds": 1,
        "skipped:dispute": 1,
        "skipped:fee": 1,
    }


def test_registered() -> None:
    assert isinstance(bill_parser("stripe", FIXTURE, Settings()), StripeBillParser)


def test_accounting_day_is_taken_in_the_run_zone(tmp_path: Path) -> None:
    path = write(tmp_path, "txn_1,2024-03-05 16:00:00,usd,1.00,0.00,1.00,charge,ch_1")
    _, rows = parse(path)
    assert rows[0]["bill_date"] == date(2024, 3, 6)  # midnight in Shanghai
    _, rows = parse(path, timezone="America/New_York")
    assert rows[0]["bill_date"] == date(2024, 3, 5)


def test_columns_are_found_by_name_in_any_order(tmp_path: Path) -> None:
    header = "reporting_category,gross,currency,created_utc,balance_transaction_id"
    path = write(tmp_path, "charge,3.50,kwd,2024-03-05 01:00:00,txn_9", header=header)
    _, rows = parse(path)
    # KWD has three decimals; without source_id the balance transaction keys the row.
    assert (rows[0]["order_id"], rows[0]["amount"], rows[0]["fee"]) == ("txn_9", 3500, None)


def test_a_report_with_only_its_header(tmp_path: Path) -> None:
    parser, rows = parse(write(tmp_path))
    assert rows == [] and parser.footer is not None and parser.footer.counted["rows"] == 0


@pytest.mark.parametrize(
    ("gross", "currency", "match"),
    [
        ("10,00", "usd", "not an amount"),  # a report run with decimal_separator=","
        ("1000.5", "jpy", "more than 0 decimals"),
        ("1.001", "usd", "more than 2 decimals"),
        ("", "usd", "missing amount"),
    ],
)
def test_bad_amounts_are_money_errors_naming_line_and_field(
    tmp_path: Path, gross: str, currency: str, match: str
) -> None:
    good = "txn_1,2024-03-05 01:00:00,usd,1.00,0.00,1.00,charge,ch_1"
    bad = f'txn_2,2024-03-05 01:00:00,{currency},"{gross}",0,0,charge,ch_2'
    error = BillFormatError if match == "missing amount" else MoneyError
    with pytest.raises(error, match=match) as caught:
        parse(write(tmp_path, good, bad))
    location = caught.value.location
    assert location is not None and (location.line, location.field) == (3, "gross")


@pytest.mark.parametrize(
    ("line", "field", "match"),
    [
        ("txn_2,2024-03-05 01:00:00,usd,-1.00,0,-1,charge,ch_2", "gross", "negative charge"),
        ("txn_2,2024-03-05 01:00:00,usd,1.00,0,1,refund,re_2", "gross", "positive refund"),
        ("txn_2,2024-02-30 01:00:00,usd,1.00,0,1,charge,ch_2", "created_utc", "UTC time"),
        ("txn_2,2024-03-05 01:00:00,dollars,1.00,0,1,charge,ch_2", "currency", "ISO 4217"),
        ("txn_2,2024-03-05 01:00:00,usd,1.00,0,1,,ch_2", "reporting_category", "missing"),
    ],
)
def test_bad_rows_name_line_and_field(tmp_path: Path, line: str, field: str, match: str) -> None:
    with pytest.raises(BillFormatError, match=match) as caught:
        parse(write(tmp_path, line))
    location = caught.value.location
    assert location is not None and (location.line, location.field) == (2, field)


def test_missing_columns_and_empty_files(tmp_path: Path) -> None:
    path = write(
        tmp_path, header="balance_transaction_id,created,currency,gross,reporting_category"
    )
    with pytest.raises(BillFormatError, match="no created_utc column") as caught:
        parse(path)
    assert caught.value.location is not None and caught.value.location.line == 1
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(BillTruncatedError, match="no header"):
        parse(empty)
