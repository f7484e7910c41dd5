"""Ledger databases: PostgreSQL and MariaDB (real servers, CI starts them) and SQLite.

The server tests are marked ``integration``; they fail, never skip, when a server is down.
The query-translation helpers at the top need no server.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from payrecon.config import LedgerSettings
from payrecon.core.schema import CANONICAL, QUARANTINE
from payrecon.errors import ConfigError, LedgerSourceError
from payrecon.ledger import open_ledger
from payrecon.ledger.sql import (
    MYSQL,
    POSTGRES,
    SQLITE,
    column_to_arrow,
    day_bounds,
    describe_url,
    mask_url,
    mysql_options,
)

PG_URL = "postgresql://postgres@127.0.0.1:5432/payrecon_test"
MYSQL_URL = "mysql://root@127.0.0.1:3306/payrecon_test"
DAY = date(2024, 3, 1)
COLUMNS = {
    "order_id": "out_trade_no",
    "amount": "amount_fen",
    "status": "state",
    "txn_time": "created_at",
    "merchant_id": "mch_id",
    "channel": "pay_channel",
    "fee": "fee_milli",
}
STATUS_MAP = {"paid": "SUCCESS", "refunded": "REFUNDED", "closed": "CLOSED"}


# --- query text, without a server ------------------------------------------------------------


def test_named_parameters_become_each_drivers_placeholders() -> None:
    query = "SELECT * FROM t WHERE a >= :start AND a < :end AND c = :channel AND d = :date"
    assert POSTGRES.bind(query) == (
        "SELECT * FROM t WHERE a >= %(start)s AND a < %(end)s AND c = %(channel)s AND d = %(date)s"
    )
    assert MYSQL.bind(query) == POSTGRES.bind(query)
    assert SQLITE.bind(query) == query


def test_literals_comments_casts_and_percent_signs_are_left_alone() -> None:
    query = (
        "SELECT a::date, ':start' AS s, \"odd:name\", 'it''s :end' FROM t -- :channel\n"
        "WHERE b LIKE 'x%' /* :date */ AND c = :channel"
    )
    assert POSTGRES.bind(query) == (
        "SELECT a::date, ':start' AS s, \"odd:name\", 'it''s :end' FROM t -- :channel\n"
        "WHERE b LIKE 'x%%' /* :date */ AND c = %(channel)s"
    )
    assert SQLITE.bind(query).endswith("LIKE 'x%' /* :date */ AND c = :channel")


def test_mysql_literals_may_escape_quotes_with_backslashes() -> None:
    query = r"SELECT 'it\'s :start' AS s, `a:b` FROM t # :end" + "\nWHERE c = :channel"
    assert MYSQL.bind(query) == (
        r"SELECT 'it\'s :start' AS s, `a:b` FROM t # :end" + "\nWHERE c = %(channel)s"
    )


def test_an_unknown_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=":day"):
        POSTGRES.bind("SELECT * FROM t WHERE d = :day")


def test_identifiers_are_quoted_part_by_part() -> None:
    assert POSTGRES.identifier('ledger.or"ders') == '"ledger"."or""ders"'
    assert MYSQL.identifier("shop.orders") == "`shop`.`orders`"


def test_day_bounds_are_the_channel_day_in_the_ledger_zone() -> None:
    assert day_bounds(DAY, "Asia/Shanghai", "Asia/Shanghai") == (
        datetime(2024, 3, 1),
        datetime(2024, 3, 2),
    )
    assert day_bounds(DAY, "Asia/Shanghai", "UTC") == (
        datetime(2024, 2, 29, 16),
        datetime(2024, 3, 1, 16),
    )


def test_urls_are_shown_without_password() -> None:
    url = "postgresql://app:s%40cret@db.internal:6432/shop?sslmode=require"
    assert mask_url(url) == "postgresql://app:***@db.internal:6432/shop?sslmode=require"
    assert describe_url(url) == "postgresql://db.internal:6432/shop"
    assert mask_url("mysql://root@h/db") == "mysql://root@h/db"


def test_mysql_urls_become_pymysql_options() -> None:
    options = mysql_options("mariadb://app:p%40ss@db:3307/shop?charset=utf8")
    assert options == {
        "host": "db",
        "port": 3307,
        "user": "app",
        "password": "p@ss",
        "database": "shop",
        "charset": "utf8",
    }
    with pytest.raises(ConfigError, match="'ssl'"):
        mysql_options("mysql://db/shop?ssl=1")


def test_values_arrow_cannot_hold_together_fall_back_to_text() -> None:
    assert column_to_arrow((1, "x", None)).to_pylist() == ["1", "x", None]
    assert column_to_arrow((100, 2.5)).to_pylist() == ["100", "2.5"]
    assert column_to_arrow((1.5, None)).to_pylist() == [1.5, None]
    order = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert column_to_arrow((order, b"O2")).to_pylist() == [str(order), "O2"]


@pytest.mark.parametrize(
    "url", ["postgresql://app:topsecret@127.0.0.1:1/x", "mysql://app:topsecret@127.0.0.1:1/x"]
)
def test_an_unreachable_database_names_the_url_without_password(url: str) -> None:
    reader = open_ledger(url, LedgerSettings(table="t"), channel="wechat", day=DAY)
    with pytest.raises(LedgerSourceError, match="cannot connect") as caught:
        list(reader.batches())
    assert "topsecret" not in str(caught.value)
    assert "app:***@127.0.0.1:1" in str(caught.value)


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    reader = open_ledger(f"sqlite:///{path}", LedgerSettings(table="t"), channel="w", day=DAY)
    with pytest.raises(LedgerSourceError, match="cannot connect"):
        list(reader.batches())
    assert not path.exists()


# --- real databases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """One database under test: how to reach it and its SQL spelling."""

    name: str
    url: str
    connect: Callable[[], Any]
    placeholder: str
    timestamp: str
    date_of: str  # SQL for the calendar date of created_at

    def execute(self, sql: str, rows: list[tuple[Any, ...]] | None = None) -> None:
        with closing(self.connect()) as connection:
            cursor = connection.cursor()
            if rows is None:
                cursor.execute(sql)
            else:
                cursor.executemany(sql, rows)
            connection.commit()


def _postgres() -> Any:
    return psycopg.connect(PG_URL)


def _mysql() -> Any:
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", database="payrecon_test")


def backends(tmp_path: Path) -> dict[str, Backend]:
    sqlite_path = tmp_path / "ledger.db"
    return {
        "postgresql": Backend(
            "postgresql", PG_URL, _postgres, "%s", "TIMESTAMP(6)", "CAST(created_at AS DATE)"
        ),
        "mysql": Backend(
            "mysql", MYSQL_URL, _mysql, "%s", "DATETIME(6)", "CAST(created_at AS DATE)"
        ),
        "sqlite": Backend(
            "sqlite",
            f"sqlite:///{sqlite_path}",
            lambda: sqlite3.connect(sqlite_path),
            "?",
            "TEXT",
            "date(created_at)",
        ),
    }


SERVERS = [
    pytest.param("postgresql", marks=pytest.mark.integration),
    pytest.param("mysql", marks=pytest.mark.integration),
    "sqlite",
]


@pytest.fixture(params=SERVERS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return backends(tmp_path)[request.param]


Row = tuple[str, int | None, str, str, str, str, int | None]
DAY_ROWS: list[Row] = [
    ("A1", 100, "paid", "2024-03-01 00:00:00", "1900000109", "wechat", 60),
    ("A2", 250, "refunded", "2024-03-01 12:34:56.789", "1900000109", "wechat", None),
    ("A3", 300, "paid", "2024-03-01 23:59:59.999999", "1900000109", "wechat", 180),
    ("B0", 1, "paid", "2024-02-29 23:59:59.999999", "1900000109", "wechat", None),
    ("B1", 1, "paid", "2024-03-02 00:00:00", "1900000109", "wechat", None),
    ("C1", 700, "paid", "2024-03-01 08:00:00", "2088000000", "alipay", None),
    ("Q1", 500, "weird", "2024-03-01 08:00:00", "1900000109", "wechat", None),
    ("Q2", -5, "paid", "2024-03-01 09:00:00", "1900000109", "wechat", None),
    ("", 10, "paid", "2024-03-01 10:00:00", "1900000109", "wechat", None),
    ("Q4", None, "closed", "2024-03-01 11:00:00", "1900000109", "wechat", None),
]


@pytest.fixture
def table(backend: Backend) -> Iterator[str]:
    """A fresh platform-style orders table, dropped afterwards."""
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    backend.execute(
        f"CREATE TABLE {name} (out_trade_no VARCHAR(64), amount_fen BIGINT,"
        f" state VARCHAR(16), created_at {backend.timestamp}, mch_id VARCHAR(32),"
        " pay_channel VARCHAR(16), fee_milli BIGINT)"
    )
    try:
        yield name
    finally:
        backend.execute(f"DROP TABLE {name}")


def insert(backend: Backend, table: str, rows: list[Row]) -> None:
    marks = ", ".join([backend.placeholder] * 7)
    backend.execute(f"INSERT INTO {table} VALUES ({marks})", list(rows))


def read(
    backend: Backend, settings: LedgerSettings, channel_timezone: str = "Asia/Shanghai"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]]:
    reader = open_ledger(
        backend.url, settings, channel="wechat", day=DAY, channel_timezone=channel_timezone
    )
    records: list[dict[str, Any]] = []
    quarantined: list[dict[str, Any]] = []
    sizes: list[int] = []
    for batch in reader.batches():
        assert batch.records.schema == CANONICAL
        assert batch.quarantined.schema == QUARANTINE
        records += batch.records.to_pylist()
        quarantined += batch.quarantined.to_pylist()
        sizes.append(batch.rows_read)
    assert reader.rows_read == len(records) + len(quarantined) == sum(sizes)
    return records, quarantined, sizes


def by_order(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["order_id"]: row for row in rows}


def check_day(records: list[dict[str, Any]], quarantined: list[dict[str, Any]]) -> None:
    """The day's rows of DAY_ROWS: three good ones, four quarantined, none outside the day."""
    good = by_order(records)
    assert sorted(good) == ["A1", "A2", "A3"]
    assert good["A1"]["txn_time"] == datetime(2024, 2, 29, 16, 0, tzinfo=UTC)
    assert good["A3"]["txn_time"] == datetime(2024, 3, 1, 15, 59, 59, 999999, tzinfo=UTC)
    assert good["A2"]["status"] == "REFUNDED"
    assert (good["A1"]["amount"], good["A1"]["fee"], good["A2"]["fee"]) == (100, 60, None)
    assert {r["bill_date"] for r in records} == {DAY}
    assert {r["merchant_id"] for r in records} == {"1900000109"}
    assert {(r["channel"], r["kind"], r["currency"]) for r in records} == {("wechat", "PAY", "CNY")}
    reasons = {(q["order_id"], q["field"], q["reason"]) for q in quarantined}
    assert reasons == {
        ("Q1", "status", "unknown status 'weird'"),
        ("Q2", "amount", "amount '-5' is negative; expected an integer in minor units (分)"),
        (None, "order_id", "order_id is empty"),
        ("Q4", "amount", "amount is empty"),
    }
    lines = sorted(r["line_no"] for r in records + quarantined)
    assert lines == list(range(1, len(lines) + 1))


