"""Shared builders for canonical records and a helper that runs the match on DuckDB."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from payrecon.config import EngineSettings
from payrecon.core.outcomes import POOL
from payrecon.core.rules import MatchRules
from payrecon.core.schema import CANONICAL
from payrecon.engines.definition import MatchDefinition
from payrecon.engines.duckdb import DuckDBEngine

SHANGHAI = timezone(timedelta(hours=8))
DAY = date(2026, 11, 20)


def record(
    order_id: str,
    amount: int = 100,
    *,
    status: str = "SUCCESS",
    local_time: str = "12:00:00",
    day: date = DAY,
    kind: str = "PAY",
    fee: int | None = None,
    line_no: int = 1,
    source: str = "test",
    currency: str = "CNY",
    order_amount: int | None = None,
    channel: str = "wechat",
) -> dict[str, Any]:
    """One canonical record; times are Asia/Shanghai wall-clock times on ``day``."""
    moment = datetime.fromisoformat(f"{day.isoformat()} {local_time}").replace(tzinfo=SHANGHAI)
    return {
        "channel": channel,
        "merchant_id": "1601959334",
        "kind": kind,
        "order_id": order_id,
        "origin_order_id": None,
        "channel_txn_id": f"42{order_id}",
        "status": status,
        "amount": amount,
        "order_amount": order_amount,
        "coupon_amount": None,
        "fee": fee,
        "currency": currency,
        "txn_time": moment.astimezone(UTC),
        "bill_date": day,
        "source": source,
        "line_no": line_no,
    }


def pooled(rec: dict[str, Any], side: str, carried_from: date) -> dict[str, Any]:
    return {**rec, "side": side, "carried_from": carried_from}


MatchRunner = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def run_match(tmp_path: Path) -> MatchRunner:
    """Run the one match definition on DuckDB over in-memory records; return outcome rows."""

    def run(
        ledger: list[dict[str, Any]],
        channel: list[dict[str, Any]],
        pool: list[dict[str, Any]] | None = None,
        rules: MatchRules | None = None,
        day: date = DAY,
    ) -> list[dict[str, Any]]:
        runs = len(list(tmp_path.iterdir()))
        target = tmp_path / f"outcomes-{runs}.parquet"
        with DuckDBEngine(EngineSettings(), tmp_path / f"engine-{runs}") as engine:
            engine.load("ledger", pa.Table.from_pylist(ledger, CANONICAL).to_reader())
            engine.load("channel", pa.Table.from_pylist(channel, CANONICAL).to_reader())
            engine.load("pool", pa.Table.from_pylist(pool or [], POOL).to_reader())
            engine.match(MatchDefinition(rules or MatchRules(), day), target)
        rows = pq.read_table(target).to_pylist()
        return sorted(rows, key=lambda r: (r["order_id"], r["kind"], r["outcome"]))

    return run
