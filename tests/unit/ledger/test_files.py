"""Ledger files (CSV, Parquet) and choosing a reader for a ledger location."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from payrecon.config import LedgerSettings
from payrecon.core.schema import CANONICAL, QUARANTINE
from payrecon.errors import ConfigError, LedgerSourceError
from payrecon.ledger import (
    CsvLedgerReader,
    LedgerReader,
    MysqlLedgerReader,
    ParquetLedgerReader,
    PostgresLedgerReader,
    SqliteLedgerReader,
    open_ledger,
)

DAY = date(2024, 3, 1)
HEADER = "order_id,amount,status,txn_time"


def write(tmp_path: Path, text: str, name: str = "ledger.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def read_all(reader: LedgerReader) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    quarantined: list[dict[str, Any]] = []
    for batch in reader.batches():
        assert batch.records.schema == CANONICAL
        assert batch.quarantined.schema == QUARANTINE
        records += batch.records.to_pylist()
        quarantined += batch.quarantined.to_pylist()
    return records, quarantined


def csv_reader(
    path: Path, settings: LedgerSettings | None = None, **options: Any
) -> CsvLedgerReader:
    return CsvLedgerReader(path, settings or LedgerSettings(), channel="wechat", day=DAY, **options)


def lines_of(rows: list[dict[str, Any]]) -> list[tuple[str | None, int]]:
    return [(row["order_id"], row["line_no"]) for row in rows]


# --- CSV -------------------------------------------------------------------------------------


def test_csv_rows_become_canonical_records_numbered_by_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "merchant_id,order_id,amount,status,txn_time,fee,remark\n"
        "1900000109,O1,100,SUCCESS,2024-03-01 10:00:00,600,first\n"
        "1900000109,O2,250,paid,2024-03-01T23:59:59+08:00,,\n",
    )
    records, quarantined = read_all(
        csv_reader(path, LedgerSettings(status_map={"paid": "SUCCESS"}))
    )
    assert quarantined == []
    assert records[0] == {
        "channel": "wechat",
        "merchant_id": "1900000109",
        "kind": "PAY",
        "order_id": "O1",
        "origin_order_id": None,
        "channel_txn_id": None,
        "status": "SUCCESS",
        "amount": 100,
        "order_amount": None,
        "coupon_amount": None,
        "fee": 600,
        "currency": "CNY",
        "txn_time": datetime(2024, 3, 1, 2, 0, tzinfo=UTC),
        "bill_date": DAY,
        "source": str(path),
        "line_no": 2,
    }
    assert (records[1]["line_no"], records[1]["fee"], records[1]["bill_date"]) == (3, None, DAY)


def test_quoted_fields_keep_commas_quotes_and_line_breaks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "order_id,amount,status,txn_time,remark\n"
        '"O,1",100,SUCCESS,2024-03-01 10:00:00,"say ""hi"""\n'
        'O2,200,SUCCESS,2024-03-01 10:00:00,"two\nlines"\n'
        '"O3",300,"SUCCESS","2024-03-01 10:00:00",plain\n',
    )
    records, quarantined = read_all(csv_reader(path))
    assert quarantined == []
    assert lines_of(records) == [("O,1", 2), ("O2", 3), ("O3", 5)]


def test_quarantine_names_the_physical_line_after_multi_line_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "order_id,remark,amount,status,txn_time\n"
        'O1,"a\nb\nc",100,SUCCESS,2024-03-01 10:00:00\n'
        "O2,,1.00,SUCCESS,2024-03-01 10:00:00\n"
        "O3,,300,sold,2024-03-01 10:00:00\n",
    )
    records, quarantined = read_all(csv_reader(path))
    assert lines_of(records) == [("O1", 2)]
    assert [(q["line_no"], q["field"], q["value"]) for q in quarantined] == [
        (5, "amount", "1.00"),
        (6, "status", "sold"),
    ]
    assert quarantined[1]["reason"] == "unknown status 'sold'"


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEADER}\n\nO1,1,SUCCESS,2024-03-01 10:00:00\n\n\nO2,2,SUCCESS,2024-03-01 10:00:00\n\n",
    )
    records, quarantined = read_all(csv_reader(path))
    assert (lines_of(records), quarantined) == ([("O1", 3), ("O2", 6)], [])


def test_a_line_with_the_wrong_number_of_fields_is_quarantined(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEADER}\n"
        "O1,1,SUCCESS,2024-03-01 10:00:00\n"
        "O2,2\n"
        "O3,3,SUCCESS,2024-03-01 10:00:00,extra\n"
        "O4,4,SUCCESS,2024-03-01 10:00:00\n",
    )
    records, quarantined = read_all(csv_reader(path))
    assert lines_of(records) == [("O1", 2), ("O4", 5)]
    assert quarantined == [
        {
            "source": str(path),
            "line_no": 3,
            "order_id": "O2",
            "field": None,
            "value": "O2,2",
            "reason": "expected 4 fields, found 2",
        },
        {
            "source": str(path),
            "line_no": 4,
            "order_id": "O3",
            "field": None,
            "value": "O3,3,SUCCESS,2024-03-01 10:00:00,extra",
            "reason": "expected 4 fields, found 5",
        },
    ]