def test_table_and_columns_read_one_channel_day(backend: Backend, table: str) -> None:
    insert(backend, table, DAY_ROWS)
    settings = LedgerSettings(table=table, columns=COLUMNS, status_map=STATUS_MAP)
    records, quarantined, _ = read(backend, settings)
    check_day(records, quarantined)  # C1 is alipay's: the table read keeps this channel's
    assert {r["source"] for r in records} == {f"{describe_url(backend.url)}:{table}"}


def test_a_configured_query_reads_with_named_parameters(backend: Backend, table: str) -> None:
    insert(backend, table, DAY_ROWS)
    query = (
        "SELECT out_trade_no AS order_id, amount_fen AS amount, state, created_at AS txn_time,"
        f" mch_id AS merchant_id, fee_milli AS fee FROM {table}"
        " WHERE created_at >= :start AND created_at < :end AND pay_channel = :channel"
        " ORDER BY created_at"
    )
    settings = LedgerSettings(query=query, columns={"status": "state"}, status_map=STATUS_MAP)
    records, quarantined, _ = read(backend, settings)
    check_day(records, quarantined)
    assert records[0]["source"].endswith(":query")
    assert [r["order_id"] for r in records] == ["A1", "A2", "A3"]  # line_no follows the result


def test_the_date_parameter_is_the_accounting_day(backend: Backend, table: str) -> None:
    insert(backend, table, DAY_ROWS)
    query = (
        "SELECT out_trade_no AS order_id, amount_fen AS amount, state AS status,"
        f" created_at AS txn_time FROM {table}"
        f" WHERE {backend.date_of} = :date AND out_trade_no LIKE 'A%'"
    )
    settings = LedgerSettings(query=query, status_map=STATUS_MAP)
    records, quarantined, _ = read(backend, settings)
    assert (sorted(by_order(records)), quarantined) == (["A1", "A2", "A3"], [])


