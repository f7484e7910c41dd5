"""Checkpoints of a stream job in a local SQLite file: state and positions, together.

One checkpoint is one row, replaced in one transaction: the matcher snapshot (pending
sides, timers, watermarks), each source's position, which inputs have ended, and the run's
counts. SQLite's write-ahead log with ``synchronous=FULL`` makes the replacement atomic
and durable: after a crash the file holds the previous checkpoint or the new one, never a
mix. The runtime writes one only after every sink has flushed durably, and commits Kafka
offsets only after it (see :mod:`payrecon.stream.runtime`).

A lock file next to the checkpoint (``PATH.lock``, ``flock``) keeps two jobs from sharing
it; the kernel releases the lock when a job dies, even by ``kill -9``.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from payrecon.errors import ConfigError

FORMAT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    format INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    written_at_ms INTEGER NOT NULL,
    sources TEXT NOT NULL,
    matcher TEXT NOT NULL,
    positions TEXT NOT NULL,
    ended TEXT NOT NULL,
    stats TEXT NOT NULL,
    finished INTEGER NOT NULL
)
"""
_COLUMNS = "format, sequence, written_at_ms, sources, matcher, positions, ended, stats, finished"


@dataclass(frozen=True)
class Checkpoint:
    """What a job needs to resume: see the module docstring. ``sequence`` counts from 1."""

    sources: dict[str, str]
    matcher: dict[str, Any]
    positions: dict[str, Any]
    ended: tuple[str, ...]
    stats: dict[str, Any]
    finished: bool = False
    sequence: int = field(default=0, compare=False)


class CheckpointStore:
    """The checkpoint file of one job; holds its lock while open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = self._acquire(path)
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            self._lock.close()
            raise ConfigError(f"cannot use checkpoint {path}: {exc}") from exc

    @staticmethod
    def _acquire(path: Path) -> TextIO:
        try:
            lock = Path(f"{path}.lock").open("a")  # noqa: SIM115 - held while the store is open
        except OSError as exc:
            raise ConfigError(f"cannot use checkpoint {path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ConfigError(f"checkpoint {path} is in use by another running job") from None
        return lock

    def load(self) -> Checkpoint | None:
        """The last checkpoint written, or None for a new job."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM checkpoint WHERE id = 1").fetchone()
        if row is None:
            return None
        if row[0] != FORMAT:
            raise ConfigError(f"checkpoint {self.path} has unknown format {row[0]!r}")
        return Checkpoint(
            sources=json.loads(row[3]),
            matcher=json.loads(row[4]),
            positions=json.loads(row[5]),
            ended=tuple(json.loads(row[6])),
            stats=json.loads(row[7]),
            finished=bool(row[8]),
            sequence=int(row[1]),
        )

    def save(self, checkpoint: Checkpoint) -> int:
        """Replace the checkpoint in one durable transaction; returns its sequence number."""
        values = (
            FORMAT,
            time.time_ns() // 1_000_000,
            json.dumps(checkpoint.sources, sort_keys=True),
            json.dumps(checkpoint.matcher, separators=(",", ":")),
            json.dumps(checkpoint.positions, sort_keys=True),
            json.dumps(sorted(checkpoint.ended)),
            json.dumps(checkpoint.stats, sort_keys=True),
            int(checkpoint.finished),
        )
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT sequence FROM checkpoint WHERE id = 1").fetchone()
            sequence = (row[0] if row else 0) + 1
            self._db.execute(
                f"INSERT OR REPLACE INTO checkpoint (id, {_COLUMNS})"
                " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (values[0], sequence, *values[1:]),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return int(sequence)

    def close(self) -> None:
        """Close the database and release the lock."""
        self._db.close()
        self._lock.close()
