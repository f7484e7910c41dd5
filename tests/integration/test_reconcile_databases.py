"""End to end: the platform's ledger in a real PostgreSQL / MariaDB table, in its own shape.

A generated day's ``ledger.csv`` is loaded into a fresh table with platform column names,
types and status codes (plus rows of other days and of another channel that the read must
leave out), read through ``ledger.query`` or ``ledger.table`` + ``ledger.columns``, and
reconciled against the day's real-format bill: the outcomes must be the generator's truth.
The servers must be up (``make services``): these tests fail, never skip, without them.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg
import pyarrow.parquet as pq
import pymysql
import pytest

from payrecon.cli import main
from payrecon.config import LedgerSettings, Settings
from payrecon.core.outcomes import Outcome
from payrecon.generator import GeneratedDay, generate_day
from payrecon.ledger.sql import describe_url
from payrecon.service.reconcile import ReconcileRequest, RunResult, run_reconciliation

pytestmark = pytest.mark.integration

PG_URL = "postgresql://postgres@127.0.0.1:5432/payrecon_test"
MYSQL_URL = "mysql://root@127.0.0.1:3306/payrecon_test"
DAY = date(2024, 3, 1)
SHANGHAI = ZoneInfo("Asia/Shanghai")
BATCH = 128  # rows per COPY / executemany: several batches per table
FETCH_SIZE = 64  # the reader streams each day in several chunks; line numbers run on

Channel = Literal["wechat", "alipay"]
Mode = Literal["query", "table"]
TimeColumn = Literal["local", "zoned"]

# canonical name -> the platform's column (currency keeps its canonical name, unmapped)
COLUMNS = {
    "order_id": "out_trade_no",
    "origin_order_id": "refund_of",
    "channel_txn_id": "transaction_id",
    "channel": "pay_channel",
    "merchant_id": "mch_id",
    "kind": "biz_type",
    "status": "state",
    "amount": "amount_fen",
    "fee": "fee_milli",
    "txn_time": "paid_at",
}
# The platform's codes; none is a canonical status, so every row goes through the map.
STATUS_MAP = {
    "paid": "SUCCESS",
    "refund_ok": "SUCCESS",
    "refunded": "REFUNDED",
    "canceled": "CLOSED",
    "pending": "PROCESSING",
}
PLATFORM_STATE = {"REFUNDED": "refunded", "CLOSED": "canceled", "PROCESSING": "pending"}
TABLE_COLUMNS = (
    "id",
    "out_trade_no",
    "refund_of",
    "transaction_id",
    "pay_channel",
    "mch_id",
    "biz_type",
    "state",
    "amount_fen",
    "fee_milli",
    "currency",
    "paid_at",
)
QUERY = (
    "SELECT out_trade_no, refund_of, transaction_id, pay_channel, mch_id, biz_type, state,"
    " amount_fen, fee_milli, currency, paid_at FROM {table}"
    " WHERE paid_at >= :start AND paid_at < :end AND pay_channel = :channel ORDER BY id"
)


# --- the platform's table ---------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One platform ledger row; ``paid_at`` is an instant (aware)."""

    out_trade_no: str
    refund_of: str | None
    transaction_id: str | None
    pay_channel: str
    mch_id: str
    biz_type: str
    state: str
    amount_fen: int
    fee_milli: int | None
    currency: str
    paid_at: datetime


def platform_rows(made: GeneratedDay) -> list[Row]:
    """``ledger.csv`` (canonical names and values) as the platform stores it."""
    with made.ledger.open(encoding="utf-8", newline="") as handle:
        return [
            Row(
                out_trade_no=r["order_id"],
                refund_of=r["origin_order_id"] or None,
                transaction_id=r["channel_txn_id"] or None,
                pay_channel=r["channel"],
                mch_id=r["merchant_id"],
                biz_type=r["kind"].lower(),
                state=platform_state(r["kind"], r["status"]),
                amount_fen=int(r["amount"]),
                fee_milli=int(r["fee"]) if r["fee"] else None,
                currency=r["currency"],
                paid_at=datetime.fromisoformat(r["txn_time"]),
            )
            for r in csv.DictReader(handle)
        ]


def platform_state(kind: str, status: str) -> str:
    if status == "SUCCESS":
        return "paid" if kind == "PAY" else "refund_ok"
    return PLATFORM_STATE[status]


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def outsiders(template: Row) -> list[Row]:
    """Valid rows the day's read must leave out: the days around it, another channel."""
    other = "alipay" if template.pay_channel == "wechat" else "wechat"
    times = {
        "S20240229000000000001": local("2024-02-29 23:59:59.999999"),
        "S20240302000000000002": local("2024-03-02 00:00:00"),
        "S20240305000000000003": local("2024-03-05 12:00:00"),
        "S20240228000000000004": local("2024-02-28 09:30:00"),
    }
    rows = [replace(template, out_trade_no=o, paid_at=t) for o, t in times.items()]
    on_the_day = local("2024-03-01 12:00:00")
    rows.append(
        replace(template, out_trade_no="OTHER-CHANNEL-1", pay_channel=other, paid_at=on_the_day)
    )
    return rows


