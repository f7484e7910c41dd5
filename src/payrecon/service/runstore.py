"""The run store: a record of every run, and the suspense pool between runs.

Embedded default under ``<home>`` (``./.payrecon``): ``runs.sqlite`` lists runs; the pool
is one immutable Parquet snapshot per channel and day (``pool/<channel>/<day>.parquet``),
holding the records still carried over after that day's run. A run for day T starts
from the latest snapshot before T, so re-running a day is repeatable.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from payrecon.core.outcomes import POOL

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    channel     TEXT NOT NULL,
    bill_date   TEXT NOT NULL,
    engine      TEXT NOT NULL,
    status      TEXT NOT NULL,          -- RUNNING, DONE, FAILED
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    out_dir     TEXT,
    error       TEXT,
    summary     TEXT                    -- summary.json of a DONE run
)
"""


class RunStore:
    """Runs and suspense-pool snapshots under one home folder."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.home / "runs.sqlite", timeout=30)) as db, db:
            yield db

    # -- runs --------------------------------------------------------------------------

    def start(self, run_id: str, channel: str, day: date, engine: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO runs (run_id, channel, bill_date, engine, status, started_at)"
                " VALUES (?, ?, ?, ?, 'RUNNING', ?)",
                (run_id, channel, day.isoformat(), engine, _now()),
            )

    def finish(self, run_id: str, out_dir: Path, summary: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE runs SET status = 'DONE', finished_at = ?, out_dir = ?, summary = ?"
                " WHERE run_id = ?",
                (_now(), str(out_dir), json.dumps(summary, ensure_ascii=False), run_id),
            )

    def fail(self, run_id: str, error: str) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE runs SET status = 'FAILED', finished_at = ?, error = ? WHERE run_id = ?",
                (_now(), error, run_id),
            )

    def runs(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Every recorded run, newest first."""
        query = "SELECT * FROM runs" + (" WHERE channel = ?" if channel else "")
        with self._db() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(query + " ORDER BY started_at DESC", (channel,) if channel else ())
            return [dict(row) for row in rows]

    # -- suspense pool -------------------------------------------------------------------

    def _pool_dir(self, channel: str) -> Path:
        return self.home / "pool" / channel

    def pool_before(self, channel: str, day: date) -> tuple[date | None, pa.Table]:
        """The latest pool snapshot of ``channel`` taken before ``day`` (empty if none)."""
        folder = self._pool_dir(channel)
        days = sorted(
            date.fromisoformat(p.stem) for p in folder.glob("*.parquet") if p.stem < day.isoformat()
        )
        if not days:
            return None, POOL.empty_table()
        table = pq.read_table(folder / f"{days[-1].isoformat()}.parquet", schema=POOL)
        return days[-1], table

    def save_pool(self, channel: str, day: date, staged: Path) -> None:
        """Make the staged snapshot file the pool after ``day`` (an atomic rename)."""
        folder = self._pool_dir(channel)
        folder.mkdir(parents=True, exist_ok=True)
        # The staging folder may sit on another file system than the store.
        shutil.move(staged, folder / f"{day.isoformat()}.parquet")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
