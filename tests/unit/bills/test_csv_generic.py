"""CsvBillParser: a channel bill described only by configuration."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from payrecon.bills.csv_generic import CsvBillParser
from payrecon.config import CsvChannelSettings
from payrecon.core.schema import CANONICAL
from payrecon.errors import BillFormatError, ConfigError

MAJOR_BILL = """\
Acme Pay settlement report
generated 2026-11-21
Ref;Txn;Type;State;Amount (CNY);Fee;Paid at;Shop;Original;Ccy
A-1;T1;sale;ok;12.34;0.07400;2026/11/20 23:59;S1;;
A-2;T2;refund;ok;-2.00;-0.01200;2026/11/21 00:05;S1;A-1;CNY
A-3;T3;sale;CLOSED;5;;2026/11/20 08:00;S1;;HKD
"""

MAJOR = CsvChannelSettings(
    encoding="gbk",
    delimiter=";",
    skip_lines=2,
    time_format="%Y/%m/%d %H:%M",
    columns={
        "order_id": "Ref",
        "channel_txn_id": "Txn",
        "kind": "Type",
        "status": "State",
        "amount": "Amount (CNY)",
        "fee": "Fee",
        "txn_time": "Paid at",
        "merchant_id": "Shop",
        "origin_order_id": "Original",
        "currency": "Ccy",
    },
    status_map={"ok": "SUCCESS", "失败": "FAILED"},
    kind_map={"sale": "PAY", "refund": "REFUND"},
)

MINOR_BILL = (
    "order\tcents\tfee\twhen\n"
    "o1\t1234\t5\t2026-11-20T08:00:00+0000\n"
    "o2\t0\t\t2026-11-20T20:00:00+0000\n"
)

MINOR = CsvChannelSettings(
    delimiter="\t",
    amount_unit="minor",
    time_format="%Y-%m-%dT%H:%M:%S%z",
    columns={"order_id": "order", "amount": "cents", "fee": "fee", "txn_time": "when"},
)

SIMPLE = CsvChannelSettings(
    columns={"order_id": "order", "amount": "amount", "txn_time": "time", "kind": "kind"},
    status_map={},
)
SIMPLE_HEADER = "order,amount,time,kind\n"


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "bill.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def parse(
    path: Path, settings: CsvChannelSettings, **kwargs: Any
) -> tuple[CsvBillParser, list[dict[str, Any]]]:
    parser = CsvBillParser(path, settings, channel="acme", **kwargs)
    table = pa.Table.from_batches(list(parser.batches()), schema=CANONICAL)
    return parser, table.to_pylist()


def test_major_units_with_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, MAJOR_BILL, "gbk")
    parser, (first, refund, closed) = parse(path, MAJOR)
    assert first == {
        "channel": "acme",
        "merchant_id": "S1",
        "kind": "PAY",
        "order_id": "A-1",
        "origin_order_id": None,
        "channel_txn_id": "T1",
        "status": "SUCCESS",
        "amount": 1234,
        "order_amount": None,
        "coupon_amount": None,
        "fee": 7400,  # thousandths of a fen
        "currency": "CNY",  # empty cell: the configured currency
        "txn_time": datetime(2026, 11, 20, 15, 59, tzinfo=UTC),
        "bill_date": date(2026, 11, 20),
        "source": str(path),
        "line_no": 4,
    }
    assert refund["kind"] == "REFUND"
    assert (refund["amount"], refund["fee"]) == (200, -1200)
    assert refund["origin_order_id"] == "A-1"
    assert refund["bill_date"] == date(2026, 11, 21)
    assert (closed["status"], closed["amount"], closed["fee"]) == ("CLOSED", 500, None)
    assert closed["currency"] == "HKD"
    assert parser.footer is not None
    assert parser.footer.status == "none"
    assert parser.footer.counted == {"count": 3, "amount": 1934}


def test_minor_units_and_utc_offsets(tmp_path: Path) -> None:
    _, rows = parse(write(tmp_path, MINOR_BILL), MINOR)
    assert [row["amount"] for row in rows] == [1234, 0]
    assert [row["fee"] for row in rows] == [5000, None]
    assert [row["status"] for row in rows] == ["SUCCESS", "SUCCESS"]  # no status column
    assert [row["kind"] for row in rows] == ["PAY", "PAY"]  # no kind column
    assert rows[1]["txn_time"] == datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
    assert rows[1]["bill_date"] == date(2026, 11, 21)  # 04:00 in Shanghai
    assert [row["line_no"] for row in rows] == [2, 3]


def test_canonical_kinds_pass_without_a_map(tmp_path: Path) -> None:
    text = (
        SIMPLE_HEADER + "o1,1000.00,2026-11-20 10:00:00,PAY\no2,-1.00,2026-11-20 10:00:00,REFUND\n"
    )
    _, rows = parse(write(tmp_path, text), SIMPLE)
    assert [(row["kind"], row["amount"]) for row in rows] == [("PAY", 100000), ("REFUND", 100)]


def test_quoted_fields_and_gzip(tmp_path: Path) -> None:
    text = SIMPLE_HEADER + '"o,1",1.00,2026-11-20 10:00:00,PAY\n'
    path = tmp_path / "bill.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    _, rows = parse(path, SIMPLE)
    assert rows[0]["order_id"] == "o,1"


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress((SIMPLE_HEADER + "o1,1.00,2026-11-20 10:00:00,PAY\n" * 1000).encode())
    path = tmp_path / "bill.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BillFormatError, match="damaged"):
        parse(path, SIMPLE)


def test_progress_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, MAJOR_BILL, "gbk")
    seen: list[int] = []
    parse(path, MAJOR, on_progress=seen.append)
    assert sum(seen) == path.stat().st_size


def test_header_only(tmp_path: Path) -> None:
    parser, rows = parse(write(tmp_path, SIMPLE_HEADER), SIMPLE)
    assert rows == []
    assert parser.footer is not None and parser.footer.counted == {"count": 0, "amount": 0}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("old", "new", "field", "value"),
    [
        ("A-2;T2;refund;ok", "A-2;T2;refund;pending", "State", "pending"),
        ("A-2;T2;refund", "A-2;T2;chargeback", "Type", "chargeback"),
        ("-2.00", "-2.001", "Amount (CNY)", "-2.001"),
        ("-2.00", "", "Amount (CNY)", None),
        ("-0.01200", "-0.012001", "Fee", "-0.012001"),
        ("2026/11/21 00:05", "2026-11-21 00:05", "Paid at", "2026-11-21 00:05"),
        ("A-2;T2", ";T2", "Ref", None),
    ],
)
def test_bad_values_name_line_field_and_value(
    tmp_path: Path, old: str, new: str, field: str, value: str | None
) -> None:
    path = write(tmp_path, MAJOR_BILL.replace(old, new, 1), "gbk")
    with pytest.raises(BillFormatError) as caught:
        parse(path, MAJOR)
    location = caught.value.location
    assert location is not None
    assert (location.source, location.line, location.field) == (str(path), 5, field)
    if value is not None:
        assert repr(value) in str(caught.value)


def test_negative_payment_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, MAJOR_BILL.replace("12.34", "-12.34"), "gbk")
    with pytest.raises(BillFormatError, match=r"line 4, field 'Amount \(CNY\)'.*negative"):
        parse(path, MAJOR)


def test_minor_units_reject_decimals(tmp_path: Path) -> None:
    path = write(tmp_path, MINOR_BILL.replace("1234", "12.34"))
    with pytest.raises(BillFormatError, match=r"line 2, field 'cents'.*'12\.34'"):
        parse(path, MINOR)


def test_row_with_too_many_fields(tmp_path: Path) -> None:
    text = SIMPLE_HEADER + "o1,1.00,2026-11-20 10:00:00,PAY\no2,1.00,2026-11-20 10:00:00,PAY,x\n"
    with pytest.raises(BillFormatError, match="line 3: expected 4 fields, found 5"):
        parse(write(tmp_path, text), SIMPLE)


def test_missing_header_column(tmp_path: Path) -> None:
    path = write(tmp_path, MAJOR_BILL.replace(";Fee;", ";Charge;"), "gbk")
    with pytest.raises(BillFormatError, match=r"line 3, field 'Fee'.*mapped to fee"):
        parse(path, MAJOR)


def test_file_shorter_than_skip_lines(tmp_path: Path) -> None:
    with pytest.raises(BillFormatError, match="before its header row"):
        parse(write(tmp_path, "one line\n"), MAJOR)


def test_wrong_encoding_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, MAJOR_BILL.replace("S1;;\n", "店1;;\n", 1), "gbk")
    settings = MAJOR.model_copy(update={"encoding": "utf-8"})
    with pytest.raises(BillFormatError, match="line 4: not valid utf-8"):
        parse(path, settings)


@pytest.mark.parametrize(
    "update",
    [
        {"timezone": "Nowhere/City"},
        {"delimiter": ";;"},
        {"encoding": "no-such-codec"},
        {"columns": {**MAJOR.columns, "colour": "Colour"}},
    ],
)
def test_bad_settings(tmp_path: Path, update: dict[str, Any]) -> None:
    settings = MAJOR.model_copy(update=update)
    with pytest.raises(ConfigError):
        CsvBillParser(tmp_path / "bill.csv", settings, channel="acme")