def test_a_malformed_last_line_is_quarantined_too(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\nO1,1,SUCCESS,2024-03-01 10:00:00\nO2\n")
    records, quarantined = read_all(csv_reader(path))
    assert lines_of(records) == [("O1", 2)]
    assert lines_of(quarantined) == [("O2", 3)]


def test_bom_crlf_padding_and_column_order_do_not_matter(tmp_path: Path) -> None:
    path = tmp_path / "ledger.csv"
    path.write_bytes(
        b"\xef\xbb\xbfstatus, txn_time ,amount,order_id\r\n"
        b"SUCCESS,2024-03-01 10:00:00,100,O1\r\n"
        b"SUCCESS,2024-03-01 11:00:00,200,O2\r\n"
    )
    records, _ = read_all(csv_reader(path))
    assert [(r["order_id"], r["amount"], r["line_no"]) for r in records] == [
        ("O1", 100, 2),
        ("O2", 200, 3),
    ]


@pytest.mark.parametrize("missing", ["order_id", "amount", "status", "txn_time"])
def test_a_missing_required_column_names_the_file_and_column(tmp_path: Path, missing: str) -> None:
    columns = [name for name in HEADER.split(",") if name != missing]
    path = write(tmp_path, ",".join(columns) + "\n" + ",".join("x" for _ in columns) + "\n")
    with pytest.raises(LedgerSourceError) as caught:
        read_all(csv_reader(path))
    assert str(path) in str(caught.value)
    assert repr(missing) in str(caught.value)


def test_an_empty_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerSourceError, match="no header"):
        read_all(csv_reader(write(tmp_path, "")))


def test_a_column_given_twice_is_a_source_error(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER},amount\nO1,1,SUCCESS,2024-03-01 10:00:00,2\n")
    with pytest.raises(LedgerSourceError, match="'amount' appears twice"):
        read_all(csv_reader(path))


def test_text_that_is_not_utf8_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.csv"
    path.write_bytes(
        f"{HEADER}\nO1,1,SUCCESS,2024-03-01 10:00:00\n".encode()
        + "订单,1,SUCCESS,x\n".encode("gbk")
    )
    with pytest.raises(LedgerSourceError, match=str(path)):
        read_all(csv_reader(path))


def test_a_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerSourceError, match="no such ledger file"):
        csv_reader(tmp_path / "absent.csv")


def random_ledger(rng: random.Random, rows: int) -> str:
    """A CSV whose rows are good, bad, blank, malformed or span several lines."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["order_id", "amount", "status", "txn_time", "remark"])
    for i in range(rows):
        shape = rng.random()
        if shape < 0.05:
            out.write("\n")
            continue
        amount = rng.choice(["100", "100", "100", "1.00", ""])
        remark = rng.choice(["", "plain", "a,b", "multi\nline", "x\n\ny", 'q"uote'])
        fields = [f"O{i}", amount, "SUCCESS", "2024-03-01 10:00:00", remark]
        if shape < 0.1:
            fields = fields[: rng.randint(1, 3)]
        elif shape < 0.12:
            fields.append("extra\nfield")
        writer.writerow(fields)
    return out.getvalue()


def expected_lines(text: str) -> dict[str, int]:
    """Order id -> the physical line its record starts on, per Python's csv module."""
    reader = csv.reader(io.StringIO(text))
    next(reader)
    starts: dict[str, int] = {}
    previous = reader.line_num
    for fields in reader:
        if fields:
            starts[fields[0]] = previous + 1
        previous = reader.line_num
    return starts


