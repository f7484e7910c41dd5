"""UnionPay, Stripe, PayPal and Adyen days: real layouts, read back by readers written here
from FORMATS.md, and reconciled end to end (DuckDB) to exactly the generator's truth."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from payrecon.config import Settings
from payrecon.core.outcomes import Outcome
from payrecon.generator import GeneratedDay, generate_day, plan
from payrecon.service.parse import parse_bill
from payrecon.service.reconcile import ReconcileRequest, RunResult, run_reconciliation

DAY = date(2024, 3, 5)
CHANNELS = ["unionpay", "stripe", "paypal", "adyen"]
FOOTER = {"unionpay": "none", "stripe": "none", "paypal": "ok", "adyen": "ok"}
CURRENCY = {"unionpay": "CNY", "stripe": "USD", "paypal": "USD", "adyen": "EUR"}
ADYEN_HEADER = (
    "Company Account,Merchant Account,Psp Reference,Merchant Reference,Payment Method,"
    "Creation Date,TimeZone,Type,Modification Reference,Gross Currency,Gross Debit (GC),"
    "Gross Credit (GC),Exchange Rate,Net Currency,Net Debit (NC),Net Credit (NC),"
    "Commission (NC),Markup (NC),Scheme Fees (NC),Interchange (NC),Payment Method Variant,"
    "Modification Merchant Reference,Batch Number,Reserved4,Reserved5,Reserved6,Reserved7,"
    "Reserved8,Reserved9,Reserved10"
)  # OCA's real batch 238 file


@dataclass(frozen=True)
class Reconciled:
    channel: str
    folder: Path
    made: GeneratedDay
    result: RunResult


@pytest.fixture(scope="module", params=CHANNELS)
def reconciled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Reconciled]:
    """600 keys, 20 % injected, chunks of 64 keys; reconciled on DuckDB."""
    channel = request.param
    folder = tmp_path_factory.mktemp(channel)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plan, "CHUNK_KEYS", 64)
        made = generate_day(channel, DAY, 600, folder / "in", seed=11, discrepancy_rate=0.2)
    run = ReconcileRequest(
        channel=channel,
        bills=tuple(made.bills),
        ledger=str(made.ledger),
        day=DAY,
        out=folder / "out",
        engine="duckdb",
    )
    yield Reconciled(channel, folder, made, run_reconciliation(run, Settings(home=folder / "home")))


def outcome_rows(path: Path) -> Counter[tuple[str, str, str]]:
    table = pq.read_table(path, columns=["kind", "order_id", "outcome"])
    return Counter(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


def record_lines(outcomes: Path, side: str) -> Counter[tuple[str, int]]:
    table = pq.read_table(outcomes, columns=[f"{side}_source", f"{side}_line_no"])
    pairs = zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)
    return Counter((source, line) for source, line in pairs if source is not None)


# --------------------------------------------------------------------------- round trips


def test_reconcile_reproduces_the_truth(reconciled: Reconciled) -> None:
    outcomes = reconciled.result.out / "outcomes.parquet"
    assert outcome_rows(outcomes) == outcome_rows(reconciled.made.truth)
    summary = reconciled.result.summary
    found = {kind for kind, figures in summary["outcomes"].items() if figures["count"]}
    assert found == {outcome.value for outcome in Outcome}
    assert summary["footer"] == FOOTER[reconciled.channel]
    assert summary["quarantined"] == 0


def test_every_record_lands_in_exactly_one_outcome(reconciled: Reconciled) -> None:
    outcomes = reconciled.result.out / "outcomes.parquet"
    made = reconciled.made
    ledger_rows = made.ledger.read_text(encoding="utf-8").count("\n") - 1
    ledger = record_lines(outcomes, "ledger")
    assert sorted(ledger) == [(str(made.ledger), n) for n in range(2, ledger_rows + 2)]
    parsed = reconciled.folder / "bill.parquet"
    settings = Settings(home=reconciled.folder / "home")
    summary = parse_bill(reconciled.channel, made.bills[0], settings, out=parsed)
    assert summary["rows"] == made.rows
    expected = pq.read_table(parsed, columns=["source", "line_no"]).to_pylist()
    channel = record_lines(outcomes, "channel")
    assert channel == Counter((r["source"], r["line_no"]) for r in expected)


@pytest.mark.parametrize("channel", CHANNELS)
def test_same_seed_same_bytes(tmp_path: Path, channel: str) -> None:
    first = generate_day(channel, DAY, 250, tmp_path / "a", seed=3)  # type: ignore[arg-type]
    second = generate_day(channel, DAY, 250, tmp_path / "b", seed=3)  # type: ignore[arg-type]
    other = generate_day(channel, DAY, 250, tmp_path / "c", seed=4)  # type: ignore[arg-type]
    assert first.bills[0].read_bytes() == second.bills[0].read_bytes()
    assert first.ledger.read_bytes() == second.ledger.read_bytes()
    assert first.bills[0].read_bytes() != other.bills[0].read_bytes()
    ledger = list(csv.DictReader(io.StringIO(first.ledger.read_text(encoding="utf-8"))))
    assert {row["currency"] for row in ledger} == {CURRENCY[channel]}


@pytest.mark.parametrize("channel", CHANNELS)
def test_zero_rows_still_writes_a_complete_bill(tmp_path: Path, channel: str) -> None:
    made = generate_day(channel, DAY, 0, tmp_path)  # type: ignore[arg-type]
    summary = parse_bill(channel, made.bills[0], Settings(home=tmp_path / "home"))
    assert made.rows == 0 and summary["rows"] == 0
    assert summary["footer"] == FOOTER[channel]


# --------------------------------------------------------------------------- layouts


def test_unionpay_file_layout(tmp_path: Path) -> None:
    made = generate_day("unionpay", DAY, 400, tmp_path, seed=2, merchant_id="777290058138766")
    assert made.bills == [tmp_path / "INN24030501ZM_777290058138766.txt"]
    data = made.bills[0].read_bytes()
    lines = data.split(b"\r\n")
    assert lines[-1] == b"" and b"\n" not in data.replace(b"\r\n", b"")
    records = lines[:-1]
    assert len(records) == made.rows and {len(record) for record in records} == {607}
    text = [record.decode("gbk") for record in records]
    assert any("测试二级商户一号" in line for line in text)  # GBK, two bytes a character

    def field(record: bytes, start: int, width: int) -> str:
        return record[start : start + width].decode("ascii").strip()

    for record in records:
        code, txn_type = field(record, 0, 3), field(record, 215, 2)
        assert (code, txn_type) in {("S22", "01"), ("S30", "04")}
        assert field(record, 35, 4) == "0305" and field(record, 293, 15) == "777290058138766"
        assert field(record, 66, 12).isdigit() and len(field(record, 87, 21)) == 21
        fee, settled = field(record, 166, 13), field(record, 180, 13)
        assert fee[0] == ("D" if code == "S22" else "C") and settled[0] in "CD"
        assert (field(record, 271, 21) != "") == (code == "S30")  # 原交易查询流水号


def test_stripe_report_layout(tmp_path: Path) -> None:
    made = generate_day("stripe", DAY, 400, tmp_path, seed=2)
    name = "Itemized_balance_change_from_activity_USD_2024-03-05_to_2024-03-05_Asia-Shanghai.csv"
    assert made.bills == [tmp_path / name]
    rows = list(csv.DictReader(io.StringIO(made.bills[0].read_text(encoding="utf-8"))))
    categories = Counter(row["reporting_category"] for row in rows)
    assert set(categories) == {"charge", "refund", "fee"} and categories["fee"] == 1
    for row in rows:
        utc, local = (datetime.fromisoformat(row[key]) for key in ("created_utc", "created"))
        assert local - utc == timedelta(hours=8)  # the report was run for Asia/Shanghai
        gross, fee, net = (Decimal(row[key]) for key in ("gross", "fee", "net"))
        assert gross - fee == net and row["currency"] == "usd"
        if row["reporting_category"] == "refund":
            assert gross < 0 and fee <= 0 and row["source_id"].startswith("re_")
            assert row["refund_metadata[refund_id]"].startswith("R")
        elif row["reporting_category"] == "charge":
            assert gross > 0 and row["source_id"].startswith("ch_")
            assert row["payment_metadata[order_id]"].startswith("S")


def test_paypal_record_sequence_and_totals(tmp_path: Path) -> None:
    made = generate_day("paypal", DAY, 400, tmp_path, seed=2, merchant_id="ABCDEFGHJKLMN")
    assert made.bills == [tmp_path / "STL-20240305.01.009.CSV"]
    text = made.bills[0].read_bytes().decode("utf-8")
    assert text.endswith("\r\n") and "\r\n" * 2 not in text
    records = list(csv.reader(io.StringIO(text)))
    kinds = [record[0] for record in records]
    assert kinds[:4] == ["RH", "FH", "SH", "CH"] and kinds[-5:] == ["SF", "SC", "RF", "RC", "FF"]
    assert set(kinds[4:-5]) == {"SB"} and records[0][3] == "ABCDEFGHJKLMN"
    header = records[3]
    body = [dict(zip(header, record, strict=True)) for record in records[4:-5]]
    totals = Counter[str]()
    for row in body:
        side = "credit" if row["Transaction Debit or Credit"] == "CR" else "debit"
        totals[f"gross_{side}"] += int(row["Gross Transaction Amount"])
        side = "credit" if row["Fee Debit or Credit"] == "CR" else "debit"
        totals[f"fee_{side}"] += int(row["Fee Amount"])
    declared = [int(value) for value in records[-5][2:6]]
    names = ["gross_credit", "gross_debit", "fee_credit", "fee_debit"]
    assert declared == [totals[name] for name in names]
    assert records[-4] == ["SC", str(len(body))] and records[-2] == ["RC", str(len(body))]
    assert records[-3][1:] == records[-5][1:]  # RF repeats SF: one section, one currency
    codes = Counter(row["Transaction Event Code"] for row in body)
    assert codes["T1107"] > 0 and codes["T0400"] == 1
    # The completion time is when the ledger booked the payment (+0800 is the ledger's zone).
    ledger = list(csv.DictReader(io.StringIO(made.ledger.read_text(encoding="utf-8"))))
    booked = {row["order_id"]: row["txn_time"] for row in ledger}
    times = {
        row["Invoice ID"]: row["Transaction Completion Date"].replace("/", "-")
        for row in body
        if row["Invoice ID"] in booked
    }
    assert len(times) > 300
    assert all(booked[order] == f"{when[:10]}T{when[11:19]}+08:00" for order, when in times.items())


def test_adyen_batch_layout_nets_to_zero(tmp_path: Path) -> None:
    made = generate_day("adyen", DAY, 400, tmp_path, seed=2)
    assert made.bills[0].name.startswith("settlement_detail_report_batch_")
    text = made.bills[0].read_text(encoding="ascii")
    assert text.splitlines()[0] == ADYEN_HEADER
    rows = list(csv.DictReader(io.StringIO(text)))
    types = [row["Type"] for row in rows]
    assert types[-2:] in (["Fee", "MerchantPayout"], ["Fee", "Balancetransfer"])
    assert set(types[:-2]) == {"Settled", "Refunded"}
    net = sum(
        Decimal(row["Net Credit (NC)"] or 0) - Decimal(row["Net Debit (NC)"] or 0) for row in rows
    )
    assert net == 0
    for row in rows[:-2]:
        if row["Type"] == "Settled":
            parts = ("Markup", "Scheme Fees", "Interchange")
            fees = sum(Decimal(row[f"{name} (NC)"] or 0) for name in parts)
            assert Decimal(row["Gross Credit (GC)"]) - fees == Decimal(row["Net Credit (NC)"])
        else:
            assert row["Modification Merchant Reference"].startswith("R")
            assert row["Merchant Reference"].startswith("S")
