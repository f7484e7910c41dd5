"""The day generator: real channel formats, self-consistent totals, and a truth that a
small reference classifier (written here from the rules, not the engine) agrees with."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pyarrow.parquet as pq
import pytest

from payrecon import generator
from payrecon.core.outcomes import Outcome
from payrecon.errors import ConfigError
from payrecon.generator import GeneratedDay, generate_day, plan

DAY = date(2024, 3, 5)
SHANGHAI = timezone(timedelta(hours=8))
WECHAT_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
WECHAT_SUMMARY = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)
ALIPAY_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
    "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)
LEDGER_HEADER = (
    "channel,merchant_id,kind,order_id,origin_order_id,channel_txn_id,status,amount,fee,"
    "currency,txn_time"
)
SUCCESS = {"PAY": {"SUCCESS", "REFUNDED"}, "REFUND": {"SUCCESS"}}
WINDOW = timedelta(minutes=10)
Channel = Literal["wechat", "alipay"]


@dataclass(frozen=True)
class Rec:
    kind: str
    order_id: str
    status: str
    amount: int
    fee: int | None
    at: datetime  # local wall-clock time


def fen(text: str, scale: int = 2) -> int:
    return int(Decimal(text).scaleb(scale))


# -- readers written for the test, from FORMATS.md, not the product's bill parsers --------


def wechat_rows(path: Path) -> tuple[list[str], list[dict[str, str]], dict[str, str]]:
    text = path.read_bytes().decode("utf-8")
    assert text.startswith("\ufeff")
    lines = text[1:].split("\r\n")
    assert lines[-1] == ""
    header, *body, summary_header, summary = lines[:-1]
    rows = [dict(zip(header.split(","), _ticks(line), strict=True)) for line in body]
    return (
        [header, summary_header],
        rows,
        dict(zip(summary_header.split(","), _ticks(summary), strict=True)),
    )


def _ticks(line: str) -> list[str]:
    fields = next(csv.reader([line]))
    assert all(field.startswith("`") for field in fields), line
    return [field[1:] for field in fields]


def wechat_records(rows: list[dict[str, str]]) -> list[Rec]:
    def one(row: dict[str, str]) -> Rec:
        refund = row["交易状态"] == "REFUND"
        order = row["商户退款单号"] if refund else row["商户订单号"]
        amount = row["退款金额"] if refund else row["应结订单金额"]
        at = datetime.fromisoformat(row["交易时间"])
        return Rec("REFUND" if refund else "PAY", order, "SUCCESS", fen(amount), None, at)

    return [one(row) for row in rows]


def alipay_files(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path, metadata_encoding="gbk") as archive:
        for info in archive.infolist():
            assert info.flag_bits & 0x800 == 0, "entry names must not carry the UTF-8 flag"
        return {info.filename: archive.read(info).decode("gbk") for info in archive.infolist()}


def alipay_rows(text: str) -> tuple[list[str], list[dict[str, str]], list[str]]:
    lines = text.split("\r\n")
    assert lines[-1] == ""
    preamble, header = lines[:4], lines[4]
    end = lines.index(next(line for line in lines if line.startswith("#---") and "结束" in line))
    rows = [dict(zip(header.split(","), line.split(","), strict=True)) for line in lines[5:end]]
    return [*preamble, header], rows, lines[end:-1]


def alipay_records(rows: list[dict[str, str]]) -> list[Rec]:
    def one(row: dict[str, str]) -> Rec:
        refund = row["业务类型"].strip() == "退款"
        order = row["退款批次号/请求号" if refund else "商户订单号"].strip()
        amount = abs(fen(row["商家实收（元）"]))
        at = datetime.fromisoformat(row["完成时间"])
        return Rec("REFUND" if refund else "PAY", order, "SUCCESS", amount, None, at)

    return [one(row) for row in rows]


def ledger_records(path: Path) -> list[Rec]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Rec(
            row["kind"],
            row["order_id"],
            row["status"],
            int(row["amount"]),
            int(row["fee"]) if row["fee"] else None,
            datetime.fromisoformat(row["txn_time"]).replace(tzinfo=None),
        )
        for row in rows
    ]


def channel_records(day: GeneratedDay, channel: Channel) -> list[Rec]:
    if channel == "wechat":
        _, rows, _ = wechat_rows(day.bills[0])
        records = wechat_records(rows)
        fees = [fen(row["手续费"], 5) for row in rows]
    else:
        detail = next(t for n, t in alipay_files(day.bills[0]).items() if n.endswith("明细.csv"))
        _, rows, _ = alipay_rows(detail)
        records = alipay_records(rows)
        fees = [fen(row["服务费（元）"], 5) for row in rows]
    return [
        Rec(r.kind, r.order_id, r.status, r.amount, f, r.at)
        for r, f in zip(records, fees, strict=True)
    ]


# -- the reference classification (ARCHITECTURE.md "Outcomes of a batch run") -------------


def expected(ledger: list[Rec], channel: list[Rec], day: date) -> Counter[tuple[str, str, str]]:
    outcomes: Counter[tuple[str, str, str]] = Counter()
    firsts: list[dict[tuple[str, str], Rec]] = []
    for records in (ledger, channel):
        first: dict[tuple[str, str], Rec] = {}
        for record in records:
            key = (record.kind, record.order_id)
            if key in first:
                outcomes[(*key, Outcome.DUPLICATE.value)] += 1
            else:
                first[key] = record
        firsts.append(first)
    mine, theirs = firsts
    for key in mine.keys() | theirs.keys():
        outcomes[(*key, _classify(mine.get(key), theirs.get(key), day))] += 1
    return outcomes


def _classify(ledger: Rec | None, channel: Rec | None, day: date) -> str:
    if ledger and channel:
        if (ledger.status in SUCCESS[ledger.kind]) != (channel.status in SUCCESS[channel.kind]):
            return Outcome.STATUS_MISMATCH.value
        if ledger.amount != channel.amount:
            return Outcome.AMOUNT_MISMATCH.value
        if None not in (ledger.fee, channel.fee) and ledger.fee != channel.fee:
            return Outcome.FEE_MISMATCH.value
        return Outcome.MATCHED.value
    one = ledger or channel
    assert one is not None
    start = datetime.combine(day, time())
    if one.at < start + WINDOW or one.at >= start + timedelta(days=1) - WINDOW:
        return Outcome.CARRIED_OVER.value
    return Outcome.MISSING_IN_CHANNEL.value if ledger else Outcome.MISSING_IN_LEDGER.value


def truth_counter(day: GeneratedDay) -> Counter[tuple[str, str, str]]:
    table = pq.read_table(day.truth)
    assert table.column_names == ["channel", "kind", "order_id", "outcome"]
    rows = table.to_pylist()
    return Counter((row["kind"], row["order_id"], row["outcome"]) for row in rows)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["wechat", "alipay"])
def busy_day(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Channel, GeneratedDay]]:
    """500 keys, 20 % injected, in chunks of 64 keys so the streaming path is exercised."""
    out = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plan, "CHUNK_KEYS", 64)
        yield (
            request.param,
            generate_day(request.param, DAY, 500, out, seed=7, discrepancy_rate=0.2),
        )


# -- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_same_seed_same_bytes(tmp_path: Path, channel: Channel) -> None:
    first = generate_day(channel, DAY, 300, tmp_path / "a", seed=3, discrepancy_rate=0.1)
    second = generate_day(channel, DAY, 300, tmp_path / "b", seed=3, discrepancy_rate=0.1)
    other = generate_day(channel, DAY, 300, tmp_path / "c", seed=4, discrepancy_rate=0.1)
    pairs = [(first.bills[0], second.bills[0]), (first.ledger, second.ledger)]
    assert all(a.read_bytes() == b.read_bytes() for a, b in pairs)
    assert pq.read_table(first.truth).equals(pq.read_table(second.truth))
    assert first.ledger.read_bytes() != other.ledger.read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        [first.bills[0].name, "ledger.csv", "truth.parquet"]
    )


def test_truth_agrees_with_reference_classification(busy_day: tuple[Channel, GeneratedDay]) -> None:
    channel, day = busy_day
    reference = expected(ledger_records(day.ledger), channel_records(day, channel), DAY)
    assert truth_counter(day) == reference


def test_every_outcome_kind_appears(busy_day: tuple[Channel, GeneratedDay]) -> None:
    _, day = busy_day
    outcomes = {outcome for _, _, outcome in truth_counter(day)}
    assert outcomes == {outcome.value for outcome in Outcome}


def test_one_truth_row_per_key_plus_one_per_duplicate(
    busy_day: tuple[Channel, GeneratedDay],
) -> None:
    channel, day = busy_day
    ledger, bill = ledger_records(day.ledger), channel_records(day, channel)
    keys = {(r.kind, r.order_id) for r in ledger} | {(r.kind, r.order_id) for r in bill}
    ledger_keys = Counter((r.kind, r.order_id) for r in ledger)
    extra_copies = sum(count - 1 for count in ledger_keys.values())
    assert len({(r.kind, r.order_id) for r in bill}) == len(bill), "the bill repeats no record"
    assert sum(truth_counter(day).values()) == len(keys) + extra_copies
    assert extra_copies > 0


def test_amount_mismatches_go_both_ways_and_carried_come_from_both_sides(
    busy_day: tuple[Channel, GeneratedDay],
) -> None:
    channel, day = busy_day
    ledger = {(r.kind, r.order_id): r for r in ledger_records(day.ledger)}
    bill = {(r.kind, r.order_id): r for r in channel_records(day, channel)}
    truth = truth_counter(day)
    amounts = [(k, o) for k, o, outcome in truth if outcome == Outcome.AMOUNT_MISMATCH.value]
    diffs = {bill[key].amount > ledger[key].amount for key in amounts}
    assert diffs == {True, False}  # 长款 and 短款
    carried = [(k, o) for k, o, outcome in truth if outcome == Outcome.CARRIED_OVER.value]
    assert {key in ledger for key in carried} == {True, False}
    statuses = {ledger[(k, o)].status for k, o, x in truth if x == Outcome.STATUS_MISMATCH.value}
    assert statuses <= {"PROCESSING", "CLOSED"}


def test_wechat_bill_format_and_summary(tmp_path: Path) -> None:
    day = generate_day("wechat", DAY, 400, tmp_path, seed=1, discrepancy_rate=0.05)
    assert day.bills == [tmp_path / "wechat_20240305_ALL.csv"]
    headers, rows, summary = wechat_rows(day.bills[0])
    assert headers == [WECHAT_HEADER, WECHAT_SUMMARY]
    assert day.rows == len(rows) > 0
    for row in rows:
        _check_wechat_row(row)
    assert {row["交易状态"] for row in rows} == {"SUCCESS", "REFUND"}
    assert summary == {
        "总交易单数": str(len(rows)),
        "应结订单总金额": _yuan(sum(fen(r["应结订单金额"]) for r in rows)),
        "退款总金额": _yuan(sum(fen(r["退款金额"]) for r in rows)),
        "充值券退款总金额": "0.00",
        "手续费总金额": _yuan(sum(fen(r["手续费"], 5) for r in rows), 5),
        "订单总金额": _yuan(sum(fen(r["订单金额"]) for r in rows)),
        "申请退款总金额": _yuan(sum(fen(r["申请退款金额"]) for r in rows)),
    }


def _check_wechat_row(row: dict[str, str]) -> None:
    assert row["特约商户号"] == "0" and row["货币种类"] == "CNY"
    assert len(row["微信订单号"]) == 28 and row["微信订单号"].startswith("42000")
    assert row["微信订单号"].isdigit()
    assert len(row["手续费"].split(".")[1]) == 5
    if row["交易状态"] == "REFUND":
        assert len(row["微信退款单号"]) == 29 and row["微信退款单号"].startswith("503")
        assert row["退款状态"] == "SUCCESS" and row["商户退款单号"] != "0"
        assert row["应结订单金额"] == "0.00" and row["订单金额"] == "0.00"
        assert fen(row["手续费"], 5) <= 0 and fen(row["退款金额"]) > 0
    else:
        assert row["微信退款单号"] == "0" and row["商户退款单号"] == "0"
        assert row["退款金额"] == "0.00" and row["退款状态"] == ""
        assert fen(row["手续费"], 5) >= 0


def _yuan(amount: int, scale: int = 2) -> str:
    return str(Decimal(amount).scaleb(-scale).quantize(Decimal(1).scaleb(-scale)))


def test_alipay_zip_names_encoding_and_footers(tmp_path: Path) -> None:
    day = generate_day("alipay", DAY, 400, tmp_path, seed=1, merchant_id="2088123412341234")
    assert day.bills == [tmp_path / "20881234123412340156_20240305.csv.zip"]
    files = alipay_files(day.bills[0])
    stem = "20881234123412340156_20240305"
    assert list(files) == [f"{stem}_业务明细.csv", f"{stem}_业务明细(汇总).csv"]
    with zipfile.ZipFile(day.bills[0]) as raw:
        name = raw.infolist()[0].orig_filename.encode("cp437")
        assert name == f"{stem}_业务明细.csv".encode("gbk")
        with pytest.raises(UnicodeDecodeError):
            raw.read(raw.infolist()[0]).decode("utf-8")
    head, rows, tail = alipay_rows(files[f"{stem}_业务明细.csv"])
    assert head[0] == "#支付宝业务明细查询" and head[1] == "#账号：[20881234123412340156]"
    assert head[2] == "#起始日期：[2024年03月05日 00:00:00]   终止日期：[2024年03月06日 00:00:00]"
    assert head[4] == ALIPAY_HEADER and day.rows == len(rows)
    pays = [r for r in rows if r["业务类型"] == "交易\t"]
    refunds = [r for r in rows if r["业务类型"] == "退款\t"]
    assert pays and refunds and len(pays) + len(refunds) == len(rows)
    assert all(r["支付宝交易号"].endswith("\t") and r["商户订单号"].endswith("\t") for r in rows)
    assert all(fen(r["商家实收（元）"]) < 0 and r["退款批次号/请求号"] != "\t" for r in refunds)
    received = sum(fen(r["商家实收（元）"]) for r in pays)
    refunded = sum(fen(r["商家实收（元）"]) for r in refunds)
    discount = sum(fen(r["商家优惠（元）"]) for r in pays)
    assert (
        tail[1]
        == f"#交易合计：{len(pays)}笔，商家实收共{_yuan(received)}元，商家优惠共{_yuan(discount)}元"
    )
    assert (
        tail[2]
        == f"#退款合计：{len(refunds)}笔，商家实收退款共{_yuan(refunded)}元，商家优惠退款共0.00元"
    )
    assert tail[3].startswith("#导出时间：[2024年03月06日 ")
    summary = files[f"{stem}_业务明细(汇总).csv"].split("\r\n")
    total = next(line for line in summary if line.startswith("合计,")).split(",")
    assert total[2:6] == [
        str(len(pays)),
        str(len(refunds)),
        _yuan(received + refunded + discount),
        _yuan(received + refunded),
    ]


def test_ledger_columns_and_values(busy_day: tuple[Channel, GeneratedDay]) -> None:
    channel, day = busy_day
    with day.ledger.open(encoding="utf-8", newline="") as handle:
        assert handle.readline().rstrip("\n") == LEDGER_HEADER
        rows = list(csv.DictReader(io.StringIO(LEDGER_HEADER + "\n" + handle.read())))
    assert {row["channel"] for row in rows} == {channel} and {row["currency"] for row in rows} == {
        "CNY"
    }
    assert {row["kind"] for row in rows} == {"PAY", "REFUND"}
    for row in rows:
        assert int(row["amount"]) > 0
        assert row["fee"] == "" or int(row["fee"]) >= 0
        moment = datetime.fromisoformat(row["txn_time"])
        assert moment.utcoffset() == timedelta(hours=8) and moment.date() == DAY
        assert (row["kind"] == "REFUND") == bool(row["origin_order_id"])
    assert any(row["fee"] == "" for row in rows if row["kind"] == "PAY")
    assert any(row["status"] == "REFUNDED" for row in rows)


def test_zero_rows_still_writes_complete_files(tmp_path: Path) -> None:
    wechat = generate_day("wechat", DAY, 0, tmp_path / "w")
    alipay = generate_day("alipay", DAY, 0, tmp_path / "a")
    _, rows, summary = wechat_rows(wechat.bills[0])
    assert rows == [] and summary["总交易单数"] == "0" and summary["手续费总金额"] == "0.00000"
    detail = next(t for n, t in alipay_files(alipay.bills[0]).items() if n.endswith("明细.csv"))
    _, alipay_detail, tail = alipay_rows(detail)
    assert alipay_detail == [] and tail[1].startswith("#交易合计：0笔，商家实收共0.00元")
    for day in (wechat, alipay):
        assert day.rows == 0 and pq.read_table(day.truth).num_rows == 0
        assert day.ledger.read_text(encoding="utf-8") == LEDGER_HEADER + "\n"


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_zero_rate_matches_everything(tmp_path: Path, channel: Channel) -> None:
    day = generate_day(channel, DAY, 300, tmp_path, seed=5, discrepancy_rate=0.0)
    truth = truth_counter(day)
    assert {outcome for _, _, outcome in truth} == {Outcome.MATCHED.value}
    assert sum(truth.values()) == 300 == day.rows
    assert truth == expected(ledger_records(day.ledger), channel_records(day, channel), DAY)


def test_progress_reports_every_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan, "CHUNK_KEYS", 100)
    seen: list[int] = []
    generate_day("wechat", DAY, 250, tmp_path, on_progress=seen.append)
    assert seen == [100, 100, 50]


def test_small_rate_on_a_small_day_still_shows_every_kind(tmp_path: Path) -> None:
    day = generate_day("alipay", DAY, 200, tmp_path, seed=2, discrepancy_rate=0.001)
    assert {outcome for _, _, outcome in truth_counter(day)} == {o.value for o in Outcome}


@pytest.mark.parametrize(
    ("channel", "rows", "rate", "merchant"),
    [
        ("applepay", 10, 0.1, None),
        ("wechat", -1, 0.1, None),
        ("wechat", 10, 1.5, None),
        ("alipay", 10, 0.1, "1234"),
    ],
)
def test_bad_arguments_are_config_errors(
    tmp_path: Path, channel: str, rows: int, rate: float, merchant: str | None
) -> None:
    with pytest.raises(ConfigError):
        generate_day(channel, DAY, rows, tmp_path, discrepancy_rate=rate, merchant_id=merchant)  # type: ignore[arg-type]


def test_multi_day_is_not_silently_ignored(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError):
        generate_day("wechat", DAY, 10, tmp_path, carried_in=tmp_path / "carried.parquet")


def test_worker_count_does_not_change_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan, "CHUNK_KEYS", 50)
    outputs = []
    for workers in (1, 3):
        monkeypatch.setattr(generator, "WORKERS", workers)
        day = generate_day("alipay", DAY, 420, tmp_path / str(workers), seed=9)
        outputs.append((day.bills[0].read_bytes(), day.ledger.read_bytes()))
    assert outputs[0] == outputs[1]


def test_a_failed_run_leaves_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan, "CHUNK_KEYS", 50)
    real = plan.plan_chunk

    def failing(spec: plan.DaySpec, number: int, start: int, size: int) -> plan.ChunkPlan:
        if number == 3:
            raise RuntimeError("disk on fire")
        return real(spec, number, start, size)

    monkeypatch.setattr(generator, "plan_chunk", failing)
    for channel in ("wechat", "alipay"):
        with pytest.raises(RuntimeError, match="disk on fire"):
            generate_day(channel, DAY, 400, tmp_path / channel)
        assert list((tmp_path / channel).iterdir()) == []
