"""Runs as the back-office shows them: the run store's list, each run's reports, the
dashboard's figures per channel and day, and near-miss candidates from ``outcomes.parquet``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from payrecon.config import Settings
from payrecon.core.outcomes import DISCREPANCIES, Outcome
from payrecon.errors import NotFoundError
from payrecon.service.outputs import OutcomeReader
from payrecon.service.runstore import RunStore

# What can be downloaded from a run's folder, and how it is served.
REPORTS = {
    "discrepancies.csv": "text/csv; charset=utf-8",
    "discrepancies.xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "outcomes.parquet": "application/vnd.apache.parquet",
    "quarantine.parquet": "application/vnd.apache.parquet",
    "summary.json": "application/json",
}
TREND_DAYS = 30


def run_view(row: dict[str, Any]) -> dict[str, Any]:
    """A run-store row with its summary parsed and the match rate worked out."""
    summary = json.loads(row["summary"]) if row.get("summary") else None
    view = {k: v for k, v in row.items() if k != "summary"} | {"summary": summary}
    view["match_rate"] = match_rate(summary) if summary else None
    view["discrepancies"] = summary["discrepancies"] if summary else None
    return view


def match_rate(summary: dict[str, Any]) -> float | None:
    """Matched outcome rows over all outcome rows except those still carried over."""
    outcomes = summary.get("outcomes", {})
    judged = sum(v["count"] for k, v in outcomes.items() if k != Outcome.CARRIED_OVER)
    matched = outcomes.get(Outcome.MATCHED, {}).get("count", 0)
    return matched / judged if judged else None


def runs(store: RunStore, channel: str | None = None) -> list[dict[str, Any]]:
    return [run_view(row) for row in store.runs(channel)]


def run(store: RunStore, run_id: str) -> dict[str, Any]:
    for row in store.runs():
        if row["run_id"] == run_id:
            return run_view(row)
    raise NotFoundError(f"no run {run_id}")


def reports(view: dict[str, Any]) -> list[str]:
    """The report files a finished run offers (XLSX is made on demand)."""
    folder = Path(view["out_dir"]) if view.get("out_dir") else None
    if folder is None or not folder.is_dir():
        return []
    present = [name for name in REPORTS if (folder / name).is_file()]
    if "outcomes.parquet" in present and "discrepancies.xlsx" not in present:
        present.append("discrepancies.xlsx")
    return sorted(present)


def report_file(view: dict[str, Any], name: str, settings: Settings) -> Path:
    """The path of report ``name`` of a run; the XLSX is written once when first asked."""
    if name not in REPORTS or name not in reports(view):
        raise NotFoundError(f"run {view['run_id']} has no report {name!r}")
    folder = Path(view["out_dir"])
    target = folder / name
    if name == "discrepancies.xlsx" and not target.is_file():
        cache = settings.home / "reports" / view["run_id"]
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / name
        if not target.is_file():
            reader = OutcomeReader(folder / "outcomes.parquet", settings.engine)
            try:
                reader.write_xlsx(target)
            finally:
                reader.close()
    return target


# -- dashboard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DayFigures:
    """One channel's latest finished run for one day."""

    channel: str
    day: str
    run_id: str
    match_rate: float | None
    rows: int
    discrepancies: int
    by_outcome: dict[str, dict[str, int]]


def latest_per_day(store: RunStore) -> list[DayFigures]:
    """The newest DONE run of every channel and day, newest day first."""
    seen: dict[tuple[str, str], DayFigures] = {}
    for view in runs(store):
        summary = view["summary"]
        key = (view["channel"], view["bill_date"])
        if view["status"] != "DONE" or not summary or key in seen:
            continue
        outcomes = summary.get("outcomes", {})
        seen[key] = DayFigures(
            channel=view["channel"],
            day=view["bill_date"],
            run_id=view["run_id"],
            match_rate=view["match_rate"],
            rows=sum(v["count"] for v in outcomes.values()),
            discrepancies=int(summary.get("discrepancies", 0)),
            by_outcome={k: v for k, v in outcomes.items() if k in DISCREPANCIES},
        )
    return sorted(seen.values(), key=lambda d: (d.day, d.channel), reverse=True)


def trend(days: list[DayFigures], until: date | None = None) -> dict[str, Any]:
    """Chart.js data: match rate and discrepancies per channel over the last 30 days."""
    last = until or max((date.fromisoformat(d.day) for d in days), default=date.today())
    labels = [(last - timedelta(days=n)).isoformat() for n in range(TREND_DAYS - 1, -1, -1)]
    channels = sorted({d.channel for d in days})
    index = {(d.channel, d.day): d for d in days}
    series = []
    for channel in channels:
        points = [index.get((channel, day)) for day in labels]
        series.append(
            {
                "channel": channel,
                "match_rate": [
                    None if p is None or p.match_rate is None else round(100 * p.match_rate, 3)
                    for p in points
                ],
                "discrepancies": [None if p is None else p.discrepancies for p in points],
            }
        )
    return {"labels": labels, "series": series}


# -- near misses -------------------------------------------------------------------------

_SIDES = {"ledger": "channel", "channel": "ledger"}


def near_misses(
    case: dict[str, Any], out_dir: Path | None, limit: int = 5
) -> tuple[str, list[dict[str, Any]]]:
    """For a record missing on one side: the closest records on the other side.

    Closest means unmatched first, then by amount difference, then by time apart.
    Returns (the side searched, candidates with what differs from the case's record).
    """
    present = "channel" if case["channel_record"] else "ledger"
    other = _SIDES[present]
    record = case[f"{present}_record"] or {}
    outcomes = (out_dir / "outcomes.parquet") if out_dir else None
    if not record or outcomes is None or not outcomes.is_file():
        return other, []
    moment = _moment(record.get("txn_time"))
    sql = f"""
        SELECT order_id, outcome, {other}_amount AS amount, {other}_status AS status,
               CAST({other}_txn_time AS VARCHAR) AS txn_time,
               {other}_channel_txn_id AS channel_txn_id,
               abs({other}_amount - ?) AS amount_apart,
               abs(epoch({other}_txn_time) - epoch(CAST(? AS TIMESTAMPTZ))) AS seconds_apart
        FROM read_parquet(?)
        WHERE {other}_amount IS NOT NULL AND NOT (order_id = ? AND kind = ?)
        ORDER BY outcome = 'MATCHED', amount_apart, seconds_apart NULLS LAST, order_id
        LIMIT ?
    """
    params = [
        int(record.get("amount") or 0),
        moment,
        str(outcomes),
        case["order_id"],
        case["kind"],
        limit,
    ]
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        found = con.execute(sql, params).fetchall()
        columns = [d[0] for d in con.description or []]
    candidates = [dict(zip(columns, row, strict=True)) for row in found]
    for candidate in candidates:
        candidate["differs"] = _differences(case, record, candidate)
    return other, candidates


def _moment(value: Any) -> str | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value)).isoformat()


def _differences(case: dict[str, Any], record: dict[str, Any], other: dict[str, Any]) -> list[str]:
    differs = []
    if other["order_id"] != case["order_id"]:
        differs.append("order_id")
    if other["amount"] != record.get("amount"):
        differs.append("amount")
    if other["status"] != record.get("status"):
        differs.append("status")
    if other["seconds_apart"] is None or other["seconds_apart"] > 0:
        differs.append("txn_time")
    if other["outcome"] == Outcome.MATCHED:
        differs.append("already matched")
    return differs