@pytest.mark.parametrize("seed", range(8))
def test_line_numbers_stay_exact_across_small_blocks(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    text = random_ledger(rng, 400)
    path = write(tmp_path, text)
    reader = csv_reader(path)
    reader.block_size = rng.choice([256, 1000, 4096])
    batches = list(reader.batches())
    assert len(batches) > 3
    got = [(r["order_id"], r["line_no"]) for b in batches for r in b.records.to_pylist()]
    got += [(r["order_id"], r["line_no"]) for b in batches for r in b.quarantined.to_pylist()]
    expected = expected_lines(text)
    assert sorted(got) == sorted(expected.items())
    assert reader.rows_read == len(expected)


def test_progress_reports_every_row_read(tmp_path: Path) -> None:
    rows = "".join(f"O{i},{i % 3 - 1},SUCCESS,2024-03-01 10:00:00\n" for i in range(300))
    path = write(tmp_path, f"{HEADER}\n{rows}")
    reported: list[int] = []
    reader = csv_reader(path, on_progress=reported.append)
    reader.block_size = 1024
    records, quarantined = read_all(reader)
    assert len(reported) > 1
    assert sum(reported) == reader.rows_read == 300
    assert (len(records), len(quarantined)) == (200, 100)  # amounts -1 are negative


# --- Parquet ---------------------------------------------------------------------------------


def write_parquet(tmp_path: Path, table: pa.Table, name: str = "ledger.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(table, path, row_group_size=7)
    return path


def test_parquet_typed_columns_and_row_numbers(tmp_path: Path) -> None:
    n = 25
    table = pa.table(
        {
            "order_id": [f"O{i}" for i in range(n)],
            "amount": pa.array([-1 if i == 10 else 100 + i for i in range(n)], pa.int64()),
            "status": ["SUCCESS"] * n,
            "txn_time": pa.array([datetime(2024, 3, 1, 10, 0)] * n, pa.timestamp("us")),
            "fee": pa.array([None] * n, pa.int64()),
            "ignored": [1.5] * n,
        }
    )
    path = write_parquet(tmp_path, table)
    reader = ParquetLedgerReader(path, LedgerSettings(fetch_size=10), channel="wechat", day=DAY)
    batches = list(reader.batches())
    assert len(batches) == 3
    records = [r for b in batches for r in b.records.to_pylist()]
    quarantined = [r for b in batches for r in b.quarantined.to_pylist()]
    assert [r["line_no"] for r in records] == [i + 1 for i in range(n) if i != 10]
    assert records[0]["txn_time"] == datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
    assert records[0]["fee"] is None
    assert lines_of(quarantined) == [("O10", 11)]
    assert reader.rows_read == n


def test_parquet_with_text_columns_is_judged_like_csv(tmp_path: Path) -> None:
    table = pa.table(
        {
            "order_id": ["O1", "O2"],
            "amount": ["100", "1.00"],
            "status": ["SUCCESS", "SUCCESS"],
            "txn_time": ["2024-03-01T10:00:00Z", "2024-03-01 10:00:00"],
        }
    )
    reader = ParquetLedgerReader(
        write_parquet(tmp_path, table), LedgerSettings(), channel="wechat", day=DAY
    )
    records, quarantined = read_all(reader)
    assert lines_of(records) == [("O1", 1)]
    assert [(q["line_no"], q["field"]) for q in quarantined] == [(2, "amount")]


def test_parquet_missing_a_required_column_names_file_and_column(tmp_path: Path) -> None:
    path = write_parquet(tmp_path, pa.table({"order_id": ["O1"], "amount": [1], "status": ["x"]}))
    reader = ParquetLedgerReader(path, LedgerSettings(), channel="wechat", day=DAY)
    with pytest.raises(LedgerSourceError, match=r"ledger\.parquet.*'txn_time'"):
        read_all(reader)


def test_a_file_that_is_not_parquet_is_a_source_error(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n", name="ledger.parquet")
    reader = ParquetLedgerReader(path, LedgerSettings(), channel="wechat", day=DAY)
    with pytest.raises(LedgerSourceError, match="not a readable Parquet file"):
        read_all(reader)


# --- open_ledger -------------------------------------------------------------------------------


def open_at(location: str, settings: LedgerSettings | None = None) -> LedgerReader:
    return open_ledger(location, settings or LedgerSettings(table="t"), channel="wechat", day=DAY)


@pytest.mark.parametrize(
    ("name", "reader"),
    [("l.csv", CsvLedgerReader), ("L.CSV", CsvLedgerReader), ("l.parquet", ParquetLedgerReader)],
)
def test_open_ledger_picks_the_file_reader_by_suffix(
    tmp_path: Path, name: str, reader: type[LedgerReader]
) -> None:
    path = write(tmp_path, f"{HEADER}\n", name=name)
    opened = open_at(str(path))
    assert type(opened) is reader
    assert opened.source == str(path)


@pytest.mark.parametrize(
    ("url", "reader"),
    [
        ("postgresql://u:secret@db.internal:5432/shop", PostgresLedgerReader),
        ("postgres://db/shop", PostgresLedgerReader),
        ("mysql://root@127.0.0.1/shop", MysqlLedgerReader),
        ("mariadb://root:pw@127.0.0.1:3307/shop", MysqlLedgerReader),
        ("sqlite:///ledger.db", SqliteLedgerReader),
        ("sqlite:////var/data/ledger.db", SqliteLedgerReader),
    ],
)
def test_open_ledger_picks_the_database_reader_without_connecting(
    url: str, reader: type[LedgerReader]
) -> None:
    opened = open_at(url)
    assert type(opened) is reader
    assert "secret" not in opened.source
    assert "pw" not in opened.source
    assert opened.source.endswith(":t")


@pytest.mark.parametrize(
    "location", ["ftp://host/ledger.csv", "sqlite://ledger.db", "ledger.txt", "ledger"]
)
def test_open_ledger_refuses_other_locations(location: str) -> None:
    with pytest.raises(LedgerSourceError, match="unsupported ledger"):
        open_at(location)


def test_a_database_without_query_or_table_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"postgresql://u:\*\*\*@db/shop"):
        open_at("postgresql://u:secret@db/shop", LedgerSettings())


def test_an_unknown_time_zone_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n")
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        open_at(str(path), LedgerSettings(timezone="Mars/Olympus"))
