"""AdyenBillParser: columns by name in any order, fees, time zones and the batch's zero sum."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from payrecon.bills.adyen import AdyenBillParser
from payrecon.bills.registry import bill_parser
from payrecon.config import Settings
from payrecon.core.schema import CANONICAL
from payrecon.errors import BillFooterMismatch, BillFormatError, MoneyError

FIXTURES = Path(__file__).parents[2] / "fixtures/bills/adyen"
REAL_238 = FIXTURES / "OCA_settlement_detail_report_batch_238.csv"  # verbatim, OCA
REORDERED_380 = FIXTURES / "settlement_detail_report_batch_380_reordered.csv"
# Adyen's own documentation row (FORMATS.md §6), in the batch 238 column order.
DOC_ROW = (
    "TestCompany,TestMerchant,1813702551707653,3vpzf7,visa,2013-06-03 11:26:49,CET,Settled,"
    "1713702551795048,GBP,,5.00,1,GBP,,4.88,,0.04,0.01,0.07,visaclassic,,,,,,,,,"
)


def parse(path: Path, **kwargs: Any) -> tuple[AdyenBillParser, list[dict[str, Any]]]:
    parser = AdyenBillParser(path, **kwargs)
    return parser, pa.Table.from_batches(list(parser.batches()), schema=CANONICAL).to_pylist()


def header_238() -> str:
    return REAL_238.read_text().splitlines()[0]


def write(folder: Path, *lines: str, header: str | None = None, name: str = "batch.csv") -> Path:
    path = folder / name
    path.write_text("\n".join([header or header_238(), *lines]) + "\n")
    return path


def reorder(source: Path, target: Path, order: list[int]) -> Path:
    """The same report with its columns (header and every row) in ``order``."""
    rows = list(csv.reader(io.StringIO(source.read_text())))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([[row[i] for i in order] for row in rows])
    target.write_text(out.getvalue())
    return target


def essentials(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    keys = ("kind", "order_id", "origin_order_id", "channel_txn_id", "amount", "fee", "txn_time")
    return [tuple(row[key] for key in keys) for row in rows]


# --------------------------------------------------------------------------- real files


def test_real_batch_238_has_no_orders_and_nets_to_zero() -> None:
    parser, rows = parse(REAL_238)
    assert rows == []
    assert parser.footer is not None and parser.footer.status == "ok"
    assert parser.footer.counted == {
        "rows": 3,
        "skipped:Balancetransfer": 2,
        "skipped:Fee": 1,
        "net:USD": 0,  # 454331.99 - 0.09 - 454331.90
    }


def test_documentation_row_fees_and_summer_time(tmp_path: Path) -> None:
    parser, rows = parse(write(tmp_path, DOC_ROW))
    (row,) = rows
    assert (row["kind"], row["order_id"], row["channel_txn_id"]) == (
        "PAY",
        "3vpzf7",
        "1813702551707653",
    )
    assert (row["amount"], row["currency"], row["merchant_id"]) == (500, "GBP", "TestMerchant")
    assert row["fee"] == 12_000  # Markup 0.04 + Scheme Fees 0.01 + Interchange 0.07
    assert row["txn_time"] == datetime(2013, 6, 3, 9, 26, 49, tzinfo=UTC)  # CET in June: +2
    assert parser.footer is not None and parser.footer.status == "none"  # no payout row


def test_registered() -> None:
    assert isinstance(bill_parser("adyen", REAL_238, Settings()), AdyenBillParser)


# --------------------------------------------------------------------------- column order


def test_reordered_batch_380() -> None:
    parser, rows = parse(REORDERED_380)
    assert essentials(rows) == [
        ("PAY", "S3001", None, "1813702551707653", 500, 12_000,
         datetime(2024, 3, 5, 2, 26, 49, tzinfo=UTC)),  # CET in March: +1
        ("PAY", "S3002", None, "8515131751004933", 123_456, 1_456_000,
         datetime(2024, 3, 5, 8, 15, tzinfo=UTC)),
        ("REFUND", "R4001", "S3001", "8825408195409505", 200, None,
         datetime(2024, 3, 5, 9, 0, tzinfo=UTC)),
        # no Modification Merchant Reference: keyed by the refund's PSP reference
        ("REFUND", "8825408195409999", "S3002", "8825408195409999", 3_456, 12_000,
         datetime(2024, 3, 5, 10, 0, tzinfo=UTC)),
    ]  # fmt: skip
    assert [row["line_no"] for row in rows] == [3, 4, 5, 6]
    assert {row["bill_date"] for row in rows} == {date(2024, 3, 5)}
    assert parser.footer is not None and parser.footer.status == "ok"
    assert parser.footer.counted["net:EUR"] == 0


def test_any_column_order_gives_the_same_records(tmp_path: Path) -> None:
    width = len(REORDERED_380.read_text().splitlines()[0].split(","))
    shuffled = [(index * 7) % width for index in range(width)]  # 7 is coprime with 32
    assert sorted(shuffled) == list(range(width)) and shuffled != list(range(width))
    _, expected = parse(REORDERED_380)
    _, rows = parse(reorder(REORDERED_380, tmp_path / "shuffled.csv", shuffled))
    assert essentials(rows) == essentials(expected)
    _, reversed_rows = parse(reorder(REORDERED_380, tmp_path / "reversed.csv", shuffled[::-1]))
    assert essentials(reversed_rows) == essentials(expected)


def test_aggregate_report_summary_lines_are_skipped(tmp_path: Path) -> None:
    summary = "Merchant/Company,Start date,End date,Aggregation,Country codes\nTestMerchant,,,,"
    path = tmp_path / "aggregate.csv"
    path.write_text(f"{summary}\n{header_238()}\n{DOC_ROW}\n")
    _, rows = parse(path)
    assert [row["line_no"] for row in rows] == [4]


# --------------------------------------------------------------------------- the check


def test_a_payout_that_does_not_match_the_rows(tmp_path: Path) -> None:
    text = REORDERED_380.read_text().replace(",EUR,1288.11,", ",EUR,1288.12,")
    path = tmp_path / "batch.csv"
    path.write_text(text)
    with pytest.raises(BillFooterMismatch, match=r"add up to -0\.01 EUR, not 0"):
        parse(path)


def test_fee_is_null_when_net_and_gross_currencies_differ(tmp_path: Path) -> None:
    row = DOC_ROW.replace("GBP,,5.00,1,GBP,,4.88", "USD,,6.25,0.8,GBP,,4.88")
    _, rows = parse(write(tmp_path, row))
    assert (rows[0]["amount"], rows[0]["currency"], rows[0]["fee"]) == (625, "USD", None)


def test_zero_decimal_currency(tmp_path: Path) -> None:
    row = DOC_ROW.replace("GBP,,5.00,1,GBP,,4.88,,0.04,0.01,0.07", "JPY,,1000,1,JPY,,980,20,,,")
    _, rows = parse(write(tmp_path, row))
    assert (rows[0]["amount"], rows[0]["fee"]) == (1000, 20_000)


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("old", "new", "field", "match"),
    [
        ("GBP,,5.00,", "GBP,,5.0.0,", "Gross Credit (GC)", "not an amount"),
        ("GBP,,5.00,", "GBP,,5.001,", "Gross Credit (GC)", "more than 2 decimals"),
        (",0.04,", ",4 cents,", "Markup (NC)", "not an amount"),
        ("GBP,,4.88", "GBP,,4.88.1", "Net Credit (NC)", "not an amount"),
    ],
)
def test_bad_amounts_are_money_errors_naming_line_and_field(
    tmp_path: Path, old: str, new: str, field: str, match: str
) -> None:
    with pytest.raises(MoneyError, match=match) as caught:
        parse(write(tmp_path, DOC_ROW, DOC_ROW.replace(old, new)))
    place = caught.value.location
    assert place is not None and (place.line, place.field) == (3, field)


@pytest.mark.parametrize(
    ("old", "new", "field", "match"),
    [
        ("GBP,,5.00,", "GBP,,,", "Gross Credit (GC)", "Settled row without"),
        ("GBP,,5.00,", "GBP,1.00,5.00,", "Gross Debit (GC)", "both gross"),
        (",CET,", ",Mars/Olympus,", "TimeZone", "not a time zone"),
        ("2013-06-03 11:26:49", "2013-06-31 11:26:49", "Creation Date", "not a time"),
        (",GBP,,5.00,1,", ",POUNDS,,5.00,1,", "Gross Currency", "ISO 4217"),
    ],
)
def test_bad_rows_name_line_and_field(
    tmp_path: Path, old: str, new: str, field: str, match: str
) -> None:
    with pytest.raises(BillFormatError, match=match) as caught:
        parse(write(tmp_path, DOC_ROW, DOC_ROW.replace(old, new)))
    place = caught.value.location
    assert place is not None and (place.line, place.field) == (3, field)


def test_a_header_without_a_required_column(tmp_path: Path) -> None:
    header = header_238().replace("Psp Reference", "PSP")
    with pytest.raises(BillFormatError, match="no 'Psp Reference' column") as caught:
        parse(write(tmp_path, DOC_ROW, header=header))
    assert caught.value.location is not None and caught.value.location.line == 1
