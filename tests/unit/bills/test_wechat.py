"""WeChat Pay trade bills: the real v3 samples, their variants and every failure mode."""

from __future__ import annotations

import gzip
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from payrecon.bills.wechat import WechatBillParser
from payrecon.core.schema import CANONICAL
from payrecon.errors import (
    BillFooterMismatch,
    BillFormatError,
    BillTruncatedError,
    ChannelErrorResponse,
    ConfigError,
    MoneyError,
)

SAMPLES = Path(__file__).parents[2] / "fixtures" / "bills" / "wechat"
ALL = SAMPLES / "v3_tradebill_ALL_gunsluo.csv"
SUCCESS = SAMPLES / "v3_tradebill_SUCCESS_gunsluo.csv"
REFUND = SAMPLES / "v3_tradebill_REFUND_gunsluo.csv"

HEADER_ALL = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
SUMMARY_ALL = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)
HEADER_LEGACY = (
    "交易时间,公众账号ID,商户号,子商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,总金额,企业红包金额,微信退款单号,商户退款单号,退款金额,"
    "企业红包退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率"
)
SUMMARY_LEGACY = "总交易单数,总交易额,总退款金额,总企业红包退款金额,手续费总金额"

PAY_ROW = {
    "交易时间": "2021-01-28 17:07:11",
    "公众账号ID": "wx81be3101902f7cb2",
    "商户号": "1601959334",
    "特约商户号": "0",
    "设备号": "",
    "微信订单号": "4200000925202101284997714292",
    "商户订单号": "S1",
    "用户标识": "ofyak5qR_1wYsC99CsWA6R9MJazA",
    "交易类型": "NATIVE",
    "交易状态": "SUCCESS",
    "付款银行": "OTHERS",
    "货币种类": "CNY",
    "应结订单金额": "123.45",
    "代金券金额": "0.00",
    "微信退款单号": "0",
    "商户退款单号": "0",
    "退款金额": "0.00",
    "充值券退款金额": "0.00",
    "退款类型": "",
    "退款状态": "",
    "商品名称": "测试商品",
    "商户数据包": "attach",
    "手续费": "0.74070",
    "费率": "0.60%",
    "订单金额": "123.45",
    "申请退款金额": "0.00",
    "费率备注": "",
}
REFUND_ROW = PAY_ROW | {
    "交易时间": "2021-01-28 18:00:00",
    "交易状态": "REFUND",
    "应结订单金额": "0.00",
    "微信退款单号": "50300807172021020106006664916",
    "商户退款单号": "R1",
    "退款金额": "260.00",
    "退款类型": "ORIGINAL",
    "退款状态": "SUCCESS",
    "手续费": "-1.56000",
    "订单金额": "0.00",
    "申请退款金额": "260.00",
}


def bill_line(values: list[str]) -> str:
    return ",".join("`" + value for value in values)


def build_bill(
    rows: list[dict[str, str]],
    *,
    header: str = HEADER_ALL,
    summary_header: str = SUMMARY_ALL,
    summary: list[str] | None = None,
) -> str:
    """A bill text with the summary row computed from the rows unless given."""
    names = header.split(",")
    lines = [header, *(bill_line([row.get(name, "") for name in names]) for row in rows)]
    if summary is None:
        summary = _summary_for(rows, summary_header)
    return "\n".join([*lines, summary_header, bill_line(summary)]) + "\n"


def _summary_for(rows: list[dict[str, str]], summary_header: str) -> list[str]:
    def total(name: str, places: str = "0.01") -> str:
        value = sum((Decimal(row.get(name, "0") or "0") for row in rows), Decimal(0))
        return str(value.quantize(Decimal(places)))

    by_name = {
        "总交易单数": str(len(rows)),
        "应结订单总金额": total("应结订单金额"),
        "总交易额": total("应结订单金额"),
        "退款总金额": total("退款金额"),
        "总退款金额": total("退款金额"),
        "手续费总金额": total("手续费", "0.00001"),
        "订单总金额": total("订单金额"),
        "申请退款总金额": total("申请退款金额"),
    }
    return [by_name.get(name, "0.00") for name in summary_header.split(",")]