def test_bounds_follow_the_channel_day_when_the_ledger_writes_utc(
    backend: Backend, table: str
) -> None:
    rows: list[Row] = [
        ("U0", 1, "paid", "2024-02-29 15:59:59.999999", "m", "wechat", None),  # 23:59:59 CST
        ("U1", 1, "paid", "2024-02-29 16:00:00", "m", "wechat", None),  # 00:00 CST on DAY
        ("U2", 1, "paid", "2024-03-01 15:59:59", "m", "wechat", None),
        ("U3", 1, "paid", "2024-03-01 16:00:00", "m", "wechat", None),  # the next day
    ]
    insert(backend, table, rows)
    settings = LedgerSettings(table=table, columns=COLUMNS, status_map=STATUS_MAP, timezone="UTC")
    records, _, _ = read(backend, settings)
    assert sorted(by_order(records)) == ["U1", "U2"]
    assert {r["bill_date"] for r in records} == {DAY}
    assert by_order(records)["U1"]["txn_time"] == datetime(2024, 2, 29, 16, tzinfo=UTC)


def test_thousands_of_rows_stream_in_fetch_size_batches(backend: Backend, table: str) -> None:
    rows: list[Row] = [
        (f"S{i:05d}", i + 1, "paid", f"2024-03-01 {i % 24:02d}:{i % 60:02d}:00", "m", "wechat", i)
        for i in range(3000)
    ]
    rows[1234] = ("S01234", 5, "lost", "2024-03-01 01:00:00", "m", "wechat", None)
    insert(backend, table, rows)
    settings = LedgerSettings(table=table, columns=COLUMNS, status_map=STATUS_MAP, fetch_size=400)
    records, quarantined, sizes = read(backend, settings)
    assert sizes == [400] * 7 + [200]
    assert len(records) == 2999
    assert [(q["order_id"], q["reason"]) for q in quarantined] == [
        ("S01234", "unknown status 'lost'")
    ]
    assert len({r["order_id"] for r in records}) == 2999
    assert sorted(r["line_no"] for r in records + quarantined) == list(range(1, 3001))


