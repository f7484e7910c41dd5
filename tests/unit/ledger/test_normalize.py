"""The one place that turns raw ledger rows into canonical records or quarantine rows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from payrecon.config import LedgerSettings
from payrecon.core.schema import CANONICAL, QUARANTINE
from payrecon.errors import LedgerSourceError
from payrecon.ledger.base import LedgerBatch, RawBatch, Rejected, ordinals
from payrecon.ledger.normalize import Normalizer, integer_problem

SHANGHAI = ZoneInfo("Asia/Shanghai")
IN_FEN = "expected an integer in minor units (分)"
BASE = {"order_id": "O1", "amount": "100", "status": "SUCCESS", "txn_time": "2024-03-01 10:00:00"}


def run(
    rows: list[dict[str, Any]] | pa.RecordBatch,
    settings: LedgerSettings | None = None,
    *,
    channel_timezone: str = "Asia/Shanghai",
    first_line: int = 2,
) -> LedgerBatch:
    batch = rows if isinstance(rows, pa.RecordBatch) else pa.RecordBatch.from_pylist(rows)
    normalizer = Normalizer(
        source="ledger.csv",
        channel="wechat",
        settings=settings or LedgerSettings(),
        channel_timezone=channel_timezone,
    )
    return normalizer.normalize(RawBatch(batch, ordinals(first_line, batch.num_rows)))


def one(row: dict[str, Any], settings: LedgerSettings | None = None) -> dict[str, Any]:
    """The single canonical record for ``row``; fails when it was quarantined."""
    batch = run([row], settings)
    assert batch.quarantined.to_pylist() == []
    [record] = batch.records.to_pylist()
    return dict(record)


def problem(row: dict[str, Any], settings: LedgerSettings | None = None) -> dict[str, Any]:
    """The single quarantine row for ``row``; fails when it was accepted."""
    batch = run([row], settings)
    assert batch.records.num_rows == 0
    [quarantined] = batch.quarantined.to_pylist()
    return dict(quarantined)


def at_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- whole records ---------------------------------------------------------------------


def test_text_row_with_every_column_becomes_the_canonical_record() -> None:
    row = {
        "channel": "alipay",
        "merchant_id": " 1900000109 ",
        "kind": "refund",
        "order_id": " R100 ",
        "origin_order_id": "O100",
        "channel_txn_id": "5030000",
        "status": "success",
        "amount": "1234",
        "order_amount": "1500",
        "coupon_amount": "266",
        "fee": "74070",
        "currency": "usd",
        "txn_time": "2024-03-01 10:00:00",
    }
    assert one(row) == {
        "channel": "alipay",
        "merchant_id": "1900000109",
        "kind": "REFUND",
        "order_id": "R100",
        "origin_order_id": "O100",
        "channel_txn_id": "5030000",
        "status": "SUCCESS",
        "amount": 1234,
        "order_amount": 1500,
        "coupon_amount": 266,
        "fee": 74070,
        "currency": "USD",
        "txn_time": at_utc("2024-03-01 02:00:00"),
        "bill_date": date(2024, 3, 1),
        "source": "ledger.csv",
        "line_no": 2,
    }


def test_only_required_columns_take_the_defaults() -> None:
    record = one(BASE)
    assert record["kind"] == "PAY"
    assert record["channel"] == "wechat"
    assert record["currency"] == "CNY"
    assert record["fee"] is None  # unknown, not zero
    assert record["order_amount"] is None
    assert record["merchant_id"] is None
    assert record["origin_order_id"] is None


def test_empty_optional_text_takes_the_defaults() -> None:
    record = one({**BASE, "kind": "", "channel": " ", "currency": "", "fee": "", "merchant_id": ""})
    assert (record["kind"], record["channel"], record["currency"]) == ("PAY", "wechat", "CNY")
    assert record["fee"] is None
    assert record["merchant_id"] is None


def test_output_batches_carry_the_canonical_and_quarantine_schemas() -> None:
    batch = run([BASE, {**BASE, "amount": "x"}])
    assert batch.records.schema == CANONICAL
    assert batch.quarantined.schema == QUARANTINE


def test_an_empty_batch_normalises_to_empty_batches() -> None:
    empty = pa.RecordBatch.from_pylist([], schema=pa.schema([(k, pa.string()) for k in BASE]))
    batch = run(empty)
    assert (batch.records.num_rows, batch.quarantined.num_rows) == (0, 0)


def test_a_missing_required_column_is_a_source_error() -> None:
    with pytest.raises(LedgerSourceError, match="'status'"):
        run([{"order_id": "O1", "amount": "1", "txn_time": "2024-03-01 10:00:00"}])


# --- amounts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("100", 100), (" 42 ", 42), ("0", 0), ("007", 7), ("999999999999999999", 10**18 - 1)],
)
def test_amount_text_of_digits_is_minor_units(value: str, expected: int) -> None:
    assert one({**BASE, "amount": value})["amount"] == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1.00", f"amount '1.00' has a decimal point; {IN_FEN}"),
        ("-5", f"amount '-5' is negative; {IN_FEN}"),
        ("", "amount is empty"),
        ("   ", "amount is empty"),
        ("abc", f"amount 'abc' is not an integer; {IN_FEN}"),
        ("1e3", f"amount '1e3' is not an integer; {IN_FEN}"),
        ("+5", f"amount '+5' has a sign; {IN_FEN}"),
        ("1,000", f"amount '1,000' is not an integer; {IN_FEN}"),
        ("12345678901234567890", f"amount '12345678901234567890' is out of range; {IN_FEN}"),
    ],
)
def test_amount_text_that_is_not_minor_units_is_quarantined(value: str, reason: str) -> None:
    assert problem({**BASE, "amount": value}) == {
        "source": "ledger.csv",
        "line_no": 2,
        "order_id": "O1",
        "field": "amount",
        "value": value,
        "reason": reason,
    }


def typed_amounts(values: list[Any], kind: pa.DataType | None = None) -> pa.RecordBatch:
    n = len(values)
    return pa.RecordBatch.from_pydict(
        {
            "order_id": [f"O{i}" for i in range(n)],
            "amount": pa.array(values, kind),
            "status": ["SUCCESS"] * n,
            "txn_time": ["2024-03-01 10:00:00"] * n,
        }
    )


def test_integer_columns_are_taken_as_they_are_negative_ones_quarantined() -> None:
    batch = run(typed_amounts([100, -1, None, 0], pa.int32()))
    assert batch.records.column("amount").to_pylist() == [100, 0]
    reasons = [row["reason"] for row in batch.quarantined.to_pylist()]
    assert reasons == [
        "amount '-1' is negative; expected an integer in minor units (分)",
        "amount is empty",
    ]


def test_unsigned_values_beyond_int64_are_out_of_range() -> None:
    batch = run(typed_amounts([5, 2**64 - 1], pa.uint64()))
    assert batch.records.column("amount").to_pylist() == [5]
    assert "is out of range" in batch.quarantined.column("reason")[0].as_py()


def test_decimal_columns_are_accepted_only_without_a_fraction() -> None:
    values = [Decimal("100.00"), Decimal("1.50"), Decimal("-2.00"), Decimal("7")]
    batch = run(typed_amounts(values, pa.decimal128(12, 2)))
    assert batch.records.column("amount").to_pylist() == [100, 7]
    assert [(row["value"], row["reason"]) for row in batch.quarantined.to_pylist()] == [
        ("1.50", "amount '1.50' has a fraction; expected an integer in minor units (分)"),
        ("-2.00", "amount '-2.00' is negative; expected an integer in minor units (分)"),
    ]


def test_floating_point_amounts_are_never_taken_even_when_whole() -> None:
    batch = run(typed_amounts([100.0, 1.5]))
    assert batch.records.num_rows == 0
    reasons = batch.quarantined.column("reason").to_pylist()
    assert reasons == [
        "amount '100.0' is a floating-point number; expected an integer in minor units (分)",
        "amount '1.5' is a floating-point number; expected an integer in minor units (分)",
    ]


@pytest.mark.parametrize(
    ("value", "signed", "expected"),
    [
        (None, False, "is empty"),
        (Decimal("NaN"), False, "has a fraction"),
        ("1.", False, "has a decimal point"),
        ("-3", True, "is out of range"),
    ],
)
def test_integer_problem_names_the_reason(value: Any, signed: bool, expected: str) -> None:
    assert integer_problem(value, signed=signed) == expected


def test_fee_is_thousandths_of_a_minor_unit_and_may_be_negative() -> None:
    assert one({**BASE, "fee": "74070"})["fee"] == 74070
    assert one({**BASE, "fee": "-156000"})["fee"] == -156000


def test_fee_written_in_yuan_is_quarantined_with_its_unit() -> None:
    quarantined = problem({**BASE, "fee": "0.74070"})
    assert quarantined["field"] == "fee"
    assert quarantined["reason"] == (
        "fee '0.74070' has a decimal point; expected an integer in thousandths of a minor unit"
    )


def test_optional_amounts_are_null_when_empty_and_quarantined_when_wrong() -> None:
    assert one({**BASE, "order_amount": ""})["order_amount"] is None
    quarantined = problem({**BASE, "order_amount": "1.5"})
    assert (quarantined["field"], quarantined["value"]) == ("order_amount", "1.5")


# --- status, kind, currency, order id ----------------------------------------------------


def test_status_is_mapped_through_the_status_map_first() -> None:
    settings = LedgerSettings(status_map={"paid": "SUCCESS", "1": "CLOSED", "SUCCESS": "FAILED"})
    batch = run(
        [{**BASE, "status": s} for s in ["paid", " paid ", "1", "SUCCESS", "settled"]], settings
    )
    assert batch.records.column("status").to_pylist() == ["SUCCESS", "SUCCESS", "CLOSED", "FAILED"]
    assert batch.quarantined.column("reason").to_pylist() == ["unknown status 'settled'"]


def test_canonical_statuses_are_accepted_in_any_case() -> None:
    statuses = ["success", "Refunded", "CLOSED", "revoked", "processing", "failed"]
    batch = run([{**BASE, "status": s} for s in statuses])
    assert batch.records.column("status").to_pylist() == [s.upper() for s in statuses]


@pytest.mark.parametrize(
    ("value", "reason"),
    [("paid", "unknown status 'paid'"), ("", "status is empty"), (" x ", "unknown status 'x'")],
)
def test_unknown_status_is_quarantined(value: str, reason: str) -> None:
    quarantined = problem({**BASE, "status": value})
    assert (quarantined["field"], quarantined["value"], quarantined["reason"]) == (
        "status",
        value,
        reason,
    )


def test_status_from_an_integer_column_is_mapped_as_text() -> None:
    rows = pa.RecordBatch.from_pydict(
        {
            "order_id": ["O1", "O2"],
            "amount": [1, 2],
            "status": pa.array([1, 9], pa.int16()),
            "txn_time": ["2024-03-01 10:00:00"] * 2,
        }
    )
    batch = run(rows, LedgerSettings(status_map={"1": "SUCCESS"}))
    assert batch.records.column("status").to_pylist() == ["SUCCESS"]
    assert batch.quarantined.column("reason").to_pylist() == ["unknown status '9'"]


def test_kind_must_be_pay_or_refund() -> None:
    assert one({**BASE, "kind": "Refund"})["kind"] == "REFUND"
    quarantined = problem({**BASE, "kind": "CHARGEBACK"})
    assert quarantined["reason"] == "unknown kind 'CHARGEBACK'; expected PAY or REFUND"


def test_currency_must_be_three_letters() -> None:
    assert one({**BASE, "currency": "hkd"})["currency"] == "HKD"
    quarantined = problem({**BASE, "currency": "RMB¥"})
    assert quarantined["reason"] == "currency 'RMB¥' is not an ISO 4217 code"


def test_empty_order_id_is_quarantined_without_one() -> None:
    quarantined = problem({**BASE, "order_id": "  "})
    assert quarantined == {
        "source": "ledger.csv",
        "line_no": 2,
        "order_id": None,
        "field": "order_id",
        "value": "  ",
        "reason": "order_id is empty",
    }


def test_order_ids_from_an_integer_column_become_text() -> None:
    rows = pa.RecordBatch.from_pydict(
        {"order_id": [2024030100001], "amount": [1], "status": ["SUCCESS"], "txn_time": [None]}
    )
    quarantined = run(rows).quarantined.to_pylist()
    assert quarantined[0]["order_id"] == "2024030100001"  # quarantined for txn_time


# --- time ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2024-03-01 10:00:00", "2024-03-01 02:00:00"),  # naive: ledger.timezone
        ("2024-03-01T10:00:00", "2024-03-01 02:00:00"),
        ("2024-03-01 10:00:00.5", "2024-03-01 02:00:00.500000"),
        ("2024-03-01 10:00:00.123456789", "2024-03-01 02:00:00.123456"),
        ("2024-03-01T10:00:00+08:00", "2024-03-01 02:00:00"),
        ("2024-03-01T10:00:00Z", "2024-03-01 10:00:00"),
        ("2024-03-01 10:00:00-05:30", "2024-03-01 15:30:00"),
        ("2024-03-01 10:00:00+0800", "2024-03-01 02:00:00"),
        ("2024-03-01 10:00:00+08", "2024-03-01 02:00:00"),  # PostgreSQL's timestamptz text
        ("  2024-03-01 10:00:00.25Z ", "2024-03-01 10:00:00.250000"),
    ],
)
def test_iso_text_times_become_utc(text: str, utc: str) -> None:
    assert one({**BASE, "txn_time": text})["txn_time"] == at_utc(utc)


def test_naive_times_are_read_in_the_ledger_timezone() -> None:
    record = one(BASE, LedgerSettings(timezone="UTC"))
    assert record["txn_time"] == at_utc("2024-03-01 10:00:00")


def test_naive_and_offset_times_may_mix_in_one_batch() -> None:
    times = ["2024-03-01 10:00:00", "2024-03-01T10:00:00Z", "2024-03-01 10:00:00.1234567"]
    batch = run([{**BASE, "txn_time": t} for t in times])
    assert batch.records.column("txn_time").to_pylist() == [
        at_utc("2024-03-01 02:00:00"),
        at_utc("2024-03-01 10:00:00"),
        at_utc("2024-03-01 02:00:00.123456"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "2024-02-30 10:00:00",
        "2024-03-01 24:00:00",
        "2024-03-01 10:60:00",
        "2024/03/01 10:00:00",
        "2024-03-01",
        "2024-03-01 10:00",
        "2024-03-01 10:00:00+25:00",
        "20240301100000",
        "yesterday",
    ],
)
def test_unreadable_times_are_quarantined_among_good_ones(text: str) -> None:
    batch = run([BASE, {**BASE, "order_id": "O2", "txn_time": text}])
    assert batch.records.column("order_id").to_pylist() == ["O1"]
    [quarantined] = batch.quarantined.to_pylist()
    assert (quarantined["line_no"], quarantined["field"]) == (3, "txn_time")
    assert quarantined["reason"] == (
        f"txn_time {text!r} is not a valid ISO 8601 date and time "
        "(YYYY-MM-DD HH:MM:SS[.ffffff][+08:00])"
    )


def test_empty_time_is_quarantined() -> None:
    assert problem({**BASE, "txn_time": ""})["reason"] == "txn_time is empty"


def test_timestamp_columns_naive_ones_in_the_ledger_timezone() -> None:
    local = datetime(2024, 3, 1, 10, 0)
    rows = pa.RecordBatch.from_pydict(
        {
            "order_id": ["O1", "O2", "O3"],
            "amount": [1, 2, 3],
            "status": ["SUCCESS"] * 3,
            "txn_time": pa.array([local, local, None], pa.timestamp("ms")),
        }
    )
    batch = run(rows)
    assert batch.records.column("txn_time").to_pylist() == [at_utc("2024-03-01 02:00:00")] * 2
    assert batch.quarantined.column("reason").to_pylist() == ["txn_time is empty"]


def test_timestamp_columns_with_a_zone_keep_their_instant() -> None:
    aware = datetime(2024, 3, 1, 10, 0, tzinfo=SHANGHAI)
    rows = pa.RecordBatch.from_pydict(
        {
            "order_id": ["O1"],
            "amount": [1],
            "status": ["SUCCESS"],
            "txn_time": pa.array([aware], pa.timestamp("ns", tz="Asia/Shanghai")),
        }
    )
    assert run(rows).records.column("txn_time").to_pylist() == [at_utc("2024-03-01 02:00:00")]


def test_bill_date_is_the_date_in_the_channel_timezone() -> None:
    row = {**BASE, "txn_time": "2024-03-01T00:30:00+08:00"}
    shanghai = run([row]).records.column("bill_date").to_pylist()
    utc = run([row], channel_timezone="UTC").records.column("bill_date").to_pylist()
    assert (shanghai, utc) == ([date(2024, 3, 1)], [date(2024, 2, 29)])


# --- quarantine ------------------------------------------------------------------------------


def test_each_bad_row_is_quarantined_once_for_its_first_problem() -> None:
    rows = [
        BASE,
        {**BASE, "order_id": "O2", "status": "??", "amount": "1.00"},  # status comes first
        {**BASE, "order_id": "", "amount": "x", "txn_time": "never"},  # order_id comes first
        {**BASE, "order_id": "O4", "amount": "1.00", "txn_time": "never"},
        {**BASE, "order_id": "O5"},
    ]
    batch = run(rows, first_line=10)
    assert batch.records.column("line_no").to_pylist() == [10, 14]
    summary = [(r["line_no"], r["order_id"], r["field"]) for r in batch.quarantined.to_pylist()]
    assert summary == [(11, "O2", "status"), (12, None, "order_id"), (13, "O4", "amount")]


def test_rows_rejected_by_the_reader_join_the_quarantine() -> None:
    rows = pa.RecordBatch.from_pylist([BASE])
    rejected = Rejected(line_no=3, value="O2,1", reason="expected 4 fields, found 2", order_id="O2")
    normalizer = Normalizer(source="ledger.csv", channel="wechat", settings=LedgerSettings())
    batch = normalizer.normalize(RawBatch(rows, ordinals(2, 1), (rejected,)))
    assert batch.rows_read == 2
    assert batch.quarantined.to_pylist() == [
        {
            "source": "ledger.csv",
            "line_no": 3,
            "order_id": "O2",
            "field": None,
            "value": "O2,1",
            "reason": "expected 4 fields, found 2",
        }
    ]


ROW_VALUES_NAMES = ["order_id", "amount", "status", "txn_time", "fee"]
ROW_VALUES = st.fixed_dictionaries(
    {
        "order_id": st.sampled_from(["O1", "", " O2 "]),
        "amount": st.sampled_from(["1", "0", "1.00", "-1", "", "x", "99999999999999999999"]),
        "status": st.sampled_from(["SUCCESS", "paid", "unknown", "", "closed"]),
        "txn_time": st.sampled_from(["2024-03-01 10:00:00", "2024-03-01T01:00:00Z", "bad", ""]),
        "fee": st.sampled_from(["", "5", "-5", "0.5"]),
    }
)


@given(st.lists(ROW_VALUES, max_size=30))
def test_good_plus_quarantined_is_every_row_read(rows: list[dict[str, str]]) -> None:
    settings = LedgerSettings(status_map={"paid": "SUCCESS"})
    schema = pa.schema([(name, pa.string()) for name in ROW_VALUES_NAMES])
    batch = run(pa.RecordBatch.from_pylist(rows, schema=schema), settings)
    assert batch.records.num_rows + batch.quarantined.num_rows == len(rows)
    lines = batch.records.column("line_no").to_pylist()
    lines += batch.quarantined.column("line_no").to_pylist()
    assert sorted(lines) == list(range(2, 2 + len(rows)))
