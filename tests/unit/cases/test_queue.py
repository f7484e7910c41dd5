"""The back-office's case queue: pages, the capped total, filters and orders on SQLite and
PostgreSQL; and (PostgreSQL) that ``payrecon db upgrade`` creates the open queue's partial
indexes of migration 0003 and the default queue query walks them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text

from payrecon.cases.models import DONE_STATES, Case
from payrecon.cases.service import BackOffice, CaseFilter, CaseService, case_row
from payrecon.cases.store import CaseStore
from payrecon.core.workflow import CaseState
from tests.unit.cases.conftest import PG_ADMIN, PG_URL
from tests.unit.test_cli import Cli, cli, home  # noqa: F401  (fixtures)

STATES = [s.value for s in CaseState]
START = datetime(2026, 11, 1, tzinfo=UTC)


def _case(n: int) -> dict[str, Any]:
    return {
        "fingerprint": f"fp{n:06d}",
        "source": "batch",
        "channel": ("wechat", "alipay")[n % 2],
        "run_day": date(2026, 11, 1) + timedelta(days=n % 5),
        "kind": "PAY",
        "order_id": f"o{n}",
        "outcome": ("AMOUNT_MISMATCH", "MISSING_IN_LEDGER", "STATUS_MISMATCH")[n % 3],
        "stake": (n * 7919) % 100_000,
        "currency": "CNY",
        "severity": "low",
        "state": STATES[n % len(STATES)],
        "due_at": START + timedelta(hours=(n * 37) % 200),  # ties on due_at: id decides
        "created_at": START,
        "updated_at": START,
        "version": 1,
        "ledger_record": {"order_id": f"o{n}"},
    }


@pytest.fixture
def office(store: CaseStore) -> BackOffice:
    with store.session() as session:
        session.execute(insert(Case), [_case(n) for n in range(1, 241)])
    return BackOffice(CaseService(store))


def _expected(store: CaseStore, keep: Any, key: Any) -> list[dict[str, Any]]:
    with store.session() as session:
        cases = [c for c in session.execute(select(Case)).scalars() if keep(c)]
        return [case_row(c) for c in sorted(cases, key=key)]


def test_pages_walk_the_open_queue_in_order_with_exact_totals(
    store: CaseStore, office: BackOffice
) -> None:
    expected = _expected(store, lambda c: c.state not in DONE_STATES, lambda c: (c.due_at, c.id))
    assert len(expected) == 150  # 5 of the 8 states are open
    walked: list[dict[str, Any]] = []
    for page in range(4):
        got = office.queue(CaseFilter(open_only=True), limit=40, offset=40 * page)
        assert (got.total, got.more) == (150, False)
        walked += got.cases
    assert walked == expected  # every field as case_row shows it, records left out
    past = office.queue(CaseFilter(open_only=True), limit=40, offset=400)
    assert (past.total, past.more, past.cases) == (150, False, [])


def test_total_is_capped_and_more_says_so(office: BackOffice) -> None:
    capped = office.queue(CaseFilter(open_only=True), limit=10, count_cap=100)
    assert (capped.total, capped.more, len(capped.cases)) == (100, True, 10)
    exact = office.queue(CaseFilter(open_only=True), limit=10, count_cap=150)
    assert (exact.total, exact.more) == (150, False)
    nothing = office.queue(CaseFilter(channel="none"), limit=10)
    assert (nothing.total, nothing.more, nothing.cases) == (0, False, [])


def test_filters_and_orders_agree_with_python(store: CaseStore, office: BackOffice) -> None:
    def keep(c: Case) -> bool:
        return c.channel == "wechat" and c.state == "OPEN" and 10_000 <= c.stake <= 90_000

    expected = _expected(store, keep, lambda c: (-c.stake, -c.id))
    wanted = CaseFilter(channel="wechat", states=("OPEN",), min_stake=10_000, max_stake=90_000)
    first = office.queue(wanted, sort="stake", descending=True, limit=5)
    rest = office.queue(wanted, sort="stake", descending=True, limit=50, offset=5)
    assert first.total == rest.total == len(expected) > 5
    assert first.cases + rest.cases == expected
    overdue = office.queue(CaseFilter(overdue=True), limit=500)
    assert overdue.cases and all(c["state"] not in DONE_STATES for c in overdue.cases)


def test_done_states_are_the_workflows() -> None:
    assert set(DONE_STATES) == {s.value for s in CaseState if s.is_done}


# -- PostgreSQL: the migration and the plan ------------------------------------------------


@pytest.fixture
def pg_schema() -> Iterator[str]:
    import uuid

    import psycopg

    schema = f"queue_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.integration
def test_db_upgrade_creates_the_open_queue_indexes_and_the_queue_uses_them(
    cli: Cli,  # noqa: F811
    pg_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"{PG_URL}?options=-csearch_path%3D{pg_schema}"
    monkeypatch.setenv("PAYRECON_CASES__URL", url)
    upgraded = cli("db", "upgrade")
    assert upgraded.code == 0 and "-> 0003" in upgraded.err, upgraded.err
    with CaseStore(url) as store:
        with store.engine.connect() as connection:
            defined: dict[str, str] = dict(
                connection.execute(
                    text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'cases'")
                ).all()
            )
        for name, key in (
            ("ix_cases_open_due", "due_at, id"),
            ("ix_cases_open_stake", "stake, id"),
        ):
            assert f"({key}) INCLUDE" in defined[name]
            assert "WHERE" in defined[name] and "'RESOLVED'" in defined[name]
        with store.engine.begin() as connection:  # enough rows that an index pays off
            connection.execute(
                text(
                    "INSERT INTO cases (fingerprint, source, channel, run_day, kind, order_id,"
                    " outcome, stake, currency, severity, state, due_at, created_at,"
                    " updated_at, version)"
                    " SELECT md5(n::text), 'batch', 'wechat', DATE '2026-11-01', 'PAY',"
                    " 'o' || n, 'AMOUNT_MISMATCH', n % 1000, 'CNY', 'low',"
                    " (ARRAY['OPEN', 'RESOLVED', 'CLOSED', 'ASSIGNED'])[1 + n % 4],"
                    " TIMESTAMPTZ '2026-11-01 00:00+00' + n * INTERVAL '1 minute',"
                    " now(), now(), 1 FROM generate_series(1, 20000) AS n"
                )
            )
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE cases")
        office = BackOffice(CaseService(store))
        sent: list[tuple[str, Any]] = []

        def capture(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
            sent.append((statement, params))

        event.listen(store.engine, "before_cursor_execute", capture)
        got = office.queue(CaseFilter(open_only=True), limit=50)
        event.remove(store.engine, "before_cursor_execute", capture)
        assert (got.total, got.more, len(got.cases)) == (1000, True, 50)
        [(statement, params)] = [s for s in sent if "FROM cases" in s[0]]
        with store.engine.connect() as connection:
            plan = "\n".join(
                row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, params)
            )
    assert "Index Only Scan using ix_cases_open_due" in plan, plan
