"""AlipayBillParser on the real 2019 业务明细 sample, as Alipay serves it (GBK in a zip)."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from payrecon.bills.alipay import AlipayBillParser
from payrecon.core.schema import CANONICAL
from payrecon.errors import BillFooterMismatch, BillFormatError, BillTruncatedError, ConfigError

SAMPLE = (
    Path(__file__).parents[2]
    / "fixtures/bills/alipay/trade_business_detail_2019_utf8_from_java_literal.csv"
)
DETAIL_NAME = "20880211096256330156_20190916_业务明细.csv"
SUMMARY_NAME = "20880211096256330156_20190916_业务明细(汇总).csv"
SUMMARY = (
    "#支付宝业务汇总查询\n#账号：[20880211096256330156]\n"
    "#-----------------------------------------业务汇总列表----------------------------------------\n"
    "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）\n"
    "合计,,6,4,0.02,0.02\n"
    "#----------------------------------------业务汇总列表结束-------------------------------------\n"
)
FOOTER = {"pay_count": 6, "paid": 6, "refund_count": 4, "refund": 4}


class _GbkNamedEntry(zipfile.ZipInfo):
    """Writes the entry name as GBK bytes without the UTF-8 flag, as Alipay's zips do."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # zipfile's own hook
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def sample_text() -> str:
    return SAMPLE.read_text(encoding="utf-8")


def write_zip(path: Path, entries: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in entries.items():
            info = _GbkNamedEntry(name, date_time=(2019, 9, 17, 5, 46, 49))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("gbk"))
    return path


def alipay_zip(tmp_path: Path, detail: str | None = None) -> Path:
    entries = {SUMMARY_NAME: SUMMARY, DETAIL_NAME: sample_text() if detail is None else detail}
    return write_zip(tmp_path / "20880211096256330156_20190916.csv.zip", entries)


def parse(path: Path, **kwargs: Any) -> tuple[AlipayBillParser, pa.Table]:
    parser = AlipayBillParser(path, **kwargs)
    table = pa.Table.from_batches(list(parser.batches()), schema=CANONICAL)
    return parser, table