def interleave(day_rows: list[Row], others: list[Row]) -> list[Row]:
    """The day's rows in order with ``others`` spread among them (first, middle, last...)."""
    rows = list(day_rows)
    for i, row in enumerate(others):
        rows.insert(i * len(rows) // max(len(others) - 1, 1), row)
    return rows


@dataclass(frozen=True)
class Server:
    """A database under test: how to reach it, its time types, how it bulk-loads."""

    name: str
    url: str
    local_time: str  # wall-clock time in Asia/Shanghai, no zone
    zoned_time: str  # an instant; written here from a UTC session

    def connect(self) -> Any:
        if self.name == "postgresql":
            return psycopg.connect(self.url)
        return pymysql.connect(host="127.0.0.1", port=3306, user="root", database="payrecon_test")

    def execute(self, sql: str) -> None:
        with closing(self.connect()) as connection:
            with closing(connection.cursor()) as cursor:
                cursor.execute(sql)
            connection.commit()

    def create(self, table: str, time: TimeColumn) -> None:
        kind = self.local_time if time == "local" else self.zoned_time
        self.execute(
            f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, out_trade_no VARCHAR(64) NOT NULL,"
            " refund_of VARCHAR(64), transaction_id VARCHAR(64), pay_channel VARCHAR(16) NOT NULL,"
            " mch_id VARCHAR(32), biz_type VARCHAR(8) NOT NULL, state VARCHAR(16) NOT NULL,"
            " amount_fen BIGINT NOT NULL, fee_milli BIGINT NULL, currency CHAR(3) NOT NULL,"
            f" paid_at {kind} NULL)"
        )

    def insert(self, table: str, rows: list[Row], time: TimeColumn) -> None:
        """``rows`` with ids 1, 2, ... in order, ``BATCH`` at a time (COPY or executemany)."""
        values = [
            (
                number,
                r.out_trade_no,
                r.refund_of,
                r.transaction_id,
                r.pay_channel,
                r.mch_id,
                r.biz_type,
                r.state,
                r.amount_fen,
                r.fee_milli,
                r.currency,
                self._time(r.paid_at, time),
            )
            for number, r in enumerate(rows, start=1)
        ]
        batches = [values[i : i + BATCH] for i in range(0, len(values), BATCH)]
        names = ", ".join(TABLE_COLUMNS)
        with closing(self.connect()) as connection:
            if self.name == "postgresql":
                with connection.cursor() as cursor:
                    for batch in batches:
                        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                            for value in batch:
                                copy.write_row(value)
            else:
                marks = ", ".join(["%s"] * len(TABLE_COLUMNS))
                with closing(connection.cursor()) as cursor:
                    cursor.execute("SET time_zone = '+00:00'")  # TIMESTAMP input is UTC
                    for batch in batches:
                        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", batch)
            connection.commit()

    def _time(self, moment: datetime, time: TimeColumn) -> datetime:
        if time == "local":
            return moment.astimezone(SHANGHAI).replace(tzinfo=None)
        instant = moment.astimezone(UTC)
        return instant if self.name == "postgresql" else instant.replace(tzinfo=None)


SERVERS = {
    "postgresql": Server("postgresql", PG_URL, "TIMESTAMP(6)", "TIMESTAMPTZ"),
    "mysql": Server("mysql", MYSQL_URL, "DATETIME(6)", "TIMESTAMP(6)"),
}


class Tables:
    """Creates uniquely named tables on one server; the fixture drops them all."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.created: list[str] = []

    def load(self, rows: list[Row], time: TimeColumn) -> str:
        name = f"platform_orders_{uuid.uuid4().hex[:12]}"
        self.server.create(name, time)
        self.created.append(name)
        self.server.insert(name, rows, time)
        return name

    def drop_all(self) -> None:
        for name in self.created:
            self.server.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture(params=list(SERVERS))
def tables(request: pytest.FixtureRequest) -> Iterator[Tables]:
    made = Tables(SERVERS[request.param])
    try:
        yield made
    finally:
        made.drop_all()


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Channel, float], GeneratedDay]:
    """Generated days (bill, ledger.csv, truth), made once per module and reused."""
    cache: dict[tuple[Channel, float], GeneratedDay] = {}

    def day(channel: Channel, rate: float) -> GeneratedDay:
        if (channel, rate) not in cache:
            out = tmp_path_factory.mktemp(f"{channel}-{rate}")
            cache[channel, rate] = generate_day(
                channel, DAY, 400, out, seed=20240301, discrepancy_rate=rate
            )
        return cache[channel, rate]

    return day


# --- reading the run's outputs ----------------------------------------------------------


def outcome_rows(path: Path) -> Counter[tuple[str, str, str]]:
    table = pq.read_table(path, columns=["kind", "order_id", "outcome"])
    return Counter(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


def ledger_sides(outcomes: Path) -> list[dict[str, Any]]:
    """The ledger records the outcome rows carry, one per record the run read."""
    rows = pq.read_table(outcomes).to_pylist()
    return [row for row in rows if row["ledger_source"] is not None]


def expected_record(row: Row) -> tuple[Any, ...]:
    status = STATUS_MAP[row.state]
    return (
        row.biz_type.upper(), row.out_trade_no, row.refund_of, row.transaction_id,
        row.pay_channel, row.mch_id, status, row.amount_fen, row.fee_milli, row.currency,
        row.paid_at.astimezone(UTC),
    )  # fmt: skip


def read_record(side: dict[str, Any]) -> tuple[Any, ...]:
    names = (
        "kind", "order_id", "ledger_origin_order_id", "ledger_channel_txn_id", "channel",
        "ledger_merchant_id", "ledger_status", "ledger_amount", "ledger_fee", "ledger_currency",
        "ledger_txn_time",
    )  # fmt: skip
    return tuple(side[name] for name in names)


def check_run(
    result: RunResult,
    made: GeneratedDay,
    day_rows: list[Row],
    others: list[Row],
    source: str,
    *,
    ordered: bool,
    quarantined_lines: tuple[int, ...] = (),
) -> None:
    """Outcomes are the truth; each of the day's rows arrived once, whole; no other row did.

    ``quarantined_lines`` are the result's lines that held quarantined rows, not records.
    """
    outcomes = result.out / "outcomes.parquet"
    assert outcome_rows(outcomes) == outcome_rows(made.truth)
    assert result.summary["rows_in"] == {"ledger": len(day_rows), "channel": made.rows, "pool": 0}
    sides = ledger_sides(outcomes)
    assert {side["ledger_source"] for side in sides} == {source}
    assert Counter(read_record(side) for side in sides) == Counter(map(expected_record, day_rows))
    lines = sorted(side["ledger_line_no"] for side in sides)
    read = len(day_rows) + len(quarantined_lines)
    assert lines == [n for n in range(1, read + 1) if n not in quarantined_lines]
    if ordered:  # ORDER BY id: line n is the day's n-th row as inserted
        by_line = {side["ledger_line_no"]: side["order_id"] for side in sides}
        assert [by_line[n] for n in lines] == [row.out_trade_no for row in day_rows]
    found = set(pq.read_table(outcomes, columns=["order_id"]).column(0).to_pylist())
    assert found.isdisjoint(row.out_trade_no for row in others)


def ledger_settings(mode: Mode, table: str) -> LedgerSettings:
    if mode == "query":
        return LedgerSettings(
            query=QUERY.format(table=table),
            columns=COLUMNS,
            status_map=STATUS_MAP,
            fetch_size=FETCH_SIZE,
        )
    return LedgerSettings(
        table=table, columns=COLUMNS, status_map=STATUS_MAP, fetch_size=FETCH_SIZE
    )


def reconcile(
    tmp_path: Path, made: GeneratedDay, channel: Channel, url: str, ledger: LedgerSettings
) -> RunResult:
    request = ReconcileRequest(
        channel=channel, bills=tuple(made.bills), ledger=url, day=DAY, out=tmp_path / "out"
    )
    return run_reconciliation(request, Settings(home=tmp_path / "home", ledger=ledger))


# --- tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
@pytest.mark.parametrize(
    ("mode", "time"),
    [
        pytest.param("query", "local", id="query-local-time"),
        pytest.param("table", "zoned", id="table-zoned-time"),
    ],
)
def test_a_database_ledger_reconciles_to_the_truth(
    tables: Tables,
    days: Callable[[Channel, float], GeneratedDay],
    tmp_path: Path,
    channel: Channel,
    mode: Mode,
    time: TimeColumn,
) -> None:
    made = days(channel, 0.2)
    day_rows = platform_rows(made)
    others = outsiders(day_rows[0])
    table = tables.load(interleave(day_rows, others), time)

    result = reconcile(tmp_path, made, channel, tables.server.url, ledger_settings(mode, table))

    source = f"{describe_url(tables.server.url)}:{'query' if mode == 'query' else table}"
    check_run(result, made, day_rows, others, source, ordered=mode == "query")
    assert result.summary["quarantined"] == 0
    assert pq.read_table(result.out / "quarantine.parquet").num_rows == 0
    assert result.summary["discrepancies"] > 0  # the day has every kind of discrepancy
    assert not result.clean


@pytest.mark.parametrize(
    ("state", "amount", "field", "value", "reason"),
    [
        pytest.param(
            "chargeback", 100, "status", "chargeback", "unknown status 'chargeback'", id="state"
        ),
        pytest.param(
            "paid",
            -100,
            "amount",
            "-100",
            "amount '-100' is negative; expected an integer in minor units (分)",
            id="negative-amount",
        ),
    ],
)
def test_a_bad_row_is_quarantined_and_the_run_completes(
    tables: Tables,
    days: Callable[[Channel, float], GeneratedDay],
    tmp_path: Path,
    state: str,
    amount: int,
    field: str,
    value: str,
    reason: str,
) -> None:
    made = days("wechat", 0.0)  # a clean day: only the bad row keeps the run from clean
    day_rows = platform_rows(made)
    bad = replace(
        day_rows[0],
        out_trade_no="S20240301BADROW000001",
        state=state,
        amount_fen=amount,
        paid_at=local("2024-03-01 10:00"),
    )
    position = 7
    table = tables.load([*day_rows[:position], bad, *day_rows[position:]], "local")

    result = reconcile(tmp_path, made, "wechat", tables.server.url, ledger_settings("query", table))

    source = f"{describe_url(tables.server.url)}:query"
    check_run(
        result, made, day_rows, [bad], source, ordered=True, quarantined_lines=(position + 1,)
    )
    assert result.summary["quarantined"] == 1
    assert result.summary["discrepancies"] == 0
    assert not result.clean
    assert pq.read_table(result.out / "quarantine.parquet").to_pylist() == [
        {
            "source": source,
            "line_no": position + 1,
            "order_id": bad.out_trade_no,
            "field": field,
            "value": value,
            "reason": reason,
        }
    ]


def toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string


def test_the_cli_reads_the_ledger_section_of_the_config(
    tables: Tables,
    days: Callable[[Channel, float], GeneratedDay],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = days("alipay", 0.2)
    day_rows = platform_rows(made)
    others = outsiders(day_rows[0])
    bad = replace(day_rows[0], out_trade_no="S20240301BADROW000002", state="chargeback")
    table = tables.load([*interleave(day_rows, others), bad], "local")
    config = tmp_path / "payrecon.toml"
    lines = [
        f"home = {toml_string(str(tmp_path / 'home'))}",
        "",
        "[ledger]",
        f"query = {toml_string(QUERY.format(table=table))}",
        'timezone = "Asia/Shanghai"',
        f"fetch_size = {FETCH_SIZE}",
        "",
        "[ledger.columns]",
        *(f"{canonical} = {toml_string(name)}" for canonical, name in COLUMNS.items()),
        "",
        "[ledger.status_map]",
        *(f"{raw} = {toml_string(status)}" for raw, status in STATUS_MAP.items()),
    ]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = ["reconcile", "--channel", "alipay", "--ledger", tables.server.url]
    argv += [arg for bill in made.bills for arg in ("--bill", str(bill))]
    argv += ["--date", DAY.isoformat(), "--out", str(out), "--config", str(config), "--json"]

    code = main(argv)

    printed = capsys.readouterr().out
    assert code == 1
    summary = json.loads(printed)
    assert summary["channel"] == "alipay" and summary["date"] == DAY.isoformat()
    assert summary["rows_in"] == {"ledger": len(day_rows), "channel": made.rows, "pool": 0}
    assert summary["quarantined"] == 1
    truth = Counter(outcome for _, _, outcome in outcome_rows(made.truth).elements())
    assert {o: figures["count"] for o, figures in summary["outcomes"].items()} == {
        o.value: truth[o.value] for o in Outcome
    }
    # stdout adds what the run did to the case store; summary.json is the run's own output.
    assert summary.pop("cases")["opened"] > 0
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == summary
    result = RunResult(summary["run_id"], out, summary)
    source = f"{describe_url(tables.server.url)}:query"
    last = len(day_rows) + 1
    check_run(
        result, made, day_rows, [*others, bad], source, ordered=True, quarantined_lines=(last,)
    )
    quarantine = pq.read_table(out / "quarantine.parquet").to_pylist()
    assert [(q["line_no"], q["order_id"], q["reason"]) for q in quarantine] == [
        (last, bad.out_trade_no, "unknown status 'chargeback'")
    ]