@pytest.mark.parametrize("backend", SERVERS[:2], indirect=True)  # SQLite has no DECIMAL
def test_decimal_amounts_need_no_fraction(backend: Backend, table: str) -> None:
    query = (
        "SELECT out_trade_no AS order_id, CAST(amount_fen AS DECIMAL(12, 2)) / 100 AS amount,"
        f" state AS status, created_at AS txn_time FROM {table}"
    )
    insert(backend, table, [("D1", 10000, "paid", "2024-03-01 10:00:00", "m", "wechat", None)])
    insert(backend, table, [("D2", 150, "paid", "2024-03-01 10:00:00", "m", "wechat", None)])
    records, quarantined, _ = read(backend, LedgerSettings(query=query, status_map=STATUS_MAP))
    assert [(r["order_id"], r["amount"]) for r in records] == [("D1", 100)]
    assert [(q["order_id"], q["field"]) for q in quarantined] == [("D2", "amount")]
    assert "has a fraction" in quarantined[0]["reason"]


def test_a_missing_mapped_column_names_it(backend: Backend, table: str) -> None:
    settings = LedgerSettings(table=table, columns={**COLUMNS, "amount": "total_fee"})
    with pytest.raises(LedgerSourceError, match="'total_fee' for 'amount'"):
        read(backend, settings)