def write(tmp_path: Path, text: str | bytes, name: str = "bill.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def parse(path: Path, **options: Any) -> tuple[list[dict[str, Any]], WechatBillParser]:
    block_size = options.pop("block_size", None)
    parser = WechatBillParser(path, **options)
    if block_size:
        parser.block_size = block_size
    batches = list(parser.batches())
    for batch in batches:
        assert batch.schema == CANONICAL
    return pa.Table.from_batches(batches, CANONICAL).to_pylist(), parser


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- real samples


def test_all_sample() -> None:
    rows, parser = parse(ALL)
    assert parser.bill_type == "ALL"
    assert [row["order_id"] for row in rows] == [
        "S20210128170702357723",
        "S20210128153505214586",
        "S20210128165824499930",
    ]
    first = rows[0]
    assert first == {
        "channel": "wechat",
        "merchant_id": "1601959334",
        "kind": "PAY",
        "order_id": "S20210128170702357723",
        "origin_order_id": None,
        "channel_txn_id": "4200000925202101284997714292",
        "status": "SUCCESS",
        "amount": 1,
        "order_amount": 1,
        "coupon_amount": 0,
        "fee": 0,
        "currency": "CNY",
        "txn_time": utc("2021-01-28 09:07:11"),
        "bill_date": date(2021, 1, 28),
        "source": str(ALL),
        "line_no": 2,
    }
    assert [row["line_no"] for row in rows] == [2, 3, 4]
    assert parser.footer is not None and parser.footer.status == "ok"
    assert parser.footer.declared == {"count": 3, "paid": 3, "refund": 0, "fee": 0}
    assert parser.footer.counted == parser.footer.declared


def test_success_sample() -> None:
    rows, parser = parse(SUCCESS)
    assert parser.bill_type == "SUCCESS"
    assert len(rows) == 1
    assert rows[0]["kind"] == "PAY" and rows[0]["amount"] == 1 and rows[0]["order_amount"] == 1
    assert rows[0]["txn_time"] == utc("2021-02-01 06:38:45")
    assert parser.footer is not None
    assert parser.footer.declared == {"count": 1, "paid": 1, "refund": 0, "fee": 0}


def test_refund_sample_is_dated_by_refund_success_time() -> None:
    rows, parser = parse(REFUND)
    assert parser.bill_type == "REFUND"
    first, second = rows
    assert first["kind"] == "REFUND" and first["status"] == "SUCCESS"
    assert first["order_id"] == "S20210201143320649393"  # 商户退款单号
    assert first["origin_order_id"] == "S20210124161554311546"  # 商户订单号
    assert first["channel_txn_id"] == "50300807172021020106006664916"  # 微信退款单号
    assert first["amount"] == 1
    assert first["order_amount"] is None and first["coupon_amount"] is None
    # 交易时间 is the payment (2021-01-24); 退款成功时间 is 2021-02-01 14:33:24 Beijing.
    assert first["txn_time"] == utc("2021-02-01 06:33:24")
    assert first["bill_date"] == date(2021, 2, 1)
    assert second["txn_time"] == utc("2021-02-01 06:00:50")
    assert parser.footer is not None
    assert parser.footer.declared == {"count": 2, "paid": 0, "refund": 2, "fee": 0}


def test_refund_bill_falls_back_to_refund_request_time(tmp_path: Path) -> None:
    text = REFUND.read_text().replace("`2021-02-01 14:33:24,", "`,")
    rows, _ = parse(write(tmp_path, text))
    assert rows[0]["txn_time"] == utc("2021-02-01 06:33:21")  # 退款申请时间


# ---------------------------------------------------------------------------- file variants


def test_bom_and_crlf(tmp_path: Path) -> None:
    text = "\ufeff" + ALL.read_text().replace("\n", "\r\n")
    path = write(tmp_path, text)
    rows, parser = parse(path)
    assert rows == [row | {"source": str(path)} for row in parse(ALL)[0]]  # no \r left
    assert parser.footer is not None and parser.footer.status == "ok"


def test_gzip(tmp_path: Path) -> None:
    path = write(tmp_path, gzip.compress(ALL.read_bytes()), "bill.csv.gz")
    rows, parser = parse(path)
    expected = [row | {"source": str(path)} for row in parse(ALL)[0]]
    assert rows == expected
    assert parser.footer is not None and parser.footer.status == "ok"


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(ALL.read_bytes())
    with pytest.raises(BillTruncatedError):
        parse(write(tmp_path, data[: len(data) // 2], "bill.csv.gz"))


def test_no_trailing_newline(tmp_path: Path) -> None:
    rows, parser = parse(write(tmp_path, ALL.read_text().rstrip("\n")))
    assert len(rows) == 3 and parser.footer is not None


def test_backticks(tmp_path: Path) -> None:
    pay = PAY_ROW | {"商户订单号": "`S1", "特约商户号": ""}  # written ``S1 and a lone `
    text = build_bill([pay]).replace("`123.45,`0.00", "123.45,`0.00", 1)  # no tick: kept
    rows, _ = parse(write(tmp_path, text))
    (row,) = rows
    assert row["order_id"] == "`S1"  # only one backtick is stripped
    assert row["merchant_id"] == "1601959334"  # empty 特约商户号 falls back to 商户号
    assert row["amount"] == 12345


def test_partner_mode_merchant(tmp_path: Path) -> None:
    rows, _ = parse(write(tmp_path, build_bill([PAY_ROW | {"特约商户号": "1900000109"}])))
    assert rows[0]["merchant_id"] == "1900000109"


def test_amounts_fees_and_statuses(tmp_path: Path) -> None:
    revoked = PAY_ROW | {"商户订单号": "S2", "交易状态": "REVOKED"}
    coupon = PAY_ROW | {"商户订单号": "S3", "代金券金额": "1.00", "订单金额": "124.45"}
    closed = REFUND_ROW | {"商户退款单号": "R2", "退款状态": "REFUNDCLOSE"}
    odd = REFUND_ROW | {"商户退款单号": "R3", "退款状态": "SOMETHING_NEW"}
    bill = build_bill([PAY_ROW, REFUND_ROW, revoked, coupon, closed, odd])
    rows, parser = parse(write(tmp_path, bill))
    by_id = {row["order_id"]: row for row in rows}
    assert by_id["S1"]["fee"] == 74070 and by_id["S1"]["amount"] == 12345
    refund = by_id["R1"]
    assert (refund["kind"], refund["amount"], refund["fee"]) == ("REFUND", 26000, -156000)
    assert refund["origin_order_id"] == "S1"
    assert by_id["S2"]["status"] == "REVOKED" and by_id["S2"]["kind"] == "PAY"
    assert (by_id["S3"]["order_amount"], by_id["S3"]["coupon_amount"]) == (12445, 100)
    assert by_id["R2"]["status"] == "CLOSED"
    assert by_id["R3"]["status"] == "PROCESSING"  # unknown refund status: not final
    assert parser.footer is not None
    assert parser.footer.counted == {
        "count": 6,
        "paid": 3 * 12345,
        "refund": 3 * 26000,
        "fee": 3 * 74070 - 3 * 156000,
    }


@pytest.mark.parametrize(
    ("written", "status"),
    [
        ("SUCCESS", "SUCCESS"),
        ("PROCESSING", "PROCESSING"),
        ("CLOSED", "CLOSED"),
        ("CHANGE", "FAILED"),
        ("ABNORMAL", "FAILED"),
        ("", "PROCESSING"),
    ],
)
def test_refund_status_mapping(tmp_path: Path, written: str, status: str) -> None:
    rows, _ = parse(write(tmp_path, build_bill([REFUND_ROW | {"退款状态": written}])))
    assert rows[0]["status"] == status


def legacy(row: dict[str, str]) -> dict[str, str]:
    """A current-layout row under the legacy column names."""
    renamed = {"应结订单金额": "总金额", "代金券金额": "企业红包金额", "特约商户号": "子商户号"}
    return {renamed.get(name, name): value for name, value in row.items()}


def test_legacy_all_layout(tmp_path: Path) -> None:
    text = build_bill(
        [legacy(PAY_ROW), legacy(REFUND_ROW)],
        header=HEADER_LEGACY,
        summary_header=SUMMARY_LEGACY,
        summary=["2", "123.45", "260.00", "0.00", "-0.81930"],
    )
    rows, parser = parse(write(tmp_path, text))
    assert parser.bill_type == "ALL"
    pay, refund = rows
    assert (pay["amount"], pay["coupon_amount"], pay["order_amount"]) == (12345, 0, None)
    assert (refund["kind"], refund["amount"], refund["order_id"]) == ("REFUND", 26000, "R1")
    assert parser.footer is not None
    assert parser.footer.declared == {"count": 2, "paid": 12345, "refund": 26000, "fee": -81930}


def test_legacy_sub_merchant_and_coupon(tmp_path: Path) -> None:
    row = legacy(PAY_ROW) | {"子商户号": "1900000109", "总金额": "1.00", "企业红包金额": "0.50"}
    text = build_bill(
        [row],
        header=HEADER_LEGACY,
        summary_header=SUMMARY_LEGACY,
        summary=["1", "1.00", "0.00", "0.00", "0.74070"],
    )
    rows, _ = parse(write(tmp_path, text))
    assert rows[0]["merchant_id"] == "1900000109"
    assert (rows[0]["amount"], rows[0]["coupon_amount"]) == (100, 50)


def test_columns_in_another_order(tmp_path: Path) -> None:
    names = list(reversed(HEADER_ALL.split(",")))
    lines = [",".join(names)]
    lines += [bill_line([row[name] for name in names]) for row in (PAY_ROW, REFUND_ROW)]
    summary = _summary_for([PAY_ROW, REFUND_ROW], SUMMARY_ALL)
    text = "\n".join([*lines, SUMMARY_ALL, bill_line(summary)]) + "\n"
    rows, _ = parse(write(tmp_path, text))
    assert [(row["order_id"], row["amount"]) for row in rows] == [("S1", 12345), ("R1", 26000)]


def test_success_bill_with_four_column_summary(tmp_path: Path) -> None:
    header = SUCCESS.read_text().splitlines()[0]
    names = header.split(",")
    line = bill_line([PAY_ROW.get(name, "") for name in names])
    summary = "总交易单数,应结订单总金额,手续费总金额,订单总金额"
    text = "\n".join([header, line, summary, bill_line(["1", "123.45", "0.74070", "123.45"])])
    rows, parser = parse(write(tmp_path, text + "\n"))
    assert rows[0]["amount"] == 12345
    assert parser.footer is not None
    assert parser.footer.declared == {"count": 1, "paid": 12345, "refund": 0, "fee": 74070}


def test_comma_inside_product_name_is_recovered(tmp_path: Path) -> None:
    named = PAY_ROW | {"商品名称": "商品A,商品B", "商户订单号": "S9"}
    rows, parser = parse(write(tmp_path, build_bill([PAY_ROW, named])))
    assert [row["order_id"] for row in rows] == ["S1", "S9"]
    assert rows[1]["line_no"] == 3 and rows[1]["fee"] == 74070
    assert parser.footer is not None and parser.footer.status == "ok"


def test_unrecoverable_field_count_names_the_line(tmp_path: Path) -> None:
    broken = PAY_ROW | {"商品名称": "a,`b"}  # the ,` boundary itself: cannot be repaired
    repairable = PAY_ROW | {"商品名称": "c,d"}
    with pytest.raises(BillFormatError, match=r"line 3: expected 27 fields .* found 28"):
        parse(write(tmp_path, build_bill([repairable, broken])))


def test_many_blocks(tmp_path: Path) -> None:
    rows_in = [PAY_ROW | {"商户订单号": f"S{i}"} for i in range(200)]
    rows_in[150] = rows_in[150] | {"商品名称": "有,逗号"}
    path = write(tmp_path, build_bill(rows_in))
    progress: list[int] = []
    rows, parser = parse(path, block_size=1000, on_progress=progress.append)
    assert [row["order_id"] for row in rows] == [f"S{i}" for i in range(200)]
    assert [row["line_no"] for row in rows] == list(range(2, 202))
    assert sum(progress) == path.stat().st_size
    assert parser.footer is not None and parser.footer.counted["count"] == 200


def test_stopping_early_stops_the_reader(tmp_path: Path) -> None:
    path = write(tmp_path, build_bill([PAY_ROW] * 200))
    parser = WechatBillParser(path)
    parser.block_size = 1000
    batches = parser.batches()
    next(batches)
    batches.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("wechat-bill")]


# ---------------------------------------------------------------------------- failures


def test_xml_fail_body(tmp_path: Path) -> None:
    body = (
        "<xml><return_code><![CDATA[FAIL]]></return_code>"
        "<return_msg><![CDATA[No Bill Exist]]></return_msg>"
        "<error_code><![CDATA[20002]]></error_code></xml>"
    )
    with pytest.raises(ChannelErrorResponse, match=r"No Bill Exist \(error_code 20002\)"):
        parse(write(tmp_path, body))


def test_json_error_body(tmp_path: Path) -> None:
    body = '{"code":"NO_STATEMENT_EXIST","message":"要查询的对账单不存在"}'
    with pytest.raises(ChannelErrorResponse, match="要查询的对账单不存在"):
        parse(write(tmp_path, body))


def test_truncated_without_summary(tmp_path: Path) -> None:
    text = "\n".join(ALL.read_text().splitlines()[:3]) + "\n"
    with pytest.raises(BillTruncatedError, match="line 3"):
        parse(write(tmp_path, text))


def test_truncated_without_summary_row(tmp_path: Path) -> None:
    text = "\n".join(ALL.read_text().splitlines()[:5]) + "\n"
    with pytest.raises(BillTruncatedError, match="summary row"):
        parse(write(tmp_path, text))


def test_footer_mismatch_states_both_figures(tmp_path: Path) -> None:
    lines = ALL.read_text().splitlines()
    del lines[3]  # one 0.01 row gone, the summary still says 3 rows and 0.03
    with pytest.raises(BillFooterMismatch) as caught:
        parse(write(tmp_path, "\n".join(lines) + "\n"))
    assert "summary says 总交易单数 3 but rows add up to 2" in str(caught.value)

    lines[-1] = lines[-1].replace("`3,", "`2,", 1)
    with pytest.raises(BillFooterMismatch) as caught:
        parse(write(tmp_path, "\n".join(lines) + "\n"))
    assert "summary says 应结订单总金额 0.03 but rows add up to 0.02" in str(caught.value)


def test_fee_mismatch_uses_five_decimals(tmp_path: Path) -> None:
    text = build_bill([PAY_ROW], summary=["1", "123.45", "0.00", "0.00", "0.74071", "0", "0"])
    with pytest.raises(BillFooterMismatch, match=r"0\.74071 but rows add up to 0\.74070"):
        parse(write(tmp_path, text))


def test_amount_with_three_decimals_names_line_and_field(tmp_path: Path) -> None:
    bad = PAY_ROW | {"应结订单金额": "0.123"}
    with pytest.raises(MoneyError, match=r"line 3, field '应结订单金额'.*more than 2 decimals"):
        parse(write(tmp_path, build_bill([PAY_ROW, bad], summary=["2"] + ["0"] * 6)))


def test_legacy_amount_error_uses_the_legacy_name(tmp_path: Path) -> None:
    names = HEADER_LEGACY.split(",")
    line = bill_line([(PAY_ROW | {"总金额": "abc"}).get(name, "") for name in names])
    text = "\n".join([HEADER_LEGACY, line, SUMMARY_LEGACY, bill_line(["1"] * 5)])
    with pytest.raises(MoneyError, match=r"line 2, field '总金额'"):
        parse(write(tmp_path, text))


@pytest.mark.parametrize("written", ["x", "1,5", "1e3", ""])
def test_bad_refund_amount_names_the_refund_field(tmp_path: Path, written: str) -> None:
    bad = REFUND_ROW | {"退款金额": written}  # "1,5" is re-split, then rejected as amount
    error = MoneyError if written else BillFormatError
    with pytest.raises(error, match=r"line 2, field '退款金额'"):
        parse(write(tmp_path, build_bill([bad], summary=["1"] + ["0"] * 6)))


def test_bad_fee_names_line_and_field(tmp_path: Path) -> None:
    bad = PAY_ROW | {"手续费": "0.000001"}
    with pytest.raises(MoneyError, match=r"line 2, field '手续费'"):
        parse(write(tmp_path, build_bill([bad], summary=["1"] + ["0"] * 6)))


@pytest.mark.parametrize("written", ["2021-13-28 17:07:11", "2021/01/28 17:07:11", "yesterday"])
def test_bad_time_names_line_and_field(tmp_path: Path, written: str) -> None:
    bad = PAY_ROW | {"交易时间": written}
    with pytest.raises(BillFormatError, match=r"line 3, field '交易时间'"):
        parse(write(tmp_path, build_bill([PAY_ROW, bad])))


def test_gbk_bytes_name_the_line(tmp_path: Path) -> None:
    text = build_bill([PAY_ROW, PAY_ROW | {"商品名称": "苹果"}])
    lines = text.encode().split(b"\n")
    lines[2] = lines[2].replace("苹果".encode(), "苹果".encode("gbk"))
    with pytest.raises(BillFormatError, match=r"line 3: not valid utf-8"):
        parse(write(tmp_path, b"\n".join(lines)))


def test_errors_come_in_file_order(tmp_path: Path) -> None:
    rows = [PAY_ROW] * 40
    rows[5] = PAY_ROW | {"应结订单金额": "1.001"}  # line 7, in the block of lines 4-7
    rows[8] = PAY_ROW | {"商品名称": "苹果"}  # line 10, in the next block, as GBK
    data = build_bill(rows).encode().replace("苹果".encode(), "苹果".encode("gbk"))
    with pytest.raises(MoneyError, match="line 7"):
        parse(write(tmp_path, data), block_size=1000)


def test_whole_file_in_gbk(tmp_path: Path) -> None:
    with pytest.raises(BillFormatError, match=r"line 1: not valid utf-8"):
        parse(write(tmp_path, ALL.read_text().encode("gbk")))


def test_blank_line_inside_detail(tmp_path: Path) -> None:
    lines = ALL.read_text().splitlines()
    lines.insert(2, "")
    with pytest.raises(BillFormatError, match=r"line 3: blank line"):
        parse(write(tmp_path, "\n".join(lines) + "\n"))


def test_trailing_blank_lines_are_fine(tmp_path: Path) -> None:
    rows, parser = parse(write(tmp_path, ALL.read_text() + "\n\n"))
    assert len(rows) == 3 and parser.footer is not None


def test_content_after_summary(tmp_path: Path) -> None:
    with pytest.raises(BillFormatError, match="line 7: unexpected content after the summary"):
        parse(write(tmp_path, ALL.read_text() + "garbage\n"))


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(BillFormatError, match="empty"):
        parse(write(tmp_path, text))


def test_missing_required_column(tmp_path: Path) -> None:
    text = ALL.read_text().replace("手续费,", "服务费,", 1)
    with pytest.raises(BillFormatError, match=r"line 1.*no column 手续费"):
        parse(write(tmp_path, text))


def test_unknown_row_type(tmp_path: Path) -> None:
    bad = PAY_ROW | {"交易状态": "PAYERROR"}
    with pytest.raises(BillFormatError, match=r"line 2, field '交易状态'.*PAYERROR"):
        parse(write(tmp_path, build_bill([bad])))


def test_refund_row_in_success_bill(tmp_path: Path) -> None:
    names = SUCCESS.read_text().splitlines()[0]
    text = build_bill([REFUND_ROW], header=names, summary=["1", "0", "0", "0", "0", "0", "0"])
    with pytest.raises(BillFormatError, match="refund row in a bill without refund columns"):
        parse(write(tmp_path, text))


def test_missing_order_number(tmp_path: Path) -> None:
    with pytest.raises(BillFormatError, match=r"line 2, field '商户退款单号'"):
        parse(write(tmp_path, build_bill([REFUND_ROW | {"商户退款单号": ""}])))


def test_unknown_time_zone() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        WechatBillParser(ALL, timezone="Mars/Olympus")


def test_parsing_twice_gives_the_same_rows() -> None:
    parser = WechatBillParser(ALL)
    first, second = list(parser.batches()), list(parser.batches())
    assert first == second and parser.footer is not None


def test_other_time_zone() -> None:
    rows, _ = parse(ALL, timezone="UTC")
    assert rows[0]["txn_time"] == utc("2021-01-28 17:07:11")
