"""Back-office fixtures: a real case store with cases opened from a real run's outcomes,
the run recorded in the run store, users with argon2 passwords, and a logged-in client."""

from __future__ import annotations

import json
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette nudges towards httpx2, which is not a dependency here; httpx works.
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

import pyarrow as pa
from argon2 import PasswordHasher
from sqlalchemy import update

from payrecon.cases.ingest import open_cases
from payrecon.cases.models import User
from payrecon.cases.policy import CasePolicy
from payrecon.cases.service import CaseService
from payrecon.cases.store import CaseStore
from payrecon.config import EngineSettings, Settings
from payrecon.core.outcomes import POOL
from payrecon.core.rules import MatchRules
from payrecon.core.schema import CANONICAL
from payrecon.engines.definition import MatchDefinition
from payrecon.engines.duckdb import DuckDBEngine
from payrecon.service.runstore import RunStore
from payrecon.web.app import create_app
from tests.conftest import DAY, record
from tests.unit.cases.conftest import PG_ADMIN, PG_URL, USERS, Clock

PASSWORD = "correct-horse-9"
RUN_ID = "wechat-20261120-test0001"


def web_day() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Matched rows, an amount mismatch, a record missing on each side, a near miss."""
    ledger = [
        record("o1", 100, local_time="09:00:00"),
        record("o2", 10_000),
        record("o4", 300, local_time="10:00:00"),
        record("o5", 200_000, status="PROCESSING"),
        record("o7", 95_010, local_time="14:00:30"),  # the near miss of o3 on the ledger side
    ]
    channel = [
        record("o1", 100, local_time="09:00:00"),
        record("o2", 9_000),
        record("o3", 95_000, local_time="14:00:00"),
        record("o5", 200_000),
    ]
    return ledger, channel


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite by default; ``parametrize("store_url", ["postgresql"], indirect=True)``
    runs a test on a fresh PostgreSQL schema instead."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'cases.sqlite'}"
        return
    import psycopg

    schema = f"web_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="session")
def day_outcomes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real match (DuckDB) over :func:`web_day`, run once per session."""
    folder = tmp_path_factory.mktemp("outcomes")
    target = folder / "outcomes.parquet"
    ledger, channel = web_day()
    with DuckDBEngine(EngineSettings(), folder / "engine") as engine:
        engine.load("ledger", pa.Table.from_pylist(ledger, CANONICAL).to_reader())
        engine.load("channel", pa.Table.from_pylist(channel, CANONICAL).to_reader())
        engine.load("pool", pa.Table.from_pylist([], POOL).to_reader())
        engine.match(MatchDefinition(MatchRules(), DAY), target)
    return target


@pytest.fixture(scope="session")
def password_hash() -> str:
    return str(PasswordHasher().hash(PASSWORD))


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    return Settings(home=tmp_path / "home", cases={"url": store_url})


@pytest.fixture
def service(
    settings: Settings, store_url: str, day_outcomes: Path, password_hash: str
) -> Iterator[CaseService]:
    store = CaseStore(store_url)
    store.upgrade()
    made = CaseService(store, CasePolicy(), clock=Clock())
    for name, role in USERS.items():
        made.add_user(name, role)
    with store.session() as session:  # one argon2 hash for all: hashing is slow on purpose
        session.execute(update(User).values(password_hash=password_hash))
    out = settings.home / "runs" / RUN_ID
    out.mkdir(parents=True)
    (out / "outcomes.parquet").write_bytes(day_outcomes.read_bytes())
    open_cases(made, out / "outcomes.parquet", run_id=RUN_ID, channel="wechat", day=DAY)
    _record_run(settings, out)
    yield made
    store.close()


def _record_run(settings: Settings, out: Path) -> None:
    summary = {
        "run_id": RUN_ID,
        "outcomes": {
            "MATCHED": {"count": 1, "ledger_amount": 100, "channel_amount": 100},
            "AMOUNT_MISMATCH": {"count": 1, "ledger_amount": 10_000, "channel_amount": 9_000},
            "MISSING_IN_LEDGER": {"count": 1, "ledger_amount": 0, "channel_amount": 95_000},
        },
        "rows_in": {"ledger": 5, "channel": 4, "pool": 0},
        "quarantined": 0,
        "discrepancies": 5,
        "footer": "ok",
        "bills": [],
    }
    (out / "summary.json").write_text(json.dumps(summary))
    runs = RunStore(settings.home)
    runs.start(RUN_ID, "wechat", DAY, "duckdb")
    runs.finish(RUN_ID, out, summary)


@pytest.fixture
def app(settings: Settings, service: CaseService) -> FastAPI:
    return create_app(settings, service)


@pytest.fixture
def anonymous(app: FastAPI) -> TestClient:
    return TestClient(app, follow_redirects=False)


Login = Callable[[str], TestClient]


@pytest.fixture
def login(app: FastAPI) -> Login:
    def as_user(name: str) -> TestClient:
        client = TestClient(app, follow_redirects=False)
        log_in(client, name)
        return client

    return as_user


def log_in(client: TestClient, name: str, password: str = PASSWORD) -> Any:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def case_id(service: CaseService, outcome: str) -> int:
    _, rows = service.query(limit=100)
    return next(int(row["id"]) for row in rows if row["outcome"] == outcome)