def write_csv(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "bill.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# --------------------------------------------------------------------------- happy paths


def test_zip_entry_names_are_gbk_without_the_utf8_flag(tmp_path: Path) -> None:
    path = alipay_zip(tmp_path)
    assert DETAIL_NAME.encode("gbk") in path.read_bytes()
    with zipfile.ZipFile(path) as archive:  # the default reading gets mojibake
        assert all(not info.flag_bits & 0x800 for info in archive.infolist())
        assert DETAIL_NAME not in archive.namelist()


def test_zip_parses_the_detail_file(tmp_path: Path) -> None:
    path = alipay_zip(tmp_path)
    parser, table = parse(path)
    assert table.schema == CANONICAL
    assert table.num_rows == 10
    rows = table.to_pylist()
    assert [row["kind"] for row in rows].count("PAY") == 6
    assert [row["kind"] for row in rows].count("REFUND") == 4
    assert {row["amount"] for row in rows} == {1}
    assert {row["source"] for row in rows} == {f"{path}!{DETAIL_NAME}"}
    assert [row["line_no"] for row in rows] == list(range(6, 16))
    assert parser.footer is not None
    assert parser.footer.status == "ok"
    assert parser.footer.declared == FOOTER == parser.footer.counted


def test_payment_row(tmp_path: Path) -> None:
    _, table = parse(alipay_zip(tmp_path))
    assert table.to_pylist()[0] == {
        "channel": "alipay",
        "merchant_id": "20880211096256330156",
        "kind": "PAY",
        "order_id": "service_1568601259302",
        "origin_order_id": None,
        "channel_txn_id": "2019091622001458860515315453",
        "status": "SUCCESS",
        "amount": 1,
        "order_amount": 1,
        "coupon_amount": None,
        "fee": 0,
        "currency": "CNY",
        # 完成时间 2019-09-16 10:55:23 in Beijing
        "txn_time": datetime(2019, 9, 16, 2, 55, 23, tzinfo=UTC),
        "bill_date": date(2019, 9, 16),
        "source": f"{tmp_path / '20880211096256330156_20190916.csv.zip'}!{DETAIL_NAME}",
        "line_no": 6,
    }


def test_refunds_are_keyed_by_their_request_number(tmp_path: Path) -> None:
    _, table = parse(alipay_zip(tmp_path))
    refunds = [row for row in table.to_pylist() if row["kind"] == "REFUND"]
    assert [row["order_id"] for row in refunds] == [
        "re_test_1568602607356",
        "re_test_1568604414433",
        "re_test_1568614511552",
        "re_20190916150216125q8Lmiodp",
    ]
    first = refunds[0]
    assert first["origin_order_id"] == "service_1568601259302"
    assert first["channel_txn_id"] == "2019091622001458860515315453"
    assert (first["amount"], first["order_amount"]) == (1, 1)  # written -0.01
    assert first["txn_time"] == datetime(2019, 9, 16, 2, 56, 48, tzinfo=UTC)
    assert first["line_no"] == 7


def test_tabs_are_stripped(tmp_path: Path) -> None:
    _, table = parse(alipay_zip(tmp_path))
    for row in table.to_pylist():
        assert not any(isinstance(value, str) and "\t" in value for value in row.values())


def test_bare_utf8_csv(tmp_path: Path) -> None:
    parser, table = parse(SAMPLE)
    assert table.num_rows == 10
    assert table.column("source").unique().to_pylist() == [str(SAMPLE)]
    assert parser.footer is not None and parser.footer.declared == FOOTER


def test_bare_utf8_csv_with_bom(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "\ufeff" + sample_text())
    _, table = parse(path)
    assert table.num_rows == 10
    assert table.column("merchant_id")[0].as_py() == "20880211096256330156"


def test_bare_gbk_csv_with_crlf(tmp_path: Path) -> None:
    path = write_csv(tmp_path, sample_text().replace("\n", "\r\n"), "gbk")
    _, expected = parse(SAMPLE)
    parser, table = parse(path)
    assert table.drop_columns(["source"]).equals(expected.drop_columns(["source"]))
    assert parser.footer is not None and parser.footer.counted == FOOTER


def test_detail_entry_is_found_by_its_title_not_its_name(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "bill.zip", {"b.csv": sample_text(), "a_业务明细.csv": SUMMARY})
    parser, table = parse(path)
    assert table.num_rows == 10
    assert parser.source == f"{path}!b.csv"


def test_progress_adds_up_to_the_zip_size(tmp_path: Path) -> None:
    path = alipay_zip(tmp_path)
    seen: list[int] = []
    parse(path, on_progress=seen.append)
    assert sum(seen) == path.stat().st_size
    assert all(step > 0 for step in seen)


def test_short_header_and_other_footer_wording(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "#支付宝业务明细查询",
            "#账号：[20880000000000010156]",
            "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,"
            "操作员,终端号,对方账户,订单金额(元),商家实收(元)",
            "2026092422001\t,pay_1\t,交易,T,2026-09-24 10:00:00,2026-09-24 23:59:59,,,,,a,"
            "9.90,9.90",
            "",
            "2026092422002\t,pay_2\t,交易,T,2026-09-24 11:00:00,2026-09-25 00:00:01,,,,,a,"
            "1.00,0.10",
            "#-----------------------------------------业务明细列表结束------------------------------",
            "#交易合计：2笔，交易金额共10.00元，优惠金额共0.00元",
            "#退款合计：0笔，交易退款金额共0.00元，优惠退款金额共0.00元",
            "",
        ]
    )
    parser, table = parse(write_csv(tmp_path, text))
    rows = table.to_pylist()
    assert [row["amount"] for row in rows] == [990, 10]
    assert [row["order_amount"] for row in rows] == [990, 100]
    assert [row["fee"] for row in rows] == [None, None]
    assert [row["line_no"] for row in rows] == [4, 6]  # the blank line 5 is skipped
    assert [row["bill_date"] for row in rows] == [date(2026, 9, 24), date(2026, 9, 25)]
    assert parser.footer is not None
    assert parser.footer.declared == {"pay_count": 2, "paid": 1000, "refund_count": 0, "refund": 0}


def test_fee_is_in_thousandths_of_a_fen(tmp_path: Path) -> None:
    text = replace_once(
        sample_text(), "re_test_1568602607356\t,0.00", "re_test_1568602607356\t,-0.00006"
    )
    _, table = parse(write_csv(tmp_path, text))
    assert table.column("fee").to_pylist()[:2] == [0, -6]


def test_a_bill_without_rows(tmp_path: Path) -> None:
    lines = sample_text().split("\n")
    text = "\n".join(lines[:5] + lines[15:])
    text = replace_once(text, "6笔，商家实收共0.06元", "0笔，商家实收共0.00元")
    text = replace_once(text, "4笔，商家实收退款共-0.04元", "0笔，商家实收退款共0.00元")
    parser, table = parse(write_csv(tmp_path, text))
    assert table.num_rows == 0
    assert parser.footer is not None and parser.footer.counted["pay_count"] == 0


# --------------------------------------------------------------------------- errors


def test_footer_mismatch_states_both_figures(tmp_path: Path) -> None:
    text = replace_once(
        sample_text(), "#交易合计：6笔，商家实收共0.06元", "#交易合计：6笔，商家实收共0.07元"
    )
    with pytest.raises(BillFooterMismatch) as caught:
        parse(alipay_zip(tmp_path, text))
    message = str(caught.value)
    assert "6 payments of 0.07 yuan" in message
    assert "6 payments of 0.06 yuan" in message
    assert caught.value.location is not None and caught.value.location.line == 17


def test_refund_count_mismatch(tmp_path: Path) -> None:
    text = replace_once(sample_text(), "#退款合计：4笔", "#退款合计：5笔")
    with pytest.raises(BillFooterMismatch, match=r"5 refunds of 0\.04 yuan"):
        parse(write_csv(tmp_path, text))