def test_a_failing_query_is_a_source_error(backend: Backend, table: str) -> None:
    settings = LedgerSettings(query="SELECT * FROM no_such_ledger_table WHERE x = :date")
    with pytest.raises(LedgerSourceError, match="query failed"):
        read(backend, settings)


@pytest.mark.integration
def test_postgres_timestamptz_columns_compare_and_read_as_instants(tmp_path: Path) -> None:
    backend = backends(tmp_path)["postgresql"]
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    backend.execute(f"CREATE TABLE {name} (order_no TEXT, fen INT, st TEXT, paid_at TIMESTAMPTZ)")
    try:
        backend.execute(
            f"INSERT INTO {name} VALUES (%s, %s, %s, %s)",
            [
                ("T0", 1, "SUCCESS", "2024-02-29 15:59:59+00"),  # 23:59:59 in Shanghai
                ("T1", 2, "SUCCESS", "2024-03-01 00:00:00+08"),
                ("T2", 3, "SUCCESS", "2024-03-01 15:59:59.5+00"),
            ],
        )
        columns = {"order_id": "order_no", "amount": "fen", "status": "st", "txn_time": "paid_at"}
        records, _, _ = read(backend, LedgerSettings(table=name, columns=columns))
    finally:
        backend.execute(f"DROP TABLE {name}")
    assert [
        (r["order_id"], r["txn_time"]) for r in sorted(records, key=lambda r: r["order_id"])
    ] == [
        ("T1", datetime(2024, 2, 29, 16, tzinfo=UTC)),
        ("T2", datetime(2024, 3, 1, 15, 59, 59, 500000, tzinfo=UTC)),
    ]


@pytest.mark.integration
@pytest.mark.parametrize("backend", SERVERS[:1], indirect=True)
def test_postgres_streams_through_a_server_side_cursor(backend: Backend, table: str) -> None:
    rows: list[Row] = [
        (f"S{i}", 1, "paid", "2024-03-01 10:00:00", "m", "wechat", 0) for i in range(500)
    ]
    insert(backend, table, rows)
    settings = LedgerSettings(table=table, columns=COLUMNS, status_map=STATUS_MAP, fetch_size=100)
    reader = open_ledger(PG_URL, settings, channel="wechat", day=DAY)
    batches = reader.batches()
    try:
        assert next(batches).records.num_rows == 100
        with psycopg.connect(PG_URL) as other:
            running = other.execute(
                "SELECT query FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND query LIKE %s",
                ["%payrecon_ledger%"],
            ).fetchall()
    finally:
        batches.close()
    assert [query for (query,) in running] == ['FETCH FORWARD 100 FROM "payrecon_ledger"']
