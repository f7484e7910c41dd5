"""UnionpayBillParser: the GBK fixed-width ZM file, its year rule and every failure mode."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from payrecon.bills.registry import bill_parser
from payrecon.bills.unionpay import UnionpayBillParser
from payrecon.config import Settings
from payrecon.core.schema import CANONICAL
from payrecon.errors import BillFormatError, MoneyError

FIXTURE = Path(__file__).parents[2] / "fixtures/bills/unionpay/INN24030501ZM_777290058138766.txt"
NAME = "INN24030501ZM_777290058138766.txt"
# The ACP SDK's length array (FORMATS.md §3), written out here independently of the parser.
WIDTHS = [3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4,
          32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98]  # fmt: skip
# Field number (1-based, as in FORMATS.md) of the fields a test sets.
CODE, TIME, AMOUNT, QUERY, ORDER, FEE, TXN_TYPE, ORIG_QUERY, MER, SUB = (
    1,
    5,
    7,
    10,
    12,
    16,
    20,
    27,
    28,
    31,
)
PAY = {
    CODE: "S22",
    TIME: "0305103012",
    AMOUNT: "000000010000",
    QUERY: "512403051030120001234",
    ORDER: "ORDER0001",
    FEE: "D000000000060",
    TXN_TYPE: "01",
    MER: "777290058138766",
}


def zm_record(values: dict[int, str]) -> bytes:
    """One ZM record: each field left-aligned in its width (bytes of GBK), one space apart."""
    fields = []
    for number, width in enumerate(WIDTHS, start=1):
        raw = values.get(number, "").encode("gbk")
        assert len(raw) <= width
        fields.append(raw.ljust(width))
    return b" ".join(fields)


def write_zm(folder: Path, records: list[dict[int, str]], name: str = NAME) -> Path:
    path = folder / name
    path.write_bytes(b"".join(zm_record(values) + b"\r\n" for values in records))
    return path


def parse(path: Path, **kwargs: Any) -> tuple[UnionpayBillParser, list[dict[str, Any]]]:
    parser = UnionpayBillParser(path, **kwargs)
    return parser, pa.Table.from_batches(list(parser.batches()), schema=CANONICAL).to_pylist()


# --------------------------------------------------------------------------- the fixture


def test_fixture_is_gbk_and_607_bytes_a_record() -> None:
    data = FIXTURE.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert "测试二级商户一号" in data.decode("gbk")
    assert {len(line) for line in data.split(b"\r\n") if line} == {607}


def test_fixture_records() -> None:
    parser, rows = parse(FIXTURE)
    assert [(r["kind"], r["order_id"], r["amount"], r["fee"]) for r in rows] == [
        ("PAY", "20240305ORDER0001", 10000, 60000),  # D000000000060: 0.60 yuan debited
        ("REFUND", "20240305REFUND001", 5000, -30000),  # C…030: 0.30 yuan credited back
        ("PAY", "20240305ORDER0002", 1, None),  # blank fee
    ]
    first, refund, last = rows
    assert first["channel_txn_id"] == "512403051030120001234"
    assert refund["channel_txn_id"] == "512403051530000004567"
    assert {r["merchant_id"] for r in rows} == {"777290058138766"}
    assert {r["currency"] for r in rows} == {"CNY"} and {r["status"] for r in rows} == {"SUCCESS"}
    assert refund["origin_order_id"] is None
    # 0305103012, Beijing time, year from the file name (INN240305…).
    assert first["txn_time"] == datetime(2024, 3, 5, 2, 30, 12, tzinfo=UTC)
    assert last["txn_time"] == datetime(2024, 3, 5, 15, 59, 59, tzinfo=UTC)
    assert {r["bill_date"] for r in rows} == {date(2024, 3, 5)}
    assert [r["line_no"] for r in rows] == [1, 2, 3]
    assert {r["source"] for r in rows} == {str(FIXTURE)}
    assert parser.footer is not None and parser.footer.status == "none"
    assert parser.footer.counted == {"rows": 3, "pays": 2, "refunds": 1}


def test_registry_and_cli_know_unionpay(capsys: pytest.CaptureFixture[str]) -> None:
    from payrecon.cli import main

    parser = bill_parser("unionpay", FIXTURE, Settings())
    assert isinstance(parser, UnionpayBillParser)
    assert main(["parse", "--channel", "unionpay", str(FIXTURE), "--summary-json"]) == 0
    assert '"rows": 3' in capsys.readouterr().out


# --------------------------------------------------------------------------- variants


def test_chinese_sub_merchant_names_do_not_shift_fields(tmp_path: Path) -> None:
    # A 32-byte field of Chinese is 16 characters: slicing characters would shift the rest.
    chinese = {**PAY, SUB: "南京西路店二级商户测试名称十六字"}
    _, rows = parse(write_zm(tmp_path, [chinese, PAY]))
    assert [r["order_id"] for r in rows] == ["ORDER0001", "ORDER0001"]
    assert rows[0]["merchant_id"] == "777290058138766"


@pytest.mark.parametrize(
    ("name", "transmitted", "expected"),
    [
        ("INN24010101ZM_777290058138766.txt", "1231235959", datetime(2023, 12, 31, 15, 59, 59)),
        ("INN23123101ZM_777290058138766.txt", "0101000001", datetime(2023, 12, 31, 16, 0, 1)),
        ("INN24061501ZM_777290058138766.txt", "0615120000", datetime(2024, 6, 15, 4, 0, 0)),
    ],
)
def test_year_comes_from_the_file_name(
    tmp_path: Path, name: str, transmitted: str, expected: datetime
) -> None:
    _, rows = parse(write_zm(tmp_path, [{**PAY, TIME: transmitted}], name))
    assert rows[0]["txn_time"] == expected.replace(tzinfo=UTC)


def test_refund_kinds_and_lf_line_endings(tmp_path: Path) -> None:
    records = [
        {**PAY, TXN_TYPE: code, ORDER: f"O{code}"} for code in ("01", "03", "04", "31", "33")
    ]
    path = tmp_path / NAME
    path.write_bytes(b"\n".join(zm_record(values) for values in records) + b"\n\n")
    _, rows = parse(path)
    assert [r["kind"] for r in rows] == ["PAY", "PAY", "REFUND", "REFUND", "REFUND"]
    assert [r["line_no"] for r in rows] == [1, 2, 3, 4, 5]


def test_zip_from_the_file_transfer_is_read(tmp_path: Path) -> None:
    archive = tmp_path / "fileContent.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("RD00000000000000000000000000001_777290058138766.txt", b"summary")
        out.writestr("INN24030501ZME_777290058138766.txt", b"")
        out.writestr(NAME, FIXTURE.read_bytes())
    _, rows = parse(archive)
    assert len(rows) == 3 and rows[0]["source"] == f"{archive}!{NAME}"


def test_empty_file_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_bytes(b"")
    parser, rows = parse(path)
    assert rows == [] and parser.footer is not None and parser.footer.counted["rows"] == 0


# --------------------------------------------------------------------------- failures


def test_a_file_name_without_the_date_is_refused(tmp_path: Path) -> None:
    path = write_zm(tmp_path, [PAY], "zm.txt")
    with pytest.raises(BillFormatError, match=r"INN<yyMMdd><nn>ZM_.*no year"):
        parse(path)


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        (AMOUNT, "00000001000A", "交易金额"),
        (AMOUNT, "1000", "交易金额"),
        (FEE, "X000000000060", "商户手续费"),
    ],
)
def test_bad_amounts_are_money_errors_naming_line_and_field(
    tmp_path: Path, field: int, value: str, label: str
) -> None:
    path = write_zm(tmp_path, [PAY, {**PAY, field: value}])
    with pytest.raises(MoneyError) as caught:
        parse(path)
    location = caught.value.location
    assert location is not None and (location.line, location.field) == (2, label)
    assert value in str(caught.value)


@pytest.mark.parametrize(
    ("values", "field", "match"),
    [
        ({**PAY, TXN_TYPE: "02"}, "交易类型", "txnType"),
        ({**PAY, TIME: "0230101010"}, "交易传输时间", "not a valid date"),
        ({**PAY, TIME: "03051030"}, "交易传输时间", "MMDDhhmmss"),
        ({**PAY, ORDER: ""}, "商户订单号", "missing"),
    ],
)
def test_bad_fields_name_line_and_field(
    tmp_path: Path, values: dict[int, str], field: str, match: str
) -> None:
    with pytest.raises(BillFormatError, match=match) as caught:
        parse(write_zm(tmp_path, [PAY, PAY, values]))
    location = caught.value.location
    assert location is not None and (location.line, location.field) == (3, field)


def test_shifted_and_short_records_name_their_line(tmp_path: Path) -> None:
    shifted = zm_record(PAY)[:50] + zm_record(PAY)[51:]  # one byte missing inside 账号
    path = tmp_path / NAME
    path.write_bytes(zm_record(PAY) + b"\r\n" + shifted + b"\r\n")
    with pytest.raises(BillFormatError, match="not where the ZM layout") as caught:
        parse(path)
    assert caught.value.location is not None and caught.value.location.line == 2
    path.write_bytes(zm_record(PAY) + b"\r\n" + zm_record(PAY)[:300] + b"\r\n")
    with pytest.raises(BillFormatError, match="shorter than") as caught:
        parse(path)
    assert caught.value.location is not None and caught.value.location.line == 2


def test_text_that_is_not_gbk_names_its_line(tmp_path: Path) -> None:
    bad = zm_record(PAY)[:-4] + b"\xff\xff\xff\xff"
    path = tmp_path / NAME
    path.write_bytes(zm_record(PAY) + b"\r\n" + bad + b"\r\n")
    with pytest.raises(BillFormatError, match="not valid GBK") as caught:
        parse(path)
    assert caught.value.location is not None and caught.value.location.line == 2
