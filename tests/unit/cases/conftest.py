"""Case-store fixtures: the store on SQLite and (integration) PostgreSQL, users, a clock,
and a run's ``outcomes.parquet`` built by the real match definition on DuckDB."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from payrecon.cases.policy import CasePolicy
from payrecon.cases.service import CaseService
from payrecon.cases.store import CaseStore
from payrecon.config import EngineSettings
from payrecon.core.outcomes import POOL
from payrecon.core.rules import MatchRules
from payrecon.core.schema import CANONICAL
from payrecon.core.workflow import Role
from payrecon.engines.definition import MatchDefinition
from payrecon.engines.duckdb import DuckDBEngine
from tests.conftest import DAY, record

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/payrecon_test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/payrecon_test"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cases.sqlite'}"
        return
    import psycopg

    schema = f"cases_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(store_url: str) -> Iterator[CaseStore]:
    with CaseStore(store_url) as opened:
        opened.upgrade()
        yield opened


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


USERS = {
    "alice": Role.OPERATOR,
    "carol": Role.OPERATOR,
    "bob": Role.APPROVER,
    "dora": Role.APPROVER,
    "victor": Role.VIEWER,
    "root": Role.ADMIN,
}


@pytest.fixture
def service(store: CaseStore, clock: Clock) -> CaseService:
    made = CaseService(store, CasePolicy(), clock=clock)
    for name, role in USERS.items():
        made.add_user(name, role)
    return made


Outcomes = Callable[..., Path]


@pytest.fixture
def outcomes(tmp_path: Path) -> Outcomes:
    """Run the real match over records and return the ``outcomes.parquet`` it wrote."""
    counter = iter(range(1000))

    def run(
        ledger: list[dict[str, Any]],
        channel: list[dict[str, Any]],
        pool: list[dict[str, Any]] | None = None,
        day: date = DAY,
    ) -> Path:
        n = next(counter)
        target = tmp_path / f"outcomes-{n}.parquet"
        with DuckDBEngine(EngineSettings(), tmp_path / f"engine-{n}") as engine:
            engine.load("ledger", pa.Table.from_pylist(ledger, CANONICAL).to_reader())
            engine.load("channel", pa.Table.from_pylist(channel, CANONICAL).to_reader())
            engine.load("pool", pa.Table.from_pylist(pool or [], POOL).to_reader())
            engine.match(MatchDefinition(MatchRules(), day), target)
        return target

    return run


def standard_day() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One of each: matched, amount mismatch, missing either side, status mismatch."""
    ledger = [
        record("o1", 100),
        record("o2", 10_000),
        record("o4", 300),
        record("o5", 200_000, status="PROCESSING"),
    ]
    channel = [
        record("o1", 100),
        record("o2", 9_000),
        record("o3", 500),
        record("o5", 200_000),
    ]
    return ledger, channel