def test_truncated_without_footer(tmp_path: Path) -> None:
    text = "\n".join(sample_text().split("\n")[:15]) + "\n"
    with pytest.raises(BillTruncatedError, match="业务明细列表结束"):
        parse(alipay_zip(tmp_path, text))


def test_truncated_in_the_footer(tmp_path: Path) -> None:
    text = "\n".join(sample_text().split("\n")[:17]) + "\n"
    with pytest.raises(BillTruncatedError, match="退款合计"):
        parse(write_csv(tmp_path, text))


def test_truncated_before_the_header(tmp_path: Path) -> None:
    text = "\n".join(sample_text().split("\n")[:3]) + "\n"
    with pytest.raises(BillTruncatedError, match="header"):
        parse(write_csv(tmp_path, text))


def test_bad_amount_names_line_and_field(tmp_path: Path) -> None:
    lines = sample_text().split("\n")
    lines[7] = replace_once(lines[7], "0.01,0.01", "0.01,0.0x")
    with pytest.raises(BillFormatError) as caught:
        parse(alipay_zip(tmp_path, "\n".join(lines)))
    assert caught.value.location is not None
    assert caught.value.location.line == 8
    assert caught.value.location.field == "商家实收（元）"
    assert caught.value.location.source.endswith(f"!{DETAIL_NAME}")
    assert "'0.0x'" in str(caught.value)


def test_amount_with_too_many_decimals(tmp_path: Path) -> None:
    lines = sample_text().split("\n")
    lines[5] = replace_once(lines[5], "0.01,0.01", "0.001,0.01")
    with pytest.raises(BillFormatError, match="line 6, field '订单金额（元）'"):
        parse(write_csv(tmp_path, "\n".join(lines)))


def test_unknown_business_type_is_an_error(tmp_path: Path) -> None:
    lines = sample_text().split("\n")
    lines[9] = replace_once(lines[9], ",交易\t,", ",充值\t,")
    with pytest.raises(BillFormatError, match=r"line 10, field '业务类型'.*'充值'"):
        parse(write_csv(tmp_path, "\n".join(lines)))


def test_negative_payment_is_an_error(tmp_path: Path) -> None:
    lines = sample_text().split("\n")
    lines[5] = replace_once(lines[5], "0.01,0.01", "0.01,-0.01")
    with pytest.raises(BillFormatError, match="line 6, field '商家实收（元）'"):
        parse(write_csv(tmp_path, "\n".join(lines)))


def test_refund_without_request_number(tmp_path: Path) -> None:
    lines = sample_text().split("\n")
    lines[6] = replace_once(lines[6], "re_test_1568602607356\t", "\t")
    with pytest.raises(BillFormatError, match="line 7, field '退款批次号/请求号'"):
        parse(write_csv(tmp_path, "\n".join(lines)))


def test_bad_time_names_line_and_field(tmp_path: Path) -> None:
    lines = sample_text().split("\n")
    lines[5] = replace_once(lines[5], "2019-09-16 10:55:23", "2019/09/16 10:55:23")
    with pytest.raises(BillFormatError, match="line 6, field '完成时间'"):
        parse(write_csv(tmp_path, "\n".join(lines)))


def test_row_with_missing_fields(tmp_path: Path) -> None:
    lines = sample_text().split("\n")
    lines[10] = lines[10].rsplit(",", 2)[0]
    with pytest.raises(BillFormatError, match="line 11: expected 25 fields, found 23"):
        parse(write_csv(tmp_path, "\n".join(lines)))


def test_missing_required_column(tmp_path: Path) -> None:
    text = replace_once(sample_text(), ",完成时间,", ",结束时间,")
    with pytest.raises(BillFormatError, match="line 5, field '完成时间'"):
        parse(write_csv(tmp_path, text))


def test_account_bill_is_refused(tmp_path: Path) -> None:
    text = replace_once(sample_text(), "#支付宝业务明细查询", "#支付宝账务明细查询")
    with pytest.raises(BillFormatError, match="账务明细"):
        parse(write_csv(tmp_path, text))


def test_zip_without_a_detail_file(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "bill.zip", {SUMMARY_NAME: SUMMARY})
    with pytest.raises(BillFormatError, match="no 业务明细 file"):
        parse(path)


def test_invalid_gbk_names_the_line(tmp_path: Path) -> None:
    data = sample_text().encode("gbk").replace(b"alipay_store", b"alipay\xff\xfftore", 1)
    path = tmp_path / "bill.csv"
    path.write_bytes(data)
    with pytest.raises(BillFormatError, match="line 6: not valid gb18030"):
        parse(path)


def test_unknown_timezone() -> None:
    with pytest.raises(ConfigError):
        AlipayBillParser(SAMPLE, timezone="Mars/Olympus")


def test_damaged_zip_entry(tmp_path: Path) -> None:
    path = alipay_zip(tmp_path)
    data = bytearray(path.read_bytes())
    start = data.index(DETAIL_NAME.encode("gbk")) + len(DETAIL_NAME.encode("gbk"))
    for offset in range(start + 200, start + 260):  # inside the compressed rows
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BillFormatError, match="damaged"):
        parse(path)
